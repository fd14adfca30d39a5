"""The specialists the repository ships (data/specialists): made by the current recipes, and scoring what their
cards say (so README's specialist figures are checked by CI)."""

import dataclasses
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
    assert card["data"].endswith(recipes.DRAWS_AUGMENTED) == card["train"].get("augment", False)  # says how it drew
    if card["train"].get("augment"):
        assert card["augment_version"] == recipes.AUGMENT_VERSION.get(task, 1)
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


def test_ship_refuses_a_model_trained_on_other_augmented_draws(tmp_path):
    src = tmp_path / "m"
    shutil.copytree(recipes.shipped_folder("tool_call"), src)
    card = json.loads((src / "workbench.json").read_text())
    assert card["train"]["augment"] is True
    card["augment_version"] = recipes.AUGMENT_VERSION["tool_call"] - 1
    (src / "workbench.json").write_text(json.dumps(card))
    with pytest.raises(BadInput, match=r"trained on tool_call's augmented draws version \d+, not the current \d+; "
                                       r"train it again with `make specialists`$"):
        recipes.ship("tool_call", src)


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


# notebook 03's SmolLM2 + LoRA teacher (data/teachers) -----------------------------------------------------------
def _teacher():
    from workbench.studies import distillation as ds

    task, cfg = ds.study("laptop").task, ds.lora_teacher_config("laptop")
    return ds, task, cfg, ds.SHIPPED_TEACHERS / ds.teacher_id(task, cfg)


def test_the_shipped_lora_teacher_was_made_by_its_current_recipe():
    ds, task, cfg, folder = _teacher()
    assert (folder / "workbench.json").exists(), (
        f"no shipped LoRA teacher for the current laptop recipe in {folder}: run `make specialists`")
    card = artifacts.read_card(folder)
    assert card["id"] == folder.name and card["lora"] == dataclasses.asdict(cfg) and card["stored_dtype"] == "float16"
    assert (folder / "README.md").read_text() == artifacts.model_card(card)
    others = [p.name for p in ds.SHIPPED_TEACHERS.iterdir() if p.name != folder.name]
    assert not others, f"data/teachers also holds {others}: teachers of older recipes (`ship_teacher` removes them)"
    total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert total < 6e6, f"the shipped teacher takes {total / 1e6:.1f} MB"


@pytest.mark.slow  # 100 rationales from a 135M-parameter model
def test_the_shipped_lora_teacher_loads_without_training_and_scores_what_its_card_says(monkeypatch, tmp_path):
    from workbench import lora

    ds, task, cfg, folder = _teacher()
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))  # nothing cached: only the shipped adapters can load
    monkeypatch.setattr(lora, "finetune", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    model, tok, card = ds.lora_teacher(task, cfg)
    assert card["id"] == folder.name and not (tmp_path / "teachers").exists()
    ev = ds._score_teacher(model, tok, task, cfg)
    assert abs(ev["accuracy"] - card["eval"]["accuracy"]) <= 0.02, (
        f"the shipped teacher scores {ev['accuracy']:.0%}; its card says {card['eval']['accuracy']:.0%}")
    with pytest.raises(AssertionError, match="trained"):  # fresh: the recipe's own run, never the shipped one
        ds.lora_teacher(task, cfg, fresh=True)
