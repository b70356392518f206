"""The optional torch runtime (``pip install 'restora[torch]'``: torch, torchvision, spandrel).

The embedded default (classical experts and the bundled ONNX networks on ONNX Runtime) never
needs it; downloaded or imported third-party models (spandrel architectures), the CUDA/MPS
devices and training do. These checks look for the packages without importing them, so asking
costs nothing and a missing torch surfaces only when a torch model is actually needed.
"""

from __future__ import annotations

import importlib.util
import sys

from .errors import ModelError

#: The pip extra that installs the torch runtime.
TORCH_EXTRA = "restora[torch]"
TORCH_PACKAGES: tuple[str, ...] = ("torch", "spandrel")


class TorchRuntimeMissing(ModelError):
    """A torch model was asked for but torch or spandrel is not installed."""


def missing_torch_packages() -> list[str]:
    """Names of the torch runtime's packages that are not installed (empty: it is complete)."""
    return [name for name in TORCH_PACKAGES if importlib.util.find_spec(name) is None]


def torch_runtime_available() -> bool:
    """True when torch and spandrel are both installed."""
    return not missing_torch_packages()


def how_to_get_torch() -> str:
    """What the user does to get the torch runtime: a pip command, or for the one-folder
    desktop application (frozen by PyInstaller, no pip) the build that includes it."""
    if getattr(sys, "frozen", False):
        return "this Restora folder was built without it; use a build made with installer/build.sh --torch"
    return f"pip install '{TORCH_EXTRA}'"


def require_torch_runtime(what: str) -> None:
    """Raise :class:`TorchRuntimeMissing` (one line naming ``what`` and how to get torch) unless
    the torch runtime is installed. ``what``: what needs it, e.g. ``"model file x.pth"``."""
    missing = missing_torch_packages()
    if missing:
        raise TorchRuntimeMissing(f"{what} needs the optional torch runtime ({' and '.join(missing)} "
                                  f"not installed): {how_to_get_torch()}")
