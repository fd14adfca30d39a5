"""Recipes, the specialist cache, artifacts and the training benchmark."""

import json
import subprocess
import sys

import pytest

from workbench.core import artifacts, recipes
from workbench.tasks import TASKS, get


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("profile", ["smoke", "laptop", "gpu"])
def test_every_task_has_a_valid_recipe(task, profile):
    model_cfg, train_cfg = recipes.recipe(task, profile)
    train_cfg.check()
    assert train_cfg.tasks == (task,) and model_cfg.width % model_cfg.heads == 0


def test_steps_override_keeps_the_config_valid():
    _, cfg = recipes.recipe("boolean_expressions", "laptop", steps=50)
    cfg.check()
    assert cfg.steps == 50 and cfg.warmup <= 5
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        recipes.recipe("boolean_expressions", "laptop", steps=0)


def test_specialist_trains_once_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    model, tok, card = recipes.specialist("tool_call", "smoke", progress=False)
    assert card["tasks"] == ["tool_call"] and card["params"] > 0 and "by_level" in card["eval"]
    assert card["train"]["augment"] and card["data"].endswith(recipes.DRAWS_AUGMENTED)  # the recipe's draws

    def boom(*a, **k):
        raise AssertionError("trained again instead of loading the cache")

    monkeypatch.setattr(recipes, "train_specialist", boom)
    model2, _, card2 = recipes.specialist("tool_call", "smoke")
    assert card2 == card
    assert all((p1 == p2).all() for p1, p2 in zip(model.parameters(), model2.parameters()))
    folders = list((tmp_path / "specialists").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("tool_call-smoke-")


def test_model_card_says_what_was_trained(tmp_path):
    card = {"name": "x", "tasks": ["boolean_expressions"], "profile": "laptop", "params": 123, "bytes": 456,
            "train": {"steps": 7, "seed": 0, "rationale": True}, "train_seconds": 1.0, "machine": "m",
            "eval": {"n": 4, "accuracy": 0.5, "by_level": {"3": 0.5}, "latency_ms": 2.0}}
    text = artifacts.model_card(card)
    for needle in ("boolean_expressions", "laptop", "| parameters | 123 |", "| bytes on disk | 456 |",
                   "| steps | 7 |", "50.0%", "L3: 50%"):
        assert needle in text
    assert artifacts.recipe_key({"a": 1}) != artifacts.recipe_key({"a": 2})


@pytest.mark.slow  # a subprocess
def test_bench_train_prints_both_rates():
    p = subprocess.run([sys.executable, "-m", "workbench", "bench", "train", "--profile", "smoke", "--steps", "8"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["tokens_per_s"] > 0 and out["matmul_gflops"] > 0
    assert out["fraction_of_matmul"] == pytest.approx(out["model_gflops"] / out["matmul_gflops"])
    assert "GFLOP/s" in p.stdout and "% of the matmul rate" in p.stdout
    assert 0 < out["data_share"] < 1 and "of step time generating examples" in p.stdout


@pytest.mark.parametrize("task", list(TASKS))
def test_a_recipe_says_what_its_student_writes_and_an_override_drops_a_compact_format(task):
    _, cfg = recipes.recipe(task, "laptop")
    assert cfg.format in get(task).formats
    _, other = recipes.recipe(task, "laptop", rationale=not cfg.rationale)
    assert other.rationale != cfg.rationale and other.format == "full"
    assert recipes.recipe(task, "laptop", rationale=cfg.rationale)[1] == cfg


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_a_bad_batch_size_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=f"batch_size must be a positive integer, got {bad!r}"):
        recipes.recipe("dyck_languages", "laptop", batch_size=bad)


def test_the_quick_recipes_are_sized_for_every_task():
    from workbench import tasks

    assert set(recipes.QUICK_STEPS) == set(tasks.NAMES) and set(recipes.QUICK_BATCH) <= set(tasks.NAMES)
    assert set(recipes.QUICK_LEVELS) <= set(tasks.NAMES) and set(recipes.QUICK_AUGMENT) <= set(tasks.NAMES)
    for name, steps in recipes.QUICK_STEPS.items():
        cfg = recipes.recipe(name, "laptop", steps=steps, batch_size=recipes.QUICK_BATCH.get(name, 16),
                             levels=recipes.QUICK_LEVELS.get(name), augment=recipes.QUICK_AUGMENT.get(name))[1]
        cfg.check()  # evaluation and checkpoints on bucket edges, levels the task has
        assert tasks.get(name).bbh_level in (cfg.levels or tasks.get(name).levels)  # the scored level is trained


def test_a_recipe_takes_other_training_levels_and_refuses_bad_ones():
    _, cfg = recipes.recipe("tool_call", "laptop", levels=[2, 3])
    assert cfg.levels == (2, 3) and cfg.check() is None
    assert recipes.recipe("tool_call", "laptop")[1].levels == (1, 2, 3, 4)
    for bad in ([], 2, "23", [0], [2, True], [9]):
        with pytest.raises(ValueError, match="level") as err:
            recipes.recipe("tool_call", "laptop", levels=bad)
        assert "\n" not in str(err.value)


def test_the_quick_tool_call_run_draws_plain_examples_where_the_shipped_recipe_augments(tmp_path, monkeypatch):
    # seed 0 of the 15-minute run scored 39% at level 2 with augmented draws against 94% with plain ones (README)
    assert recipes.recipe("tool_call", "laptop")[1].augment is True
    assert recipes.QUICK_AUGMENT["tool_call"] is False
    seen = {}

    class Stop(Exception):
        pass

    def fake(name, profile, **kw):
        seen.update(kw, profile=profile)
        raise Stop

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(recipes, "train_specialist", fake)
    with pytest.raises(Stop):
        recipes.quick("tool_call", progress=False)
    assert seen["augment"] is False and seen["levels"] == recipes.QUICK_LEVELS["tool_call"]
    cfg = recipes.recipe("tool_call", "laptop", steps=seen["steps"], batch_size=seen["batch_size"],
                         levels=seen["levels"], augment=seen["augment"])[1]
    assert cfg.augment is False and cfg.check() is None


def test_a_recipe_that_augments_names_the_augment_version_in_its_key(monkeypatch):
    plain = recipes.recipe("tool_call", "laptop", augment=False)
    shipped, plain_key = recipes.key("tool_call", "laptop"), recipes._key("tool_call", "laptop", *plain)
    monkeypatch.setitem(recipes.AUGMENT_VERSION, "tool_call", recipes.AUGMENT_VERSION["tool_call"] + 1)
    assert recipes.key("tool_call", "laptop") != shipped  # other augmented draws: another recipe
    assert recipes._key("tool_call", "laptop", *plain) == plain_key  # plain draws keep their key


def test_a_recipe_takes_augmented_draws_only_where_the_task_has_them():
    assert recipes.recipe("tool_call", "laptop", augment=False)[1].augment is False
    assert recipes.recipe("dyck_languages", "laptop")[1].augment is False
    with pytest.raises(ValueError, match="dyck_languages.*tool_call") as err:
        recipes.recipe("dyck_languages", "laptop", augment=True)
    assert "\n" not in str(err.value)
    for bad in (1, "yes", 0):
        with pytest.raises(ValueError, match="augment must be True, False or None") as err:
            recipes.recipe("tool_call", "laptop", augment=bad)
        assert "\n" not in str(err.value)


@pytest.mark.slow  # compiles and trains the laptop student for 8 steps
def test_the_quick_run_trains_once_at_its_budget_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    monkeypatch.setitem(recipes.QUICK_STEPS, "boolean_expressions", 8)
    monkeypatch.setitem(recipes.QUICK_BATCH, "boolean_expressions", 4)
    monkeypatch.setitem(recipes.QUICK_LEVELS, "boolean_expressions", (2, 3))
    card = recipes.quick("boolean_expressions", progress=False)
    assert card["train"]["steps"] == 8 and card["profile"] == "laptop" and card["eval"]["n"] > 0
    assert card["train"]["levels"] == [2, 3]
    assert card["train"]["batch_size"] == 4 != recipes.recipe("boolean_expressions", "laptop")[1].batch_size
    (folder,) = (tmp_path / "specialists").iterdir()
    assert folder.name == f"boolean_expressions-quick-{card['recipe_key']}"
    assert card["recipe_key"] != recipes.key("boolean_expressions", "laptop")  # not the shipped recipe's

    def boom(*a, **k):
        raise AssertionError("trained again instead of loading the cache")

    monkeypatch.setattr(recipes, "train_specialist", boom)
    assert recipes.quick("boolean_expressions") == card


@pytest.mark.slow  # a subprocess
def test_the_specialists_script_refuses_quick_with_another_profile():
    p = subprocess.run([sys.executable, "scripts/specialists.py", "--quick", "--profile", "smoke"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--quick runs the laptop recipes; drop --profile smoke" in p.stderr
    p = subprocess.run([sys.executable, "scripts/specialists.py", "--quick", "no_such_task"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "no_such_task" in p.stderr
