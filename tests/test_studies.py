"""Every notebook's study: sized through ``env.sized`` for each profile, and its verdict told in sentences."""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import replace

import pytest

from workbench.core import env
from workbench.studies import MODULES

STUDIES = sorted(MODULES)


@pytest.mark.parametrize("name", STUDIES)
@pytest.mark.parametrize("profile", env.PROFILES)
def test_every_study_is_sized_for_every_profile(name, profile):
    mod = importlib.import_module(f"workbench.studies.{name}")
    s = mod.study(profile)
    assert isinstance(s, mod.Study)
    laptop = mod.Study()
    changed = {f.name for f in dataclasses.fields(s) if getattr(s, f.name) != getattr(laptop, f.name)}
    assert changed <= set(mod.Study.SIZES.get(profile, {}))  # the laptop size is the defaults
    if profile == "smoke":
        assert changed, f"{name}'s smoke size changes nothing"


def test_sized_refuses_an_unknown_field():
    from workbench.studies.pruning import Study

    with pytest.raises(ValueError, match="has no field 'stepz'"):
        env.sized(Study, "laptop", stepz=3)
    assert env.sized(Study, "smoke", eval_n=7).eval_n == 7  # overrides come after the profile's sizes


def test_sentences_tell_each_verdict():
    from workbench.studies import curriculum, deployment, distillation, multitask, pruning, quantization

    cur = curriculum.verdict([
        {"scheduler": "random", "steps_to_target": 300, "steps_to_target_at_budget": 300, "test_bbh": 0.8,
         "test_bbh_range": (0.78, 0.82)},
        {"scheduler": "competence", "steps_to_target": 150, "steps_to_target_at_budget": 150, "test_bbh": 0.9,
         "test_bbh_range": (0.88, 0.92)}])
    assert curriculum.sentences(cur, curriculum.Study())[-1].endswith("met.")
    assert any("0.50x random's steps" in line for line in curriculum.sentences(cur, curriculum.Study()))

    pv = {"dense_accuracy": 0.9, "wanda_50_gap_points": 3.0, "wanda_50_recovered_gap_points": 0.0,
          "wanda_50_within_1_point": False, "structured": [], "structured_target_met": False}
    lines = pruning.sentences(pv)
    assert "NOT met" in lines[1] and lines[-1].endswith("NOT met.")

    qv = {"int8_linear_bytes_ratio": 3.9, "int8_speedup_b16": 2.5, "int8_gap_points": 0.0, "int8_met": True,
          "lowrank": [], "lowrank_met": False}
    lv = {"before": 0.1, "full": 0.5, "full_gap_points": 40.0,
          "lora": [{"rank": 8, "trainable_fraction": 0.01, "share_of_full_gap": 0.95, "meets_target": True}],
          "met": True}
    lines = quantization.sentences(qv, lv)
    assert "3.9x smaller" in lines[0] and "95% of full fine-tuning's gain" in " ".join(lines)

    mv = {"arms": {"multitask": {"worst_gap": 0.0, "param_share": 0.2, "meets_target": False}},
          "specialists_learned": False, "met": False}
    assert "scored 0%" in multitask.sentences(mv)[0]

    dv = {"exact_calls": 0.97, "exact_calls_met": True, "valid_json_constrained": 1.0, "valid_json_met": True,
          "p50_speedup_vs_pretrained": None, "speedup_met": False}
    assert deployment.sentences(dv)[2] == "No pretrained router measured."

    close = {"pairs": [{"student": "s", "teacher": "t", "ratio": 30.0, "gap_points": 1.0}], "met": True,
             "met_by": ["s"]}
    assert distillation.sentences(close=close)[-1].endswith("met by s.")


def test_formats_study_spends_the_same_tokens_on_every_format():
    from workbench.studies import formats

    s = formats.study("smoke", task="dyck_languages")
    assert formats.formats_of(s) == ("answer", "full", "closes", "stack", "reduce")
    steps = {f: formats.config(replace(s, tokens=500_000), f).steps for f in formats.formats_of(s)}
    # shorter completions, more steps
    assert steps["answer"] > steps["stack"] > steps["reduce"] > steps["closes"] > steps["full"]
    cfg = formats.config(s, "answer")
    assert not cfg.rationale and formats.config(s, "stack").format == "stack"
    row = formats.run_one(s, "stack")
    assert 0 <= row["accuracy"] <= 1 and set(row["by_level"]) == {1, 2, 3, 4, 5}
    assert row["train_tokens"] > 0 and "| stack |" in formats.table([row])


@pytest.mark.slow  # trains three students (12 s): `make unit` and CI run it
def test_formats_memorisation_compares_a_fixed_pool_with_fresh_examples():
    from workbench.studies import formats

    s = formats.lesson("smoke", task="tool_call")
    assert s.pool == 16 and formats.lesson("laptop").task == "boolean_expressions"
    rows = formats.memorisation(s, "answer")
    assert [r["data"] for r in rows] == ["fixed pool of 16", "fresh examples"]
    again = formats.memorisation(s, "answer", fresh=rows[1])  # the format run's fresh model, reused
    assert again[1]["seen_accuracy"] == rows[1]["seen_accuracy"] and again[1]["accuracy"] == rows[1]["accuracy"]
    assert rows[0]["distinct_examples"] == 16 and rows[1]["distinct_examples"] == rows[1]["examples_seen"]
    assert rows[0]["steps"] == rows[1]["steps"] and all(0 <= r["seen_accuracy"] <= 1 for r in rows)
    assert set(rows[0]["by_level"]) == {1, 2, 3, 4, 5}  # level 5: tool_call's held-out vocabularies
    assert "| fixed pool of 16 |" in formats.memorisation_table(rows)


def test_format_curves_plot():
    import matplotlib

    matplotlib.use("Agg")
    from workbench import plots

    rows = [{"format": "answer", "accuracy": 0.5, "examples_seen": 64, "curve": [(32, 0.25), (64, 0.5)]},
            {"format": "full", "accuracy": 0.1, "examples_seen": 32, "curve": []}]
    fig = plots.format_curves(rows)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["answer (50% test)", "full (10% test)"]


def test_formats_sentences_are_computed_from_the_rows():
    from workbench.studies import formats

    s = formats.lesson("smoke", task="dyck_languages")
    rows = [{"format": "answer", "accuracy": 0.6, "by_level": {3: 0.6, 5: 0.1}},
            {"format": "full", "accuracy": 0.2, "by_level": {3: 0.2}}]
    memo = [{"data": "fixed pool of 16", "seen_accuracy": 0.9, "accuracy": 0.3}]
    text = formats.sentences(s, rows, memo)
    assert text[0] == "At 20,000 training tokens each, answer led at the BBH level with 60% (full 20%)."
    assert text[1] == "At the hardest level (L5): answer 10%, full 0%."
    assert text[2].endswith("(gap +60 points).")
