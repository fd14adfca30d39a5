import json

import pytest

from workbench.core import report


@pytest.fixture
def reports(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_REPORT_DIR", str(tmp_path))
    return tmp_path


def test_record_then_markdown(reports):
    report.record("baselines/smollm2/boolean_expressions/accuracy", 0.43, profile="laptop")
    report.record("baselines/smollm2/dyck_languages/accuracy", 0.16, profile="laptop")
    report.record("baselines/gemma/boolean_expressions/accuracy", 0.5, profile="laptop")
    data = json.loads((reports / "results.json").read_text())
    assert data["profile"] == "laptop" and "cores" in data["machine"]
    assert data["results"]["baselines/smollm2/dyck_languages/accuracy"] == 0.16
    md = report.write_markdown("laptop").read_text()
    assert "## baselines: accuracy" in md and "| | boolean_expressions | dyck_languages |" in md
    assert "| gemma | 0.500 |  |" in md and "| smollm2 | 0.430 | 0.160 |" in md
    assert "Profile `laptop`" in md


def test_smoke_runs_never_touch_the_real_report(reports):
    report.record("a/b", 1, profile="smoke")
    assert (reports / "smoke" / "results.json").exists() and not (reports / "results.json").exists()


@pytest.mark.parametrize("key, value, message", [
    ("accuracy", 0.1, "must look like"), ("a//b", 0.1, "must look like"),
    ("a/b", [1], "must be a number or a string"), ("a/b", True, "must be a number or a string"),
])
def test_bad_records_are_refused(reports, key, value, message):
    with pytest.raises(ValueError, match=message):
        report.record(key, value, profile="laptop")


def test_record_rows_writes_every_row_with_consistent_keys(reports):
    rows = [{"model": "wanda 50% + recovery", "accuracy": 0.905, "bytes": 1234, "latency_b16_ms": 3.14159},
            {"model": "dense", "accuracy": 0.96, "bytes": 2000}]
    out = report.record_rows("pruning/bool", rows, {"accuracy": "accuracy_pct", "bytes": "bytes",
                                                   "latency_b16_ms": "latency_b16_ms"}, profile="laptop")
    assert out == {"pruning/bool/wanda_50pct_+_recovery/accuracy_pct": 90.5,
                   "pruning/bool/wanda_50pct_+_recovery/bytes": 1234,
                   "pruning/bool/wanda_50pct_+_recovery/latency_b16_ms": 3.142,
                   "pruning/bool/dense/accuracy_pct": 96.0, "pruning/bool/dense/bytes": 2000}
    assert json.loads((reports / "results.json").read_text())["results"] == out


def test_record_verdict_keeps_the_flat_answers(reports):
    out = report.record_verdict("agent", {"exact_calls": 0.97, "exact_calls_met": True, "speedup": None,
                                          "rows": [1, 2]}, profile="laptop")
    assert out == {"agent/verdict/exact_calls": 0.97, "agent/verdict/exact_calls_met": "True",
                   "agent/verdict/speedup": "None"}


def test_record_many_checks_every_key_before_writing(reports):
    with pytest.raises(ValueError, match="must look like"):
        report.record_many({"a/b": 1, "bad": 2}, profile="laptop")
    assert not (reports / "results.json").exists()


def test_table_fills_each_column_from_the_row():
    rows = [{"model": "dense", "accuracy": 0.9612, "params": 821376, "identical": 3, "n": 4}]
    text = report.table(rows, {"variant": "{model}", "params": "{params:,}", "accuracy": "{accuracy:.1%}",
                               "same": "{identical}/{n}"})
    assert text.splitlines() == ["| variant | params | accuracy | same |", "|---|---|---|---|",
                                 "| dense | 821,376 | 96.1% | 3/4 |"]


def test_add_row_appends_then_updates_by_key_and_renders(reports):
    report.add_row("pipeline", {"stage": "specialist", "accuracy": 0.9, "params": 100}, profile="laptop")
    report.add_row("pipeline", {"stage": "pruned", "accuracy": 0.85, "params": 60}, profile="laptop")
    rows = report.add_row("pipeline", {"stage": "specialist", "gain": 0.1}, profile="laptop")
    assert [r["stage"] for r in rows] == ["specialist", "pruned"]  # updated in place, not appended
    assert rows[0] == {"stage": "specialist", "accuracy": 0.9, "params": 100, "gain": 0.1}
    assert report.rows("pipeline", profile="laptop") == rows and report.rows("other", profile="laptop") == []
    report.record("a/b", 1, profile="laptop")  # figures and tables live side by side
    assert report.rows("pipeline", profile="laptop") == rows
    md = report.write_markdown("laptop").read_text()
    assert "## pipeline" in md and "| stage | accuracy | gain | params |" in md
    assert "| specialist | 0.900 | 0.100 | 100 |" in md and "| pruned | 0.850 |  | 60 |" in md


@pytest.mark.parametrize("row, message", [({"accuracy": 0.9}, "has no 'stage' field"),
                                          ({"stage": "x", "calls": [1]}, "field 'calls' must be a number")])
def test_add_row_refuses_rows_it_cannot_keep(reports, row, message):
    with pytest.raises(ValueError, match=message):
        report.add_row("pipeline", row, profile="laptop")
    assert report.rows("pipeline", profile="laptop") == []
