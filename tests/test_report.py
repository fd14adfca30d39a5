import json

import pytest

from workbench import report


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
