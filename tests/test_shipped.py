"""The specialists the repository ships (data/specialists): made by the current recipes, and scoring what their
cards say (so README's specialist figures are checked by CI)."""

import json
import shutil

import pytest

from workbench.core import artifacts, recipes
from workbench.core.evaluate import EvalConfig, evaluate
from workbench.core.validate import BadInput
from workbench.tasks import TASKS, get, splits


@pytest.mark.parametrize("task", list(TASKS))
def test_every_shipped_specialist_was_made_by_its_current_recipe(task):
    folder = recipes.shipped_folder(task)
    assert recipes.is_model_folder(folder), f"no shipped {task} specialist in {folder}: run `make specialists`"
    card = recipes.read_card(folder)
    assert card["recipe_key"] == recipes.key(task, "laptop"), (
        f"{folder} is stale: its recipe ({card['recipe_key']}) is not {task}'s current laptop recipe "
        f"({recipes.key(task, 'laptop')}); run `make specialists` to refresh it")
    assert card["data_version"] == recipes.DATA_VERSION.get(task, 1)
    assert recipes.shipped(task, "laptop") == folder
    assert (folder / "README.md").read_text() == artifacts.model_card(card), "the model card is not its card's"


def test_the_shipped_specialists_are_small():
    total = sum(f.stat().st_size for f in recipes.SHIPPED.rglob("*") if f.is_file())
    assert total < 12e6, f"data/specialists holds {total / 1e6:.1f} MB; ship float16 where accuracy holds"


@pytest.mark.slow  # scores 100 questions per task
@pytest.mark.parametrize("task", list(TASKS))
def test_a_shipped_specialist_loads_without_training_and_scores_what_its_card_says(task, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("trained instead of loading the shipped specialist")

    monkeypatch.setattr(recipes, "train_specialist", boom)
    model, tok, card = recipes.specialist(task, "laptop", progress=False)
    assert next(model.parameters()).dtype.is_floating_point and next(model.parameters()).element_size() == 4
    _, cfg = recipes.recipe(task, "laptop")
    ev = card["eval"]
    t = get(task)
    res = evaluate(model, tok, task, splits.load(task, "test", level=t.bbh_level, n=ev["n"]),
                   EvalConfig(rationale=cfg.rationale, format=cfg.format, batch_size=64))
    assert abs(res.accuracy - ev["accuracy"]) <= 0.02, (
        f"shipped {task} specialist scores {res.accuracy:.0%} on the test split; its card says {ev['accuracy']:.0%}")


def test_a_stale_shipped_specialist_is_not_used(tmp_path, monkeypatch, capsys):
    """A shipped folder whose card names another recipe is passed over (with the command that refreshes it)."""
    monkeypatch.setattr(recipes, "SHIPPED", tmp_path / "shipped")
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    folder = recipes.shipped_folder("tool_call")
    shutil.copytree(recipes.Path(recipes.__file__).resolve().parents[2] / "data" / "specialists" / "tool_call", folder)
    card = json.loads((folder / "workbench.json").read_text())
    (folder / "workbench.json").write_text(json.dumps({**card, "recipe_key": "0123456789ab"}))
    assert recipes.shipped("tool_call", "laptop") is None
    trained = []
    monkeypatch.setattr(recipes, "train_specialist", lambda *a, **k: trained.append(a) or (_ for _ in ()).throw(
        RuntimeError("stop")))
    with pytest.raises(RuntimeError, match="stop"):
        recipes.specialist("tool_call", "laptop", progress=False)
    assert trained and "make specialists" in capsys.readouterr().out


def test_ship_refuses_a_model_another_recipe_made(tmp_path):
    src = tmp_path / "m"
    shutil.copytree(recipes.shipped_folder("boolean_expressions"), src)
    card = json.loads((src / "workbench.json").read_text())
    card["train"] = {**card["train"], "steps": 7}
    (src / "workbench.json").write_text(json.dumps(card))
    with pytest.raises(BadInput, match=r"not trained by boolean_expressions's laptop recipe \(differs in: "
                                       r"train\.steps\)"):
        recipes.ship("boolean_expressions", src)


@pytest.mark.parametrize("tolerance, dtype", [(1.0, "float16"), (-1.0, "float32")])
def test_ship_stores_float16_only_where_accuracy_holds_and_keeps_the_weights(tmp_path, monkeypatch, tolerance, dtype):
    import torch

    from workbench.core.models import load_pretrained

    src = tmp_path / "m"
    shutil.copytree(recipes.shipped_folder("boolean_expressions"), src)
    monkeypatch.setattr(recipes, "SHIPPED", tmp_path / "shipped")
    card = recipes.ship("boolean_expressions", src, tolerance=tolerance, eval_n=4)
    assert card["stored_dtype"] == dtype and card["shipped"]["n"] == 4 and card["recipe_key"] == recipes.key(
        "boolean_expressions", "laptop")
    original, _ = load_pretrained(str(src))
    stored = dict(load_pretrained(str(recipes.shipped_folder("boolean_expressions")))[0].named_parameters())
    for name, p in original.named_parameters():  # loaded as float32 either way
        assert torch.equal(stored[name], p.half().float() if dtype == "float16" else p)
    assert (recipes.shipped_folder("boolean_expressions") / "README.md").exists()
