"""``restora models list|download ID|verify [ID]|remove ID|import PATH [--json]``.

Human-readable tables go to stdout, messages and the download progress bar to stderr. With
``--json``, stdout carries JSON only: ``list`` and ``verify`` print one object per model per
line, the other commands one object. Exit status: 0 success, 1 failure, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

from ..errors import RestoraError
from ..units import format_bytes


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``models`` and its sub-commands on an ``argparse`` sub-parser action."""
    parser = subparsers.add_parser(
        "models", help="list, download, verify, remove or import model weights",
        description="Manage neural-network weights: the catalog, downloads from Hugging Face, "
                    "verification and your own imported model files.")
    parser.add_argument("--catalog", metavar="TOML", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="models_command", metavar="SUBCOMMAND",
                                parser_class=type(parser))

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        p.add_argument("--json", action="store_true", help="print JSON to stdout")
        return p

    command("list", "list catalog and imported models with their status")
    p = command("download", "download a model from its pinned source and verify its sha256")
    p.add_argument("model_id", metavar="ID")
    p.add_argument("--allow-unverified", action="store_true",
                   help="download a model whose catalog entry has no sha256 (its digest is recorded on first use)")
    p.add_argument("--force", action="store_true", help="download again even if installed")
    p = command("verify", "check installed files against their sha256 (all, or one ID)")
    p.add_argument("model_id", metavar="ID", nargs="?")
    p = command("remove", "delete an installed model from the cache")
    p.add_argument("model_id", metavar="ID")
    p = command("import", "import your own .safetensors, .pth or .onnx model file")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--id", dest="model_id", metavar="ID", help="model id (default: from the file name)")
    p.add_argument("--task", dest="tasks", action="append", metavar="TASK",
                   help="task it serves (noise, blur, jpeg, haze, lowlight, rain, generalist, upscale, face); "
                        "repeatable")
    p.add_argument("--name", help="display name")
    parser.set_defaults(run=run, models_parser=parser)
    return parser


def run(args: argparse.Namespace, stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> int:
    """Execute a parsed ``models`` command; returns the exit status (0 ok, 1 failure, 2 usage)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    command = getattr(args, "models_command", None)
    if command is None:
        parser = getattr(args, "models_parser", None)
        if parser is not None:
            parser.print_usage(err)
        print("restora models: error: choose one of list, download, verify, remove, import", file=err)
        return 2
    as_json = bool(getattr(args, "json", False))
    try:
        from ..weights import WeightsManager

        manager = WeightsManager(catalog=getattr(args, "catalog", None))
        handler = _COMMANDS[command]
        return handler(manager, args, out, err, as_json)
    except RestoraError as e:
        print(f"restora: {e}", file=err)
        if as_json:
            _emit(out, {"command": command, "id": getattr(args, "model_id", None), "ok": False, "error": str(e)})
        return 1


def _list(manager: Any, args: argparse.Namespace, out: TextIO, err: TextIO, as_json: bool) -> int:
    rows = []
    for model_id in manager.known_ids():
        entry = manager.entry(model_id)
        status = manager.status(model_id)
        found = manager.path_for(model_id, verify=False)
        rows.append({
            "id": entry.id, "name": entry.name, "status": status.value, "tasks": list(entry.tasks),
            "architecture": entry.architecture, "scale": entry.scale, "license": entry.license,
            "size": entry.size, "sha256": entry.sha256, "verified": entry.verified,
            "generative": entry.generative, "path": str(found) if found else None,
            "sources": [s.describe() for s in entry.sources],
        })
    if as_json:
        for row in rows:
            _emit(out, row)
        return 0
    header = ("ID", "STATUS", "SIZE", "TASKS", "LICENSE", "NAME")
    table = [header] + [(r["id"], r["status"], format_bytes(r["size"]) if r["size"] else "?", ",".join(r["tasks"]),
                         r["license"], r["name"]) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + str(row[-1]), file=out)
    print(f"cache: {manager.cache_dir}", file=err)
    return 0


def _download(manager: Any, args: argparse.Namespace, out: TextIO, err: TextIO, as_json: bool) -> int:
    from .progressbar import ProgressLine

    bar = ProgressLine(1, stream=err)
    try:
        path = manager.download(args.model_id, progress=lambda f, msg: bar.update(0, f, msg),
                                allow_unverified=args.allow_unverified, force=args.force)
    finally:
        bar.clear()
    if as_json:
        _emit(out, {"command": "download", "id": args.model_id, "ok": True, "path": str(path)})
    else:
        print(f"{args.model_id}: installed and verified: {path}", file=err)
    return 0


def _verify(manager: Any, args: argparse.Namespace, out: TextIO, err: TextIO, as_json: bool) -> int:
    results = manager.verify(args.model_id)
    for r in results:
        if as_json:
            _emit(out, {"id": r.model_id, "ok": r.ok, "status": r.status.value,
                        "path": str(r.path) if r.path else None, "expected": r.expected,
                        "actual": r.actual, "message": r.message})
        else:
            print(f"{r.model_id}: {'ok' if r.ok else 'FAILED'} — {r.message}" + (f" ({r.path})" if r.path else ""),
                  file=out)
    if not results and not as_json:
        print("no installed models to verify", file=err)
    return 0 if all(r.ok for r in results) else 1


def _remove(manager: Any, args: argparse.Namespace, out: TextIO, err: TextIO, as_json: bool) -> int:
    removed = manager.remove(args.model_id)
    if as_json:
        _emit(out, {"command": "remove", "id": args.model_id, "ok": True, "removed": [str(p) for p in removed]})
    else:
        print(f"{args.model_id}: removed ({len(removed)} file(s))", file=err)
    return 0


def _import(manager: Any, args: argparse.Namespace, out: TextIO, err: TextIO, as_json: bool) -> int:
    tasks = [t.strip() for item in (args.tasks or []) for t in item.split(",") if t.strip()] or None
    entry, path = manager.import_file(Path(args.path), id=args.model_id, tasks=tasks, name=args.name)
    if as_json:
        _emit(out, {"command": "import", "id": entry.id, "ok": True, "path": str(path),
                    "architecture": entry.architecture, "scale": entry.scale, "tasks": list(entry.tasks),
                    "sha256": entry.sha256 or None})
    else:
        print(f"{entry.id}: imported {entry.architecture} x{entry.scale} ({', '.join(entry.tasks)}) -> {path}",
              file=err)
    return 0


_COMMANDS = {"list": _list, "download": _download, "verify": _verify, "remove": _remove, "import": _import}


def _emit(out: TextIO, obj: dict) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


