"""Fetch one file from a Hugging Face hub with ``huggingface_hub.hf_hub_download``.

What this adds around ``hf_hub_download``:

* ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are read when the download starts (huggingface_hub reads
  them once, at import), and the endpoint is passed explicitly, so tests and users can change
  them at run time.
* Progress and cancellation go through a small ``tqdm``-compatible class: every chunk reports
  the fraction done, and a cancelled job stops between chunks (huggingface_hub then deletes its
  partial file).
* Every failure becomes one :class:`engine.errors.ModelError` line that names the model, the
  missing file and how to get it — never a traceback.

Resuming: huggingface_hub 2.4 resumes an interrupted transfer *within* one call (on a dropped
connection it reconnects with an HTTP ``Range`` request, up to five times). Since its PR #4228 it
writes to a process-unique temporary file that it deletes when the call fails, so a download
cancelled or killed mid-way restarts from zero on the next call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import ModelError
from ..progress import Progress
from .catalog import HubSource

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
          expected_size: int = 0, check_space: Optional[Callable[[int], None]] = None) -> Path:
    """Download ``source`` into ``staging_dir`` and return the file's path there.

    First one quick ``HEAD`` without retries (so an unreachable hub fails at once instead of
    after huggingface_hub's ~20 s of back-off, and the file's size is known), then
    ``check_space(size in bytes)`` (size from the hub, else ``expected_size``), then
    ``hf_hub_download``. The file is not verified here (the caller checks its sha256).
    Raises :class:`ModelError` for offline mode, network failures, missing repositories/files
    and truncated transfers; :class:`engine.errors.Cancelled` when ``progress``'s token is
    cancelled.
    """
    if hub_offline():
        raise ModelError(offline_message(model_id, source))
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
        from huggingface_hub import errors as hf_errors
    except ImportError:
        raise ModelError("downloading models needs the 'huggingface_hub' package (the 'neural' extra)") from None
    progress = progress or Progress()
    endpoint = hub_endpoint()
    where = endpoint or "https://huggingface.co"
    what = f"{source.filename} from {source.repo_id}@{source.revision[:12]}"
    staging_dir.mkdir(parents=True, exist_ok=True)
    try:
        url = hf_hub_url(source.repo_id, source.filename, revision=source.revision, endpoint=endpoint)
        meta = get_hf_file_metadata(url, timeout=_PROBE_TIMEOUT_S, endpoint=endpoint, library_name="restora")
        if check_space is not None:
            check_space(meta.size or expected_size)
        progress.check()
        path = hf_hub_download(
            repo_id=source.repo_id,
            filename=source.filename,
            revision=source.revision,
            local_dir=str(staging_dir),
            cache_dir=str(staging_dir / ".hf-cache"),
            endpoint=endpoint,
            tqdm_class=_progress_bar_class(progress, source.filename),
            library_name="restora",
        )
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
    except hf_errors.LocalEntryNotFoundError as e:
        if hub_offline() or isinstance(e.__cause__, hf_errors.OfflineModeIsEnabled):
            raise ModelError(offline_message(model_id, source)) from None
        raise ModelError(f"cannot reach the Hugging Face hub at {where} to download {what} for model "
                         f"'{model_id}' ({_cause(e)}); check the connection, or {how_to_get(model_id)}") from None
    except hf_errors.RemoteEntryNotFoundError:
        raise ModelError(f"{source.filename} not found in {source.repo_id}@{source.revision[:12]} on {where} "
                         f"(model '{model_id}')") from None
    except _connection_errors() as e:
        raise ModelError(f"cannot reach the Hugging Face hub at {where} to download {what} for model "
                         f"'{model_id}' ({_short(e)}); check the connection, or {how_to_get(model_id)}") from None
    except hf_errors.HfHubHTTPError as e:
        raise ModelError(f"the hub at {where} refused {what} for model '{model_id}' ({_short(e)})") from None
    except _http_errors() as e:
        raise ModelError(f"download of {what} for model '{model_id}' failed ({_short(e)}); "
                         f"run `restora models download {model_id}` again") from None
    except OSError as e:
        # Truncated transfers ("Consistency check failed") and local I/O errors.
        raise ModelError(f"download of {what} for model '{model_id}' failed ({_short(e)}); "
                         f"run `restora models download {model_id}` again") from None
    return Path(path)


def _progress_bar_class(progress: Progress, label: str) -> type:
    """A ``tqdm`` stand-in class reporting bytes done / total to ``progress`` (which checks cancel)."""

    class _Bar:
        def __init__(self, *args: Any, total: Optional[int] = None, initial: int = 0, **kwargs: Any) -> None:
            self.total = total
            self.n = initial

        def __enter__(self) -> "_Bar":
            return self

        def __exit__(self, *exc: Any) -> bool:
            return False

        def update(self, n: int = 1) -> None:
            self.n += n
            if self.total:
                progress(self.n / self.total, f"{label}: {self.n / 1e6:.1f} / {self.total / 1e6:.1f} MB")
            else:
                progress.check()

        def close(self) -> None:
            pass

    return _Bar


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


def _cause(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    return _short(cause) if cause is not None else "no connection"


def _short(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
