"""The ``bench`` command: a thin layer over the Python API.

Each stage contributes its sub-commands through an ``add_commands(subparsers)`` function in its own
``cli`` module (listed in ``STAGE_CLIS``); a sub-command's handler receives the parsed arguments and
returns an exit code. Errors a user can fix (``ValueError``, ``FileNotFoundError``, ...) are printed
as one line without a traceback; ``BENCH_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

STAGE_CLIS = (
    "bench.data.cli",
    "bench.train.cli",
    "bench.attribution.cli",
    "bench.sweep.cli",
    "bench.report.cli",
    "bench.registry_cli",  # bench list: reads every registry, belongs to no stage
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark explanation maps (Grad-CAM and rivals) against reference lesion masks.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in STAGE_CLIS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a stage not built yet
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.add_commands(sub)
    return parser


def _plugin_warnings_as_lines() -> None:
    """Show a plugin that failed to load (:class:`bench.registry.PluginWarning`) as one ``bench: warning:``
    line on stderr, without the source line Python's default format adds; other warnings as before."""
    import warnings

    from bench.registry import PluginWarning

    default = warnings.showwarning
    if getattr(default, "bench_plugins", False):  # installed by an earlier main() in this process
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PluginWarning):
            print(f"bench: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    show.bench_plugins = True
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    _plugin_warnings_as_lines()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from bench.version import VERSION

        print(VERSION)
        return 0
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, PermissionError, OSError, RuntimeError) as exc:
        if os.environ.get("BENCH_DEBUG"):
            raise
        print(f"bench {args.command}: error: {exc}{_hint(exc)}", file=sys.stderr)
        return 1


def _hint(exc: BaseException) -> str:
    """What to do about an error of the file system (a full disk, a folder that cannot be written)."""
    import errno

    code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (" (the disk or quota is full: free some space, or pass --out on another disk; what was already"
                " written is kept, and running the same command again resumes)")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return " (that folder cannot be written: pass a writable --out, or fix its permissions)"
    return ""


if __name__ == "__main__":
    sys.exit(main())
