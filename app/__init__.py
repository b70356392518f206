"""Restora's PySide6 desktop application. All image work goes through :mod:`engine`;
this package only turns engine arrays into pixels on screen."""
