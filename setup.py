"""Package layout that pyproject.toml cannot express: the top-level ``models/`` and ``resources/``
folders ship as package data of ``engine.assets`` (read through importlib.resources, see
engine/assets/__init__.py), taken by pattern so that new models and resources need no edit here.
Everything else (metadata, dependencies, entry points) is in pyproject.toml."""

from setuptools import find_namespace_packages, find_packages, setup

DATA = {"engine.assets.models": "models", "engine.assets.resources": "resources"}
# Their sub-folders (models/cards, resources/icons, ...) are listed too, or setuptools warns
# that data folders are importable names it was not told about.
data_packages = [sub for name, folder in DATA.items()
                 for sub in [name] + [f"{name}.{p}" for p in find_namespace_packages(folder)]]

setup(
    packages=find_packages(include=["engine", "engine.*", "app", "app.*"]) + data_packages,
    package_dir=DATA,
    package_data={name: ["*"] for name in data_packages},
    exclude_package_data={name: ["*.pyc", "*.tmp"] for name in data_packages},
)
