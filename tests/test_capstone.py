"""The capstone study (notebook 09): its pieces on tiny models, its waterfall on known rows, its refusals."""

from __future__ import annotations

import re

import matplotlib
import pytest
import torch

from workbench.studies import capstone

matplotlib.use("Agg")

# three stages with known values: the waterfall's deltas and verdicts follow from them by hand
ROWS = [{"stage": "general", "accuracy": 0.25, "bytes": 1000, "p50_ms": 400.0, "valid_call": 1.0},
        {"stage": "specialist", "accuracy": 0.75, "bytes": 100, "p50_ms": 40.0, "valid_call": 1.0},
        {"stage": "pruned", "accuracy": 0.5, "bytes": 100, "p50_ms": 50.0, "valid_call": 0.5}]


@pytest.mark.parametrize("metric, deltas, better", [
    ("accuracy", [0.25, 0.5, -0.25], [True, True, False]),
    ("bytes", [1000.0, -900.0, 0.0], [False, True, True]),  # the first bar is growth from 0: a cost for bytes
    ("p50_ms", [400.0, -360.0, 10.0], [False, True, False]),
    ("valid_call", [1.0, 0.0, -0.5], [True, True, False]),
])
def test_waterfall_of_known_rows(metric, deltas, better):
    steps = capstone.waterfall(ROWS, metric)
    assert [s["stage"] for s in steps] == ["general", "specialist", "pruned"]
    assert [s["delta"] for s in steps] == pytest.approx(deltas)
    assert [s["better"] for s in steps] == better
    assert [s["end"] for s in steps] == [float(r[metric]) for r in ROWS]
    assert [s["start"] for s in steps[1:]] == [s["end"] for s in steps[:-1]]  # each bar starts where the last ended


def test_waterfall_refuses_an_unknown_metric_and_no_rows():
    with pytest.raises(ValueError, match=r"metric 'latency' has no waterfall; accepted: accuracy, .*p50_ms"):
        capstone.waterfall(ROWS, "latency")
    with pytest.raises(ValueError, match="no stages"):
        capstone.waterfall([], "accuracy")


def test_plot_colours_gains_green_and_costs_red():
    from matplotlib.colors import to_hex

    from workbench import plots

    fig = plots.waterfall(ROWS, "accuracy")
    bars = fig.axes[0].patches
    assert len(bars) == 3
    assert [to_hex(b.get_facecolor()) for b in bars] == [to_hex(c) for c in ("tab:grey", "tab:green", "tab:red")]
    assert bars[2].get_y() == pytest.approx(50) and bars[2].get_height() == pytest.approx(25)  # 75% -> 50%
    assert fig.axes[0].get_yscale() == "linear"
    assert plots.waterfall(ROWS, "bytes").axes[0].get_yscale() == "log"


@pytest.mark.parametrize("field, value, accepted", [
    ("recovery", "distil", "kd, finetune, none"),
    ("neurons", 1.5, r"\[0, 1\)"),
    ("n", 0, "integers 1 to 100"),
    ("check_n", 101, "integers 1 to 100"),
    ("heads", -1, "integers >= 0"),
    ("task", "dyck_languages", "'tool_call'"),
    ("faith_steps", 1, "integers >= 2"),
])
def test_bad_study_input_is_one_line_naming_value_and_what_is_accepted(field, value, accepted):
    with pytest.raises(ValueError, match=rf"{re.escape(f'{field} {value!r}')}.*accepted: {accepted}") as err:
        capstone.study("smoke", **{field: value})
    assert "\n" not in str(err.value)


def test_every_profile_gives_a_valid_study():
    for profile in ("smoke", "laptop", "gpu"):
        st = capstone.study(profile)
        assert st.recovery in capstone.RECOVERY and st.task == "tool_call"
    assert capstone.study("smoke").n < capstone.study("laptop").n < capstone.study("gpu").n


@pytest.mark.parametrize("recovery", ["kd", "finetune", "none"])
def test_compress_prunes_a_copy_and_recovers_it(tiny_student, recovery):
    from workbench.core.measure import count_params

    model, tok, _ = tiny_student
    before = {k: v.clone() for k, v in model.state_dict().items()}
    st = capstone.study("smoke", recovery=recovery, recovery_steps=2, calib_n=4)
    out = capstone.compress(model, tok, st)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the teacher is untouched
    assert out["pruned"].config.intermediate_size == model.config.intermediate_size // 2
    assert count_params(out["recovered"]) == count_params(out["pruned"]) < count_params(model)
    changed = any(not torch.equal(a, b) for a, b in zip(out["pruned"].state_dict().values(),
                                                         out["recovered"].state_dict().values()))
    assert changed == (recovery != "none")
    assert (out["seconds"] > 0) == (recovery != "none")


def test_int8_bytes_count_int8_linears_and_float_rest(tiny_student):
    from workbench import quantize
    from workbench.core.measure import param_bytes

    model = tiny_student[0]
    int8 = quantize.dynamic_int8(model)
    linear = quantize.linear_bytes(model)
    assert capstone.int8_bytes(int8, model) == param_bytes(model) - linear + quantize.linear_bytes(int8)
    assert capstone.int8_bytes(int8, model) < param_bytes(model)


def _generation(text: str, prompt: str = "q\n"):
    from workbench.explain import Generation

    chars = list(prompt + text)
    return Generation(prompt=prompt.strip(), ids=list(range(len(chars))), prompt_len=len(prompt), tokens=chars,
                      text=text)


@pytest.mark.parametrize("text, written", [
    ('{"arguments":{"city":"Oslo"},"name":"get_weather"}', '"'),  # the first argument's name begins
    ('{"arguments":{},"name":"none"}', "}"),  # no arguments: the step that closes them
])
def test_decision_step_is_where_the_router_commits(text, written):
    gen = _generation(text)
    step = capstone.decision_step(gen)
    assert step == len('{"arguments":{') and text[step] == written


def test_decision_step_falls_back_to_the_answer():
    gen = _generation("So the answer is 42.")
    assert capstone.decision_step(gen) == gen.answer_step == len("So the answer is ")


def test_faithfulness_measures_at_the_step_given(varied_student):
    from workbench import faithfulness

    model, tok = varied_student
    seen = []

    def last(gen):
        seen.append(gen.steps)
        return gen.steps - 1

    res = faithfulness.measure(model, tok, ["abc", "de"], methods=("attention",), n_random=1, max_new_tokens=6,
                               step=last)
    assert len(seen) == 2 and res.examples == 2
    assert {r["method"] for r in res.rows} == {"attention", "random"}


def test_tables_show_each_stage_and_the_cumulative_minutes():
    rows = [{**r, "n": 4, "params": 10, "train_minutes": m, "train_minutes_total": t}
            for r, m, t in zip(ROWS, (0.0, 60.0, 1.5), (0.0, 60.0, 61.5))]
    text = capstone.table(rows)
    assert text.count("\n") == 4 and "| 61.5 |" in text and "| 75% |" in text
    deltas = capstone.delta_table(rows)
    assert "| specialist | +50 | x0.1 | x0.1 |" in deltas and "| pruned | -25 | x1 | x1.25 |" in deltas
