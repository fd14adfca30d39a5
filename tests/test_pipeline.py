"""The running pipeline of notebooks 04-08: stages saved between notebooks, one table in ``report``."""

from __future__ import annotations

import pytest
import torch

from workbench.studies import capstone, pipeline


@pytest.fixture
def stages(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_pruned_is_made_once_then_loaded_and_made_again_for_another_pruning(stages, tiny_student, capsys):
    model, tok, _ = tiny_student
    card = {"recipe_key": "abc", "train": {"rationale": False}}
    st = pipeline.study("smoke", recovery_steps=2, calib_n=4)
    small, seconds = pipeline.pruned(model, tok, card, st, profile="smoke")
    assert small.config.intermediate_size == model.config.intermediate_size // 2 and seconds > 0
    again, same_seconds = pipeline.pruned(model, tok, card, st, profile="smoke")  # the next notebook loads it
    assert same_seconds == seconds
    assert all(torch.equal(a, b) for a, b in zip(small.state_dict().values(), again.state_dict().values()))
    assert "pruning again" not in capsys.readouterr().out
    other = pipeline.pruned(model, tok, card, pipeline.study("smoke", recovery_steps=2, calib_n=4, neurons=0.25),
                            profile="smoke")[0]
    assert "pruning again" in capsys.readouterr().out
    assert other.config.intermediate_size == model.config.intermediate_size - model.config.intermediate_size // 4
    newer = pipeline.pruned(model, tok, {**card, "recipe_key": "def"}, st, profile="smoke")[0]  # a new specialist
    assert newer.config.intermediate_size == model.config.intermediate_size // 2
    assert "pruning again" in capsys.readouterr().out


def test_rows_land_in_pipeline_order_with_cumulative_minutes(stages, tiny_student):
    model, tok, _ = tiny_student
    card = {"train": {"rationale": False}}
    st = pipeline.study("smoke", n=2)
    q, nbytes = pipeline.int8(model)
    pipeline.add("int8", q, tok, card, st, nbytes=nbytes, params=1, profile="smoke")  # 05 run before 04
    pipeline.add("specialist", model, tok, card, st, train_minutes=2.5, profile="smoke")
    pipeline.add_faithfulness([{"model": "dense specialist", "method": "integrated_gradients", "deletion_gain": 0.2},
                               {"model": "dense specialist", "method": "random", "deletion_gain": 0.0}],
                              profile="smoke")
    rows = pipeline.rows("smoke")
    assert [r["stage"] for r in rows] == ["specialist", "int8"]
    assert rows[0]["ig_deletion_gain"] == 0.2 and rows[0]["n"] == 2 and 0 <= rows[0]["accuracy"] <= 1
    assert [r["train_minutes_total"] for r in rows] == [2.5, 2.5] and rows[1]["bytes"] == nbytes < rows[0]["bytes"]
    md = pipeline.table("smoke")
    assert md.count("\n") == 3 and "+0.200" in md and "| 05 |" in md and "—" in md  # int8 has no IG column


def test_an_unknown_stage_is_refused_naming_the_stages(stages, tiny_student):
    model, tok, _ = tiny_student
    with pytest.raises(ValueError, match="'quantised' is not a pipeline stage; accepted: specialist, pruned"):
        pipeline.add("quantised", model, tok, {"train": {"rationale": False}}, pipeline.study("smoke"), profile="smoke")


def test_the_pipeline_measures_the_capstones_requests():
    st = pipeline.study("smoke")
    assert isinstance(st, capstone.Study) and st == capstone.study("smoke")


@pytest.mark.slow
def test_the_exported_stage_checks_the_export_and_routes_through_onnx(stages, tiny_student):
    model, tok, _ = tiny_student
    st = pipeline.study("smoke", n=2, check_n=3)
    checks = pipeline.exported(model, tok, {"train": {"rationale": False}}, st, stages / "export", profile="smoke")
    fp32 = [c for c in checks if "int8" not in c["runtime"]]
    assert fp32 and all(c["identical"] == c["n"] == 3 for c in fp32)  # the export answers as PyTorch does
    (row,) = pipeline.rows("smoke")
    assert row["stage"] == "exported" and row["n"] == 2 and row["notebook"] == "08"
    assert 0 < row["bytes"] < (stages / "export" / "model.kv.int8.onnx").stat().st_size + 1
