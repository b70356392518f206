"""The small JSON registry in the weights cache: what is installed there, with its digest.

One file, ``<cache>/registry.json``: ``{"version": 1, "models": {id: record}}``. A record holds
at least ``file`` (path relative to the cache), ``sha256``, ``size`` and ``origin`` (``"hub"``,
``"package"``, ``"import"``). It is rewritten atomically (temporary file + ``os.replace``), so
a crash never leaves half a registry behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ModelError

REGISTRY_NAME = "registry.json"
REGISTRY_VERSION = 1


def read_registry(cache_dir: Path) -> dict[str, dict[str, Any]]:
    """Records by model id; an absent registry is empty. A corrupt one raises :class:`ModelError`."""
    path = cache_dir / REGISTRY_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"the model registry {path} is unreadable ({e}); delete it and re-import "
                         "your models") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ModelError(f"the model registry {path} has an unexpected layout; delete it and re-import "
                         "your models")
    return {str(k): v for k, v in models.items() if isinstance(v, dict)}


def write_registry(cache_dir: Path, records: dict[str, dict[str, Any]]) -> None:
    """Replace the registry with ``records`` atomically."""
    from ..imageio.atomic import atomic_write_text  # here: engine.imageio loads the image decoders

    payload = json.dumps({"version": REGISTRY_VERSION, "models": records}, indent=2, sort_keys=True)
    atomic_write_text(cache_dir / REGISTRY_NAME, payload)
