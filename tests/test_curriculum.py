"""Curriculum schedulers: their level mix over training, their feedback, bad input, and the loop."""

import json

import pytest

from workbench import curriculum as cur
from workbench.core import train as tr
from workbench.core.models import StudentConfig, student
from workbench.core.tokenizer import CharTokenizer
from workbench.studies import curriculum as study

TASK = "multistep_arithmetic_two"


def weights(sampler, step):
    return list(sampler.level_weights(TASK, step).values())


@pytest.mark.parametrize("scheduler, start, end", [
    ("random", [1, 1, 1], [1, 1, 1]),
    ("easy_to_hard", [1, 0, 0], [1, 1, 1]),
    ("hard_first", [0, 0, 1], [1, 1, 1]),
    ("baby_steps", [1, 0, 0], [1, 0, 0]),  # opens levels only on validation feedback
    ("self_paced", [1, 0, 0], [1, 1, 1]),
])
def test_mix_at_the_start_and_the_end(scheduler, start, end):
    s = cur.make(scheduler, TASK, levels=(1, 2, 3), total_steps=100, ramp=0.5)
    assert weights(s, 0) == start and weights(s, 99) == end


def test_easy_to_hard_walks_the_levels_in_order_then_mixes():
    s = cur.make("easy_to_hard", TASK, levels=(1, 2, 3), total_steps=300, ramp=0.6)
    assert [weights(s, t).index(1.0) for t in (0, 59, 60, 119, 120, 179)] == [0, 0, 1, 1, 2, 2]
    assert weights(s, 180) == [1, 1, 1]


def test_competence_grows_as_a_square_root():
    s = cur.make("competence", TASK, levels=(1, 2, 3, 4), total_steps=100, ramp=0.5, c0=0.1)
    mass = [sum(weights(s, t)) / 4 for t in (0, 10, 20, 30, 40, 50, 99)]  # competence c(t)
    assert mass[0] == pytest.approx(0.1)
    assert mass[1] == pytest.approx((0.2 * 0.99 + 0.01) ** 0.5)
    assert all(a < b for a, b in zip(mass, mass[1:-1])) and mass[-2] == mass[-1] == 1.0
    w = weights(s, 20)  # c ~ 0.64: levels 1 and 2 whole, a part of 3, none of 4
    assert w[0] == w[1] == 1.0 and 0 < w[2] < 1 and w[3] == 0


def test_baby_steps_opens_the_next_level_when_the_seen_levels_pass_the_threshold():
    s = cur.make("baby_steps", TASK, levels=(1, 2, 3), total_steps=100, threshold=0.8, patience=9)
    s.update(10, {f"val_accuracy/{TASK}/L1": 0.7, f"val_accuracy/{TASK}/L2": 0.0})
    assert weights(s, 10) == [1, 0, 0]
    s.update(20, {f"val_accuracy/{TASK}/L1": 0.85})
    assert weights(s, 20) == [1, 1, 0]
    s.update(30, {f"val_accuracy/{TASK}/L1": 0.9, f"val_accuracy/{TASK}/L2": 0.6})  # mean 0.75 < 0.8
    assert weights(s, 30) == [1, 1, 0]
    with pytest.raises(ValueError, match="val_levels"):
        s.update(40, {f"val_accuracy/{TASK}/L1": 0.9})
    restored = cur.make("baby_steps", TASK, levels=(1, 2, 3), total_steps=100)
    restored.load_state_dict(s.state_dict())
    assert weights(restored, 40) == [1, 1, 0]


def test_baby_steps_moves_on_after_patience_evaluations_without_the_threshold():
    s = cur.make("baby_steps", TASK, levels=(1, 2, 3), total_steps=100, threshold=0.9, patience=2)
    low = {f"val_accuracy/{TASK}/L{lv}": 0.1 for lv in (1, 2, 3)}
    s.update(10, low)
    assert weights(s, 10) == [1, 0, 0]
    s.update(20, low)
    assert weights(s, 20) == [1, 1, 0]
    s.update(30, low)
    assert weights(s, 30) == [1, 1, 0]


def test_self_paced_draws_the_levels_the_model_finds_easiest():
    s = cur.make("self_paced", TASK, levels=(1, 2, 3), total_steps=100, ramp=1.0, start=0.3)
    s.level_loss[TASK] = {1: 0.9, 2: 0.2, 3: 0.5}
    assert weights(s, 0) == [0, 1, 0]
    assert weights(s, 40) == [0, 1, 1]  # two of three levels open: the two lowest losses
    restored = cur.make("self_paced", TASK, levels=(1, 2, 3), total_steps=100, ramp=1.0, start=0.3)
    restored.load_state_dict(s.state_dict())
    assert restored.level_loss == s.level_loss


def test_plan_rows_are_distributions_and_easy_to_hard_moves():
    steps, levels, shares = cur.plan("easy_to_hard", TASK, levels=(1, 2, 3), total_steps=90, points=10, ramp=0.9)
    assert levels == [1, 2, 3] and len(steps) == len(shares) == 10 and steps[0] == 0 and steps[-1] == 89
    assert all(sum(row) == pytest.approx(1.0) for row in shares)
    assert shares[0] == [1, 0, 0] and shares[-1] == pytest.approx([1 / 3] * 3)
    _, _, baby = cur.plan("baby_steps", TASK, levels=(1, 2, 3), total_steps=100, points=5, eval_every=30,
                          patience=1)
    assert [sum(1 for v in row if v) for row in baby] == [1, 1, 2, 3, 3]


