"""Fetch one file from a Hugging Face hub: ask with huggingface_hub, transfer with our own bounds.

* ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are read when the download starts (huggingface_hub reads
  them once, at import), and the endpoint is passed explicitly, so tests and users can change
  them at run time.
* The file's metadata comes from ``huggingface_hub.get_hf_file_metadata`` (its hub protocol,
  error types and login headers); the bytes are then fetched with
  :func:`engine.weights.transfer.fetch_to_file`, which ``hf_hub_download`` cannot replace: it has
  no overall time limit and no stall detection (a server sending one byte every 2 s kept it busy
  forever), it logs every retry, and it deletes its partial file when a call fails, so an
  interrupted download restarted from zero.
* Every failure becomes one :class:`engine.errors.ModelError` line that names the model, the
  missing file and how to get it — never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

from ..errors import ModelError, one_line
from ..progress import Progress
from .catalog import HubSource
from .transfer import TransferError, TransferLimits, fetch_to_file

_TRUE = {"1", "on", "yes", "true"}
#: Seconds the first metadata request may take before the hub counts as unreachable.
_PROBE_TIMEOUT_S = 10.0


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value now."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in _TRUE


def hub_endpoint() -> Optional[str]:
    """``HF_ENDPOINT`` as set now (``None``: huggingface_hub's default, https://huggingface.co)."""
    value = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    return value or None


def how_to_get(model_id: str) -> str:
    return (f"get it with `restora models download {model_id}` when online, or import a copy "
            f"with `restora models import PATH --id {model_id}`")


def offline_message(model_id: str, source: HubSource) -> str:
    return (f"model '{model_id}' is not installed and Hugging Face downloads are off (HF_HUB_OFFLINE=1): "
            f"missing {source.filename} from {source.repo_id}; {how_to_get(model_id)}")


def fetch(model_id: str, source: HubSource, staging_dir: Path, progress: Optional[Progress] = None,
          expected_size: int = 0, check_space: Optional[Callable[[int], None]] = None,
          limits: Optional[TransferLimits] = None, notify: Optional[Callable[[str], None]] = None) -> Path:
    """Download ``source`` into ``staging_dir`` and return the (unverified) file's path there.

    First one quick ``HEAD`` through huggingface_hub (``get_hf_file_metadata``, no retries), so
    an unreachable hub, a missing repository, revision or file and a gated repository each fail
    at once with their own message and the file's size and final location are known; then the
    transfer itself with :func:`engine.weights.transfer.fetch_to_file` (time limits, stall
    detection, ``Range`` resume, one line per retry). A partial ``<file>.part`` left in
    ``staging_dir`` by an earlier failed call is resumed. Raises :class:`ModelError`
    (:class:`~engine.weights.transfer.TransferError` for transfer failures) and
    :class:`engine.errors.Cancelled`.
    """
    if hub_offline():
        raise ModelError(offline_message(model_id, source))
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub import errors as hf_errors
        from huggingface_hub.utils import build_hf_headers
    except ImportError:
        raise ModelError("downloading models needs the 'huggingface_hub' package (the 'neural' extra)") from None
    progress = progress or Progress()
    endpoint = hub_endpoint()
    where = endpoint or "https://huggingface.co"
    what = f"{source.filename} from {source.repo_id}@{source.revision[:12]}"
    staging_dir.mkdir(parents=True, exist_ok=True)
    try:
        url = hf_hub_url(source.repo_id, source.filename, revision=source.revision, endpoint=endpoint)
        headers = build_hf_headers(library_name="restora")
        meta = get_hf_file_metadata(url, timeout=_PROBE_TIMEOUT_S, endpoint=endpoint, library_name="restora")
    except hf_errors.OfflineModeIsEnabled:
        raise ModelError(offline_message(model_id, source)) from None
    except hf_errors.GatedRepoError:
        raise ModelError(f"{source.repo_id} is gated on the hub: accept its terms and log in "
                         f"(`hf auth login`) to download {source.filename} for '{model_id}'") from None
    except hf_errors.RepositoryNotFoundError:
        raise ModelError(f"repository {source.repo_id} not found on {where} (needed for model "
                         f"'{model_id}'); {how_to_get(model_id)}") from None
    except hf_errors.RevisionNotFoundError:
        raise ModelError(f"revision {source.revision} of {source.repo_id} not found on {where} "
                         f"(model '{model_id}')") from None
    except hf_errors.RemoteEntryNotFoundError:
        raise ModelError(f"{source.filename} not found in {source.repo_id}@{source.revision[:12]} on {where} "
                         f"(model '{model_id}')") from None
    except _connection_errors() as e:
        raise ModelError(f"cannot reach the Hugging Face hub at {where} to download {what} for model "
                         f"'{model_id}' ({one_line(e)}); check the connection, or {how_to_get(model_id)}") from None
    except hf_errors.HfHubHTTPError as e:
        raise ModelError(f"the hub at {where} refused {what} for model '{model_id}' ({one_line(e)})") from None
    except _http_errors() as e:
        raise ModelError(f"could not ask the hub at {where} for {what} (model '{model_id}': {one_line(e)}); "
                         f"run `restora models download {model_id}` again") from None
    location = meta.location or url
    if urlsplit(location).netloc != urlsplit(url).netloc:
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}  # a CDN gets no token
    size = expected_size or int(meta.size or 0)
    staged = staging_dir / (Path(source.filename).name + ".part")
    try:
        return fetch_to_file(location, staged, expected_size=size, headers=headers, progress=progress,
                             limits=limits, label=Path(source.filename).name, notify=notify,
                             check_space=check_space)
    except TransferError as e:
        raise TransferError(f"model '{model_id}': {e}; run `restora models download {model_id}` again"
                            + (" to resume" if e.keep_partial else ""), e.failure, e.status,
                            e.keep_partial, e.reason) from None


def _http_errors(names: tuple[str, ...] = ("HTTPError",)) -> tuple[type[BaseException], ...]:
    """Exception classes of the HTTP client(s) huggingface_hub may use (httpx2 in 2.4, httpx before)."""
    errors: list[type[BaseException]] = []
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        errors.extend(getattr(module, name) for name in names if hasattr(module, name))
    return tuple(errors)


def _connection_errors() -> tuple[type[BaseException], ...]:
    return _http_errors(("ConnectError", "TimeoutException"))

