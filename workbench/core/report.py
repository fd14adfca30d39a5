"""The numbers a run produces, gathered in one file per profile for ``make run`` to publish.

Notebooks call ``record("baselines/smollm2-135m-instruct/boolean_expressions/accuracy", 0.43)``;
each call updates ``reports/results.json`` (``reports/smoke/`` for the smoke profile, so CI
never overwrites a real run) atomically, stamped with the profile and the machine.
``write_markdown()`` renders it as ``results.md``: one table per notebook section.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from workbench.core.files import write_atomic
from workbench.core.validate import BadInput, env_folder, read_json

ROOT = Path(__file__).resolve().parents[2]


def report_dir(profile: str | None = None) -> Path:
    from workbench.core.env import profile_name

    base = env_folder("WORKBENCH_REPORT_DIR") or ROOT / "reports"
    return base / "smoke" if profile_name(profile) == "smoke" else base


def load(profile: str | None = None) -> dict:
    path = report_dir(profile) / "results.json"
    if not path.exists():
        return {"results": {}}
    data = read_json(path, "results file", 'an object {"results": {"section/.../metric": value}}')
    if not isinstance(data.get("results"), dict):
        raise BadInput(f'{path}: no "results" object; expected an object {{"results": {{"a/b/metric": value}}}}')
    return data


def _checked(key: str, value):
    parts = key.split("/")
    if len(parts) < 2 or not all(parts):
        raise ValueError(f"report key {key!r} must look like 'section/.../metric' (non-empty parts)")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"report value for {key!r} must be a number or a string, got {value!r}")
    return value


def record_many(values: dict, profile: str | None = None) -> dict:
    """Store several figures at once (one read and one atomic write); returns them."""
    for key, value in values.items():
        _checked(key, value)
    data = load(profile)
    data["results"].update(values)
    _save(data, profile)
    return values


def _save(data: dict, profile: str | None) -> None:
    """Stamp ``data`` with the profile, the machine and the time, and write it atomically."""
    from workbench.core.env import machine, profile_name

    data.update(profile=profile_name(profile), machine=machine(), updated=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    write_atomic(report_dir(profile) / "results.json", json.dumps(data, indent=1, sort_keys=True))


def record(key: str, value, profile: str | None = None):
    """Store one figure under a slash-separated key; returns the value (so a cell can show it)."""
    record_many({key: value}, profile)
    return value


def slug(label: str) -> str:
    """A row label as one key part: ``"wanda 50% + recovery"`` -> ``"wanda_50pct_+_recovery"``."""
    return label.replace("%", "pct").replace(",", "").replace("/", "-").replace(":", "").replace(" ", "_")


def value_of(metric: str, value):
    """How a figure is stored: ``*_pct`` metrics take a fraction and store a percentage with one decimal,
    other floats three decimals, booleans and None as text; numbers and strings as they are."""
    if value is None or isinstance(value, bool):
        return str(value)
    if metric.endswith("_pct"):
        return round(100 * value, 1)
    return round(value, 3) if isinstance(value, float) else value


def record_rows(section: str, rows: list[dict], metrics: dict[str, str], label: str = "model",
                profile: str | None = None) -> dict:
    """Every row of a study's table in one call: ``section/<row label>/<metric>`` for each ``row_key: metric``
    in ``metrics`` (a row without that key is skipped). Returns what was recorded.

        report.record_rows("pruning/boolean_expressions", rows, {"accuracy": "accuracy_pct", "bytes": "bytes"})
    """
    values = {f"{section}/{slug(str(r[label]))}/{metric}": value_of(metric, r[key])
              for r in rows for key, metric in metrics.items() if key in r}
    return record_many(values, profile)


def record_verdict(section: str, verdict: dict, profile: str | None = None) -> dict:
    """A study's verdict: its top-level figures and yes/no answers under ``section/verdict/<name>``."""
    values = {f"{section}/verdict/{k}": value_of(k, v) for k, v in verdict.items()
              if v is None or isinstance(v, (bool, int, float, str))}
    return record_many(values, profile)


def add_row(name: str, row: dict, key: str = "stage", profile: str | None = None) -> list[dict]:
    """Add one row to the running table ``name`` that several notebooks build together (kept in ``results.json``
    beside the figures), or update the row whose ``key`` field matches: its other fields stay, the new ones
    land. Returns the table's rows.

        report.add_row("pipeline", {"stage": "pruned", "accuracy": 0.9})   # notebook 04
        report.add_row("pipeline", {"stage": "pruned", "ig_gain": 0.12})  # notebook 07 adds a column
    """
    if key not in row:
        raise ValueError(f"row {row!r} has no {key!r} field, which names the row in table {name!r}")
    for field, value in row.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
            raise ValueError(f"table {name!r}: field {field!r} must be a number, a string or None, got {value!r}")
    data = load(profile)
    rows = data.setdefault("tables", {}).setdefault(name, {"key": key, "rows": []})["rows"]
    old = next((r for r in rows if r.get(key) == row[key]), None)
    if old is None:
        rows.append(dict(row))
    else:
        old.update(row)
    _save(data, profile)
    return rows


def rows(name: str, profile: str | None = None) -> list[dict]:
    """The rows of the running table ``name`` (``add_row``), in the order they were first added; [] if none."""
    return list(load(profile).get("tables", {}).get(name, {}).get("rows", []))


def table(rows: list[dict], columns: dict[str, str]) -> str:
    """Rows as a markdown table: one column per ``header: format`` pair, the format filled from the row's
    fields (``{"accuracy": "{accuracy:.1%}", "calls": "{identical}/{n}"}``)."""
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    lines += ["| " + " | ".join(fmt.format_map(r) for fmt in columns.values()) + " |" for r in rows]
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) >= 1 else f"{v:.3f}"
    return str(v)


def markdown(data: dict) -> str:
    """One table per section and metric (the last key part): rows are the second part, columns the rest."""
    lines = ["# Results", "",
             f"Profile `{data.get('profile', '?')}` on {data.get('machine', '?')}; "
             f"last updated {data.get('updated', '?')}. Written by `make run` from `results.json`.", ""]
    tables: dict[str, dict[str, dict[str, object]]] = {}
    for key, value in sorted(data.get("results", {}).items()):
        section, *middle, metric = key.split("/")
        row, col = (middle[0], "/".join(middle[1:]) or "value") if middle else ("", "value")
        tables.setdefault(f"{section}: {metric}", {}).setdefault(row, {})[col] = value
    for title, rows in tables.items():
        cols = list(dict.fromkeys(c for r in rows.values() for c in r))
        lines += [f"## {title}", "", "| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for row, vals in rows.items():
            lines.append(f"| {row} | " + " | ".join(_fmt(vals[c]) if c in vals else "" for c in cols) + " |")
        lines.append("")
    for name, t in data.get("tables", {}).items():  # the running tables (add_row): the key first, then each field
        trows = t["rows"]
        cols = list(dict.fromkeys([t["key"]] + [c for r in trows for c in r]))
        lines += [f"## {name}", "", "| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
        lines += ["| " + " | ".join(_fmt(r[c]) if r.get(c) is not None else "" for c in cols) + " |" for r in trows]
        lines.append("")
    return "\n".join(lines)


def write_markdown(profile: str | None = None) -> Path:
    path = report_dir(profile) / "results.md"
    write_atomic(path, markdown(load(profile)))
    return path


def show(markdown_text: str):
    """Render markdown in a notebook (plain text elsewhere)."""
    from IPython.display import Markdown

    return Markdown(markdown_text)