@pytest.mark.parametrize("kwargs, message", [
    ({"scheduler": "reverse"}, "unknown scheduler 'reverse'; choose one of random, easy_to_hard"),
    ({"threshold": 0.0}, r"threshold must be in \(0, 1\], got 0.0"),
    ({"threshold": 1.5}, r"threshold must be in \(0, 1\], got 1.5"),
    ({"ramp": 0}, r"ramp must be in \(0, 1\]"),
    ({"levels": (1, 9)}, r"has no level 9; levels are \[1, 2, 3, 4, 5\]"),
    ({"pace": 2}, r"unknown pacing parameter\(s\) \['pace'\]; accepted: ramp, threshold, patience, c0, start"),
    ({"patience": 0}, "patience must be a positive integer, got 0"),
    ({"total_steps": 0}, "total_steps must be a positive integer"),
])
def test_bad_input_names_the_value_and_what_is_accepted(kwargs, message):
    args = {"scheduler": "baby_steps", "task_names": TASK, "levels": (1, 2, 3), **kwargs}
    with pytest.raises(ValueError, match=message):
        cur.make(**args)


def test_threshold_of_one_is_accepted():
    assert cur.make("baby_steps", TASK, threshold=1.0).pacing.threshold == 1.0


@pytest.mark.parametrize("scheduler", ["baby_steps", "self_paced"])
def test_the_loop_feeds_back_per_level_accuracy_and_losses(scheduler, tmp_path):
    tok = CharTokenizer()
    model = student(StudentConfig(layers=1, width=32, heads=2, max_len=256), tok)
    cfg = tr.TrainConfig(tasks=("boolean_expressions",), levels=(1, 2), val_levels=(1, 2, 3), rationale=False,
                         steps=16, batch_size=4, bucket=4, warmup=2, eval_every=8, eval_n=6, log_every=4,
                         checkpoint_every=8)
    sampler = cur.make(scheduler, "boolean_expressions", levels=(1, 2), total_steps=16, rationale=False)
    res = tr.train(model, tok, cfg, out=tmp_path, sampler=sampler, progress=False)
    evals = [h for h in res.history if "val_accuracy" in h]
    assert evals and all(f"val_accuracy/boolean_expressions/L{lv}" in evals[0] for lv in (1, 2, 3))
    if scheduler == "self_paced":
        assert set(sampler.level_loss["boolean_expressions"]) == {1, 2}
        assert all(v > 0 for v in sampler.level_loss["boolean_expressions"].values())
    ckpt = tr.latest_checkpoint(tmp_path)
    state = json.loads((ckpt / "trainer_state.json").read_text())["sampler"]
    assert state["stage"] and "level_loss" in state


def test_planner_widget_redraws_when_a_control_changes():
    import matplotlib

    matplotlib.use("Agg")
    from workbench.widgets import CurriculumPlanner

    planner = CurriculumPlanner(TASK, levels=(1, 2, 3), total_steps=100, scheduler="random")
    assert all(abs(v - 1 / 3) < 1e-9 for v in planner.plan[2][0]) and planner.ramp.disabled
    planner.scheduler.value = "easy_to_hard"
    assert planner.plan[2][0] == [1.0, 0.0, 0.0] and not planner.ramp.disabled
    first_mixed = next(i for i, row in enumerate(planner.plan[2]) if row[0] < 1)
    planner.ramp.value = 0.9  # a slower ramp keeps level 1 alone for longer
    assert next(i for i, row in enumerate(planner.plan[2]) if row[0] < 1) > first_mixed
    assert "application/vnd.jupyter.widget-view+json" in planner._repr_mimebundle_()
    with pytest.raises(ValueError, match="unknown scheduler"):
        CurriculumPlanner(TASK, scheduler="fast")


def test_summary_and_verdict_count_unreached_seeds_at_the_budget():
    s = study.Study(steps=600, schedulers=("random", "competence", "hard_first"), seeds=(0, 1))

    def run(name, steps, bbh):
        return {"scheduler": name, "steps_to_target": steps, "test_bbh": bbh, "test_above": 0.5}

    runs = [run("random", 400, 0.8), run("random", None, 0.82), run("competence", 300, 0.85),
            run("competence", 320, 0.86), run("hard_first", None, 0.7), run("hard_first", None, 0.7)]
    rows = study.summary(s, runs)
    assert rows[0]["steps_to_target"] is None and rows[0]["steps_to_target_at_budget"] == 500
    assert rows[1]["steps_to_target"] == 310 and rows[1]["reached_target"] == 2
    v = study.verdict(rows)
    comp = v["curricula"]["competence"]
    assert comp["steps_ratio"] is None and comp["steps_ratio_at_budget"] == pytest.approx(0.62)
    assert comp["meets_target"] and comp["higher_in_every_seed"] and v["best"] == "competence" and v["met"]
    assert "hard_first" not in v["curricula"]
    assert "| competence | 310 | 310 | 300-320 | 2/2 |" in study.table(rows, s)


def test_compare_trains_the_runs_side_by_side_and_reports_them_in_order(monkeypatch):
    """On a CPU the runs go to one-thread processes (``env.starmap``); each seeds itself, so a run's result is the
    one it gets alone in a one-thread process, whatever ran beside it."""
    import torch

    monkeypatch.setenv("WORKBENCH_WORKERS", "2")
    s = study.study("smoke", schedulers=("random", "hard_first"), seeds=(0, 1))
    seen = []
    runs = study.compare(s, callback=lambda r: seen.append((r["scheduler"], r["seed"])))
    assert seen == [(r["scheduler"], r["seed"]) for r in runs] == [("random", 0), ("random", 1), ("hard_first", 0),
                                                                   ("hard_first", 1)]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = study.run_one(s, "hard_first", 1)
    finally:
        torch.set_num_threads(before)
    assert alone["test_by_level"] == runs[3]["test_by_level"] and alone["evals"] == runs[3]["evals"]
