"""Notebook chores for the Makefile.

    python scripts/notebooks.py run [--profile laptop] [--solutions] [NOTEBOOK ...]  # execute headless into reports/
    python scripts/notebooks.py strip [NOTEBOOK ...]                   # strip outputs before commit
    python scripts/notebooks.py bless [NOTEBOOK ...]                   # smoke-run, keep checked outputs

Outputs are stripped from every cell except those marked ``# NBVAL_CHECK_OUTPUT``: their stored
output is what nbval compares a fresh run against, so it is the test's expected value and stays.

The exercises' worked solutions (code cells tagged ``solution``, hidden in JupyterLab) are a participant's
to run: ``run`` leaves them out unless ``--solutions`` (each notebook's exercise table gives their laptop
minutes; several train a model of their own), so a notebook's run time is its lesson's. nbval (``make
nbtest``, smoke) runs every cell, solutions included.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
MARK = "# NBVAL_CHECK_OUTPUT"
SOLUTION = "solution"  # the tag of a worked solution's cell


def notebooks(names: list[str]) -> list[Path]:
    return [Path(n) for n in names] if names else sorted((ROOT / "notebooks").glob("[0-9][0-9]*-*.ipynb"))


def strip(nb) -> None:
    nb.metadata.pop("widgets", None)  # saved widget state: large, and rebuilt on every run
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        if MARK not in cell.source:  # nbval skips a checked cell whose execution_count is None
            cell.outputs = []
            cell.execution_count = None


def execute(path: Path, profile: str, timeout: int = 1800, solutions: bool = True):
    """``path`` executed in ``profile``; ``solutions=False`` leaves the cells tagged ``solution`` unrun."""
    from nbconvert.preprocessors import ExecutePreprocessor

    os.environ["WORKBENCH_PROFILE"] = profile
    nb = nbformat.read(path, as_version=4)
    skip = {} if solutions else {"skip_cells_with_tag": SOLUTION}
    ExecutePreprocessor(timeout=timeout, kernel_name="python3", **skip).preprocess(
        nb, {"metadata": {"path": str(path.parent)}})
    return nb


def cmd_run(args) -> int:
    from nbconvert import HTMLExporter

    out = ROOT / "reports"
    out.mkdir(exist_ok=True)
    for path in notebooks(args.notebooks):
        t0 = time.time()
        print(f"[{args.profile}] {path.name} ...", flush=True)
        nb = execute(path, args.profile, solutions=args.solutions)
        nbformat.write(nb, out / path.name)
        html, _ = HTMLExporter().from_notebook_node(nb)
        (out / path.with_suffix(".html").name).write_text(html)
        seconds = time.time() - t0
        print(f"[{args.profile}] {path.name} done in {seconds:.0f} s", flush=True)
        from workbench.core import report

        report.record(f"runtime/{path.stem}/{'seconds_with_solutions' if args.solutions else 'seconds'}",
                      round(seconds), profile=args.profile)
    from workbench.core import report

    print(report.write_markdown(args.profile))
    return 0


def cmd_strip(args) -> int:
    for path in notebooks(args.notebooks):
        nb = nbformat.read(path, as_version=4)
        strip(nb)
        nbformat.write(nb, path)
    return 0


def cmd_bless(args) -> int:
    for path in notebooks(args.notebooks):
        nb = execute(path, "smoke")
        strip(nb)
        nbformat.write(nb, path)
        print(f"blessed {path.name}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("run", "strip", "bless"))
    p.add_argument("--profile", default=os.environ.get("WORKBENCH_PROFILE") or "laptop")
    p.add_argument("--solutions", action="store_true", help="run: the exercises' worked solutions too")
    p.add_argument("notebooks", nargs="*")
    args = p.parse_intermixed_args()  # "run --profile laptop NOTEBOOK" as the docstring says
    return {"run": cmd_run, "strip": cmd_strip, "bless": cmd_bless}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
