"""The fixed splits in data/: as the generators make them, well-formed, and no test leakage."""

import json

import pytest

from workbench.tasks import TASKS, get, splits

# the two slowest to regenerate (16-23 s each) run with the slow tests (`make unit`, CI), the rest in the fast loop
SLOW_SPLITS = {"boolean_expressions", "dyck_languages"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SPLITS else n for n in TASKS])
def test_stored_splits_are_what_the_generators_make(name):
    made = splits.make_all(name)
    for split in splits.SPLITS:
        stored = splits.load(name, split)
        assert stored == made[split], f"data/{name}/{split}.jsonl is stale: run `make data`"


@pytest.mark.parametrize("name", list(TASKS))
def test_no_test_input_in_train_or_validation(name):
    test = {e.input for e in splits.load(name, "test")}
    val = {e.input for e in splits.load(name, "validation")}
    train = {e.input for e in splits.load(name, "train")}
    assert not test & train and not test & val and not val & train


@pytest.mark.parametrize("name", list(TASKS))
def test_lines_have_the_fields_of_tasks_md(name):
    task = get(name)
    with open(splits.path(name, "test")) as f:
        for line in f:
            obj = json.loads(line)
            assert set(obj) == {"task", "level", "input", "rationale", "target"} and obj["task"] == name
            assert obj["level"] in task.levels and task.score(obj["target"], obj["target"])
            assert obj["rationale"].endswith(f"So the answer is {obj['target']}.")
    levels = {e.level for e in splits.load(name, "test")}
    assert levels == set(task.levels)
    assert len(splits.load(name, "test", level=task.bbh_level)) == splits.PER_LEVEL["test"]


def test_bad_split_and_level():
    with pytest.raises(ValueError, match="unknown split 'dev'; splits are test, validation, train"):
        splits.load("boolean_expressions", "dev")
    with pytest.raises(ValueError, match="has no level 7"):
        splits.load("boolean_expressions", "test", level=7)
