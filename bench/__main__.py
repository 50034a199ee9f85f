"""Run the benchmarks: ``python -m bench [NAME ...] [--quick]`` (every module of bench/ by default)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

import bench
from bench import Row


def discover() -> dict[str, ModuleType]:
    """Every benchmark module of the package by name (helpers start with ``_``)."""
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))
    return {name: importlib.import_module(f"bench.{name}") for name in names}


def format_rows(rows: Sequence[Row]) -> str:
    table = [("bench", "measured", "value", "unit", "note")]
    table += [(r.bench, r.name, f"{r.value:.3g}" if abs(r.value) < 1000 else f"{r.value:.0f}", r.unit, r.note) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    return "\n".join(
        "  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3].ljust(widths[3]), row[4]]).rstrip()
        for row in table
    )


def main(argv: Sequence[str] | None = None) -> int:
    modules = discover()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {', '.join(modules)})")
    parser.add_argument("--quick", action="store_true", help="small inputs and fewer cases: checks that a benchmark runs, figures are rough")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(modules))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(modules)}")
    for name in args.names or list(modules):
        print(f"== {name}", flush=True)
        print(format_rows(modules[name].run(quick=args.quick)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
