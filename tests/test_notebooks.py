"""The lesson notebooks' shape (objective and run time at the top, an exercise table, hidden worked
solutions tagged so that ``make run`` leaves them to the participant) and the runner that honours the tag."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*-*.ipynb"))


def runner():
    spec = importlib.util.spec_from_file_location("notebooks_script", ROOT / "scripts" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cells(path):
    return json.loads(path.read_text())["cells"]


def test_every_lesson_notebook_is_found():
    assert len(NOTEBOOKS) >= 12 and NOTEBOOKS[0].name.startswith("00-")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_lesson_opens_with_its_objective_and_run_time_and_ends_with_exercises(path):
    top = "".join(cells(path)[0]["source"])
    assert top.startswith("# ") and "**Objective.**" in top and "run time" in top.lower() and "`laptop`" in top
    markdown = ["".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown"]
    exercises = next(m for m in markdown if "## Exercises" in m)
    assert "| # |" in exercises and "laptop minutes" in exercises and "GPU" in exercises
    assert any("*Predict before you run:*" in m for m in markdown), f"{path.name} asks no prediction before a wait"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_worked_solution_is_hidden_and_tagged(path):
    solutions = [c for c in cells(path) if c["cell_type"] == "code" and "".join(c["source"]).startswith("# Solution")]
    assert solutions, f"{path.name} has no worked solution"
    for c in solutions:
        assert c["metadata"].get("jupyter", {}).get("source_hidden") is True, c["id"]
        assert runner().SOLUTION in c["metadata"].get("tags", []), c["id"]
    tagged = [c for c in cells(path) if runner().SOLUTION in c["metadata"].get("tags", [])]
    assert tagged == solutions  # nothing but a worked solution is left out of `make run`


@pytest.mark.slow
def test_the_runner_leaves_the_solutions_to_the_participant_unless_asked(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1\nprint('lesson', x)"),
                nbformat.v4.new_code_cell("# Solution sketch\nprint('solution')", metadata={"tags": ["solution"]})]
    path = tmp_path / "00-tiny.ipynb"
    nbformat.write(nb, path)
    script = runner()
    out = lambda nb: ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells]
    assert out(script.execute(path, "smoke", timeout=120, solutions=False)) == ["lesson 1\n", ""]
    assert out(script.execute(path, "smoke", timeout=120)) == ["lesson 1\n", "solution\n"]
