"""Converters from foreign model formats into files Restora's runtime loads."""
