"""Model catalog, verified downloads, imports and the weights cache.

Public API: :func:`load_catalog`, :class:`ModelEntry`, :class:`WeightsManager`,
:class:`ModelStatus`. Safe loading of weight files lives in :mod:`engine.weights.safe_load`.
Nothing here imports torch until a function needs it.
"""

from .catalog import (BundledSource, Catalog, CatalogError, HubSource, ModelEntry, PackageSource,
                      UrlSource, default_catalog_path, load_catalog)
from .manager import ModelStatus, VerifyResult, WeightsManager, default_cache_dir

__all__ = [
    "BundledSource", "Catalog", "CatalogError", "HubSource", "ModelEntry", "PackageSource", "UrlSource",
    "default_catalog_path", "load_catalog", "ModelStatus", "VerifyResult", "WeightsManager",
    "default_cache_dir",
]
