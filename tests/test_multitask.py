"""Multi-task learning: tags, mixing schemes, the sampler, loss balancing, per-task adapters, and the study
(``multitask`` and ``studies.multitask``)."""

import json
import math
import re
from dataclasses import replace

import pytest
import torch

from workbench import multitask as mt
from workbench import tasks
from workbench.core import evaluate as ev
from workbench.core import recipes
from workbench.core import train as tr
from workbench.core.measure import count_params
from workbench.core.models import StudentConfig, student
from workbench.core.tokenizer import CharTokenizer
from workbench.studies import multitask as mts

BOOL, ARITH = "boolean_expressions", "multistep_arithmetic_two"
PAIR = (BOOL, ARITH)


def tiny():
    torch.manual_seed(0)
    return student(StudentConfig(layers=1, width=32, heads=2, max_len=256), CharTokenizer())


# tags ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", tasks.NAMES)
def test_tags_round_trip(name):
    ex = tasks.get(name).sample(1)[0]
    assert mt.tag(name, ex.input) == f"[{name}] {ex.input}"
    assert mt.split_tag(mt.tagged(ex).input) == (name, ex.input)
    assert mt.tagged(ex).target == ex.target and mt.tagged(ex).task == name


@pytest.mark.parametrize("text, message", [
    ("[sorting] b a", r"unknown task tag '\[sorting\]'; accepted tags: \[boolean_expressions\], "
                      r"\[multistep_arithmetic_two\]"),
    ("True and False is", "no task tag at the start of 'True and False is'; accepted tags: "),
    ("[boolean_expressions]True is", "no task tag"),  # the tag needs its space
])
def test_an_unknown_or_missing_tag_is_named_with_the_accepted_ones(text, message):
    with pytest.raises(ValueError, match=message):
        mt.split_tag(text)


def test_tagging_with_an_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'sorting'; known tasks: boolean_expressions"):
        mt.tag("sorting", "b a")


# mixing weights --------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme, kwargs, expected", [
    ("uniform", {}, [0.5, 0.5]),
    ("proportional", {"sizes": {BOOL: 1, ARITH: 3}}, [0.25, 0.75]),
    ("temperature", {"sizes": {BOOL: 1, ARITH: 9}, "temperature": 2.0}, [0.25, 0.75]),  # sqrt: 1 and 3
    ("temperature", {"sizes": {BOOL: 1, ARITH: 9}, "temperature": math.inf}, [0.5, 0.5]),
    ("loss_balanced", {"losses": {BOOL: 0.5, ARITH: 1.5}}, [0.25, 0.75]),
    ({BOOL: 2, ARITH: 6}, {}, [0.25, 0.75]),  # the user's own weights
    ({BOOL: 0, ARITH: 6}, {}, [0.0, 1.0]),  # a task may be switched off
])
def test_each_scheme_on_hand_computed_cases(scheme, kwargs, expected):
    w = mt.mixing_weights(scheme, tasks=PAIR, **kwargs)
    assert list(w) == list(PAIR) and [w[n] for n in PAIR] == pytest.approx(expected)


def test_temperature_runs_from_proportional_to_uniform():
    sizes = mt.default_sizes()
    for name in (BOOL, ARITH):  # the laptop recipes' examples: steps x batch
        _, cfg = recipes.recipe(name, "laptop")
        assert sizes[name] == cfg.steps * cfg.batch_size > 0
    small, large = min(sizes, key=sizes.get), max(sizes, key=sizes.get)
    prop = mt.mixing_weights("proportional")
    assert mt.mixing_weights("temperature", temperature=1.0) == pytest.approx(prop)
    assert mt.mixing_weights("temperature", temperature=1e6) == pytest.approx(mt.mixing_weights("uniform"), abs=1e-5)
    t5 = mt.mixing_weights("temperature", temperature=5.0)
    assert t5[small] > prop[small] and t5[large] < prop[large]  # the smallest up, the largest down


@pytest.mark.parametrize("scheme, kwargs, message", [
    ("round_robin", {}, "unknown mixing scheme 'round_robin'; accepted: proportional, uniform, temperature, "
                        "loss_balanced, or a dict"),
    ({"sorting": 1.0}, {}, "unknown task 'sorting' in mixing weights; accepted: boolean_expressions"),
    ({BOOL: -1.0, ARITH: 2.0}, {}, f"the value for '{BOOL}' must be a finite number >= 0, got -1.0"),
    ({BOOL: 0, ARITH: 0}, {}, "mixing weights must sum to a positive number, got 0.0"),
    ({BOOL: math.nan}, {}, "must be a finite number >= 0, got nan"),
    ({BOOL: math.inf}, {}, "must be a finite number >= 0, got inf"),
    ({BOOL: "1"}, {}, "must be a finite number >= 0, got '1'"),
    ({}, {}, "must be a non-empty dict of task -> number"),
    ("proportional", {"sizes": {BOOL: 0, ARITH: 3}}, f"sizes: the value for '{BOOL}' must be a finite number > 0"),
    ("proportional", {"sizes": {BOOL: 3}}, f"sizes lack '{ARITH}'; give one for each of {BOOL}, {ARITH}"),
    ("temperature", {"temperature": 0}, "temperature must be a positive number (inf: uniform), got 0"),
    ("temperature", {"temperature": math.nan}, "temperature must be a positive number"),
    ("loss_balanced", {}, "the loss_balanced scheme needs losses"),
    ("loss_balanced", {"losses": {BOOL: 0.0, ARITH: 0.0}}, "losses must sum to a positive number"),
])
def test_bad_weights_name_the_value_and_what_is_accepted(scheme, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        mt.mixing_weights(scheme, tasks=None if isinstance(scheme, dict) else PAIR, **kwargs)


def test_weights_for_a_task_outside_the_mix_are_refused():
    with pytest.raises(ValueError, match="unknown task 'dyck_languages' in mixing weights; accepted: "
                                         f"{BOOL}, {ARITH}"):
        mt.MultiTaskSampler(PAIR, {BOOL: 1, ARITH: 1, "dyck_languages": 1})


# the sampler -----------------------------------------------------------------------------------
def test_task_frequencies_follow_the_weights_and_each_step_is_deterministic():
    s = mt.MultiTaskSampler(PAIR, {BOOL: 0.8, ARITH: 0.2}, seed=3)
    drawn = [n for step in range(200) for n in s.draw_tasks(step, 0, 50)]
    assert drawn.count(BOOL) / len(drawn) == pytest.approx(0.8, abs=0.01)
    batch = s.examples(7, 0, 300)
    assert [e.task for e in batch] == s.draw_tasks(7, 0, 300)
    assert sum(e.task == BOOL for e in batch) / 300 == pytest.approx(0.8, abs=0.08)
    assert all(mt.split_tag(e.input)[0] == e.task for e in batch)  # every example comes tagged
    assert all(e.level <= tasks.get(e.task).bbh_level for e in batch)
    assert not {mt.split_tag(e.input)[1] for e in batch} & s.exclude  # held-out inputs never drawn
    again = mt.MultiTaskSampler(PAIR, {BOOL: 0.8, ARITH: 0.2}, seed=3)
    assert again.examples(7, 0, 300) == batch and s.examples(8, 0, 300) != batch and s.examples(7, 1, 300) != batch


def test_loss_balancing_moves_weight_toward_the_task_with_the_higher_loss(monkeypatch):
    s = mt.MultiTaskSampler(PAIR, "loss_balanced")
    assert s.weights == {BOOL: 0.5, ARITH: 0.5}  # uniform until the first measurement
    probes = {BOOL: 0.4, ARITH: 1.2}
    monkeypatch.setattr(mt, "probe_loss", lambda model, tok, name, *a: probes[name])
    s.update(16, {}, model=tiny(), tokenizer=CharTokenizer())
    assert s.weights[ARITH] == pytest.approx(0.75) and s.losses == probes
    s.reweight(32, {BOOL: 1.0, ARITH: 1.0})
    assert [h["step"] for h in s.history] == [0, 16, 32] and s.history[1]["weights"][ARITH] == pytest.approx(0.75)
    resumed = mt.MultiTaskSampler(PAIR, "loss_balanced")
    resumed.load_state_dict(json.loads(json.dumps(s.state_dict())))  # as a checkpoint stores it
    assert resumed.weights == s.weights and resumed.history == s.history
    assert resumed.examples(40, 0, 20) == s.examples(40, 0, 20)


def test_the_probe_measures_a_real_loss_on_tagged_examples():
    model = tiny()
    losses = [mt.probe_loss(model, CharTokenizer(), n, n=4) for n in PAIR]
    assert all(2.0 < v < 8.0 for v in losses)  # a random student: about log(vocabulary) per token
    assert mt.probe_loss(model, CharTokenizer(), BOOL, n=4) == losses[0]  # a fixed batch


def test_the_loop_validates_tagged_prompts_and_loss_balances(tmp_path, monkeypatch):
    cfg = tr.TrainConfig(tasks=PAIR, rationale=False, steps=8, batch_size=4, bucket=4, warmup=2, eval_every=4,
                         eval_n=2, eval_max_new_tokens=6, log_every=4, checkpoint_every=4)
    plain = tr.validate(tiny(), CharTokenizer(), cfg)  # the keys the loop's own validation logs
    calls, scored, scorer = [], [], ev.evaluate

    def spy(model, tok, cfg):
        calls.append(cfg.tasks)
        return mt.validate(model, tok, cfg)

    monkeypatch.setattr(ev, "evaluate", lambda m, t, name, exs, c: scored.extend(exs) or scorer(m, t, name, exs, c))
    sampler = mt.MultiTaskSampler(PAIR, "loss_balanced", rationale=False, probe_n=2)
    res = tr.train(tiny(), CharTokenizer(), cfg, out=tmp_path, sampler=sampler, progress=False, validate_fn=spy)
    evals = [h for h in res.history if "val_accuracy" in h]
    assert calls == [PAIR, PAIR] and len(evals) == 2 and set(evals[0]) - {"step"} == set(plain)
    assert scored and all(mt.split_tag(e.input)[0] == e.task for e in scored)  # validation saw tagged prompts
    assert [h["step"] for h in sampler.history] == [0, 4, 8] and sampler.losses[BOOL] > 0
    state = json.loads((tr.latest_checkpoint(tmp_path) / "trainer_state.json").read_text())["sampler"]
    assert state["history"][1]["step"] == 4


# shared body, per-task adapters ----------------------------------------------------------------
def test_adapters_switch_per_request_and_only_the_active_adapter_trains(monkeypatch):
    tok = CharTokenizer()
    adapters = mt.TaskAdapters(tiny(), PAIR, rank=2)
    params = dict(adapters.model.named_parameters())
    body = {k: v.detach().clone() for k, v in params.items() if "lora_" not in k}
    cfg = tr.TrainConfig(rationale=False, steps=2, batch_size=4, bucket=2, lr=5e-2, warmup=1, eval_every=0,
                         checkpoint_every=0, log_every=1)
    before = {k: v.detach().clone() for k, v in params.items()}
    adapters.train(tok, BOOL, cfg)
    moved = {k for k, v in params.items() if not torch.equal(v, before[k])}
    assert moved and all(f"lora_B.{BOOL}." in k or f"lora_A.{BOOL}." in k for k in moved)
    adapters.train(tok, ARITH, cfg)
    assert all(torch.equal(params[k], v) for k, v in body.items())  # the shared body never moves
    ids = torch.tensor([tok(mt.tag(BOOL, "True and False is\n")).input_ids])
    with torch.no_grad():
        outs = [adapters.use(n)(input_ids=ids).logits for n in PAIR]
    assert not torch.allclose(outs[0], outs[1])  # each task runs under its own adapter
    used = []
    monkeypatch.setattr(adapters, "use", lambda n: used.append(n) or mt.TaskAdapters.use(adapters, n))
    acc = mt.evaluate_tasks(adapters.model, tok, PAIR, n=2, rationale=False, adapters=adapters, max_new_tokens=4)
    assert used == [BOOL, ARITH] and set(acc) == set(PAIR)
    assert adapters.route(mt.tag(ARITH, "1 =")) == ARITH
    with pytest.raises(ValueError, match="no adapter for task 'dyck_languages'; adapters: boolean_expressions"):
        adapters.route(mt.tag("dyck_languages", "Input: ["))
    size = adapters.sizes()
    assert size["adapter_params"][BOOL] == size["adapter_params"][ARITH] > 0
    assert size["total_bytes"] == size["body_bytes"] + 4 * sum(size["adapter_params"].values())
    assert size["body_params"] == count_params(tiny())


def test_adapters_need_tags():
    with pytest.raises(ValueError, match="adapters are chosen by each request's task tag"):
        mt.evaluate_tasks(None, CharTokenizer(), PAIR, n=1, adapters=object(), tags=False)


# the study -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg, k", [(StudentConfig(layers=1, width=32, heads=2), 5),
                                    (StudentConfig(layers=2, width=64, heads=4), 5),
                                    (StudentConfig(layers=2, width=64, heads=4), 3)])
def test_the_large_student_has_about_the_combined_parameters(cfg, k):
    large = mts.combined_size(cfg, k)
    tok = CharTokenizer()
    ratio = count_params(student(large, tok)) / (k * count_params(student(cfg, tok)))
    assert large.layers == cfg.layers and large.width % (2 * cfg.heads) == 0 and ratio == pytest.approx(1, abs=0.08)


# what each task writes ------------------------------------------------------------------------
def test_each_task_is_written_in_its_recipes_format_before_it_is_tagged():
    formats = mt.recipe_formats()
    for name, (_, cfg) in recipes.LAPTOP.items():
        assert formats[name] == (cfg.format if cfg.rationale else None)
    assert formats["word_sorting"] is None and formats["dyck_languages"] == "reduce"
    batch = mt.MultiTaskSampler(tasks.NAMES, seed=1, formats=formats).examples(0, 0, 60)
    full = mt.MultiTaskSampler(tasks.NAMES, seed=1).examples(0, 0, 60)  # default: every full rationale
    assert {e.task for e in batch} == set(tasks.NAMES)
    for e, f in zip(batch, full):  # the same draws, written differently
        task, text = mt.split_tag(f.input)
        assert e.input == f.input and e.target == f.target
        if formats[task] is None:  # the answer alone: what a rationale-trained loop then learns is the target
            assert e.rationale == e.target
        else:  # the format's rationale of the untagged input, ending in the answer line
            plain = replace(f, input=text)
            assert e.rationale == tasks.get(task).reformat(plain, formats[task]).rationale
            assert e.rationale.endswith(f"{tasks.ANSWER_PREFIX}{e.target}.")
    assert any(e.rationale != f.rationale for e, f in zip(batch, full) if e.task == "dyck_languages")


@pytest.mark.parametrize("formats, message", [
    ({BOOL: "full"}, rf"formats name no format for task '{ARITH}'; give one of \['full', 'rewrite', .*\] or None"),
    ({BOOL: "full", ARITH: "reduce"}, rf"task '{ARITH}' has no rationale format 'reduce'; formats are"),
])
def test_a_bad_format_names_the_task_and_what_it_accepts(formats, message):
    with pytest.raises(ValueError, match=message):
        mt.MultiTaskSampler(PAIR, formats=formats)
    with pytest.raises(ValueError, match=message):
        mts.formats_of(mts.Study(tasks=PAIR, formats=formats))


def test_the_study_writes_the_recipes_formats_unless_told_otherwise():
    assert mts.study("laptop").formats == "recipe"
    assert mts.formats_of(mts.Study(tasks=PAIR)) == {BOOL: "full", ARITH: "full_lsd"}
    assert mts.formats_of(mts.Study(tasks=PAIR, formats=None)) == {BOOL: "full", ARITH: "full"}
    assert mts.formats_of(mts.Study(tasks=PAIR, formats=None, rationale=False)) == {BOOL: None, ARITH: None}
    with pytest.raises(ValueError, match="formats is 'recipes'; accepted: 'recipe', None, or a dict"):
        mts.formats_of(mts.Study(tasks=PAIR, formats="recipes"))


def test_a_specialist_and_the_multitask_student_learn_the_same_completions(monkeypatch):
    s = mts.Study(tasks=PAIR, steps_per_task=2, batch_size=2, student=StudentConfig(layers=1, width=32, heads=2,
                                                                                      max_len=512))
    seen = {}
    real = tr.train

    def spy(model, tok, cfg, sampler=None, **kw):
        seen[cfg.tasks] = (cfg, sampler)
        return real(model, tok, cfg, sampler=sampler, **kw)

    monkeypatch.setattr(mts, "train", spy)
    mts._train(s, s.student, (ARITH,), 2, tags=False)
    mts._train(s, s.student, PAIR, 2)
    alone, _ = seen[(ARITH,)]
    assert (alone.rationale, alone.format) == (True, "full_lsd")
    both, sampler = seen[PAIR]
    assert (both.rationale, both.format) == (True, "full") and sampler.formats == {BOOL: "full", ARITH: "full_lsd"}
    ex = tasks.get(ARITH).sample(1, seed=0)[0]
    assert mt.written(ex, "full_lsd").rationale == tasks.get(ARITH).reformat(ex, "full_lsd").rationale


def test_the_smoke_study_runs_end_to_end():
    s = mts.study("smoke")
    rows = mts.run(s)
    by = {r["arm"]: r for r in rows}
    assert list(by) == list(mts.ARMS) and all(set(r["accuracy"]) == set(tasks.NAMES) for r in rows)
    n = by["multitask"]["params"]
    assert by["specialist"]["params"] == 5 * n and len(by["specialist"]["models"]) == 5
    assert by["multitask-large"]["params"] == pytest.approx(5 * n, rel=0.08)
    assert by["multitask-large"]["steps"] == round(5 * s.steps_per_task * n / by["multitask-large"]["params"])
    ad = by["multitask+adapters"]
    assert ad["params"] == n + sum(ad["adapter_params"].values()) and ad["adapter_steps"] == 5 * s.adapter_steps
    assert all(r["train_tokens"] > 0 and r["bytes"] == 4 * r["params"] for r in rows)
    assert "| multitask | " in mts.table(rows) and set(mts.verdict(rows)["gaps"]) == set(tasks.NAMES)
    matrix, raw = mts.transfer_matrix(s, by["specialist"]["accuracy"])
    assert len(matrix) == 5 and all(len(row) == 5 for row in matrix) and len(raw["pair"]) == 10
    assert all(matrix[i][i] == 0 for i in range(5))
    assert matrix[0][1] == raw["pair"][f"{BOOL}+{ARITH}"][ARITH] - raw["specialist"][ARITH]
    import matplotlib

    matplotlib.use("Agg")
    from workbench.plots import transfer_heatmap

    fig = transfer_heatmap(matrix, s.tasks)
    assert len(fig.axes[0].texts) == 25


def test_the_transfer_matrix_is_the_pair_student_minus_the_specialist(monkeypatch):
    names = (BOOL, ARITH, "dyck_languages")
    s = mts.Study(tasks=names, steps_per_task=10)
    trained = []
    monkeypatch.setattr(mts, "_train", lambda s, cfg, pair, steps, **kw: trained.append((pair, steps)) or (pair, 0, 0))

    def scores(pair, tok, task_names, n, **kw):  # on b, after training with a: 0.1 x (a's index + 1) + 0.01 x b's
        return {b: 0.1 * (names.index(next(a for a in pair if a != b)) + 1) + 0.01 * names.index(b) for b in pair}

    monkeypatch.setattr(mts, "evaluate_tasks", scores)
    matrix, raw = mts.transfer_matrix(s, dict(zip(names, (0.05, 0.04, 0.0))))  # the specialists' accuracies
    assert trained == [((BOOL, ARITH), 20), ((BOOL, "dyck_languages"), 20), ((ARITH, "dyck_languages"), 20)]
    assert [v for row in matrix for v in row] == pytest.approx([0, 0.07, 0.12, 0.15, 0, 0.22, 0.25, 0.27, 0])
    assert raw["pair"][f"{BOOL}+{ARITH}"][ARITH] == pytest.approx(0.11)


def test_the_transfer_matrix_pairs_only_the_tasks_some_arm_learned(monkeypatch):
    names = (BOOL, ARITH, "dyck_languages")
    s = mts.Study(tasks=names, steps_per_task=10)
    trained = []
    monkeypatch.setattr(mts, "_train", lambda s, cfg, pair, steps, **kw: trained.append(pair) or (pair, 0, 0))
    monkeypatch.setattr(mts, "evaluate_tasks", lambda pair, tok, task_names, n, **kw: {b: 0.5 for b in pair})
    rows = [{"arm": "specialist", "accuracy": {BOOL: 0.6, ARITH: 0.0, "dyck_languages": 0.1}, "params": 10},
            {"arm": "multitask", "accuracy": {BOOL: 0.5, ARITH: 0.0, "dyck_languages": 0.0}, "params": 2}]
    learned = mts.learned_tasks(s, mts.verdict(rows))
    assert learned == (BOOL, "dyck_languages")
    matrix, raw = mts.transfer_matrix(s, rows[0]["accuracy"], tasks=learned)
    assert trained == [(BOOL, "dyck_languages")] and raw["tasks"] == learned
    assert [v for row in matrix for v in row] == pytest.approx([0, 0.4, -0.1, 0])
    assert mts.learned_tasks(s, {"unlearned": [ARITH, "dyck_languages"]}) == names  # one learned: pair them all
    with pytest.raises(ValueError, match=r"tasks \['word_sorting'\]: need two or more of the study's tasks"):
        mts.transfer_matrix(s, rows[0]["accuracy"], tasks=("word_sorting",))


def test_a_loss_balanced_study_needs_evaluations():
    s = mts.Study(scheme="loss_balanced", arms=("multitask",))
    with pytest.raises(ValueError, match="the loss_balanced mix re-weights at each evaluation; set Study.eval_every"):
        mts.run(s)
    with pytest.raises(ValueError, match="unknown arm 'ensemble'; accepted: specialist, multitask"):
        mts.run(mts.Study(arms=("ensemble",)))


def test_the_verdict_checks_every_task_and_the_parameter_share():
    def row(arm, accs, params):
        return {"arm": arm, "accuracy": dict(zip(PAIR, accs)), "params": params}

    rows = [row("specialist", (0.90, 0.60), 1000), row("multitask", (0.895, 0.62), 200),
            row("multitask-large", (0.95, 0.70), 1000), row("multitask+adapters", (0.87, 0.70), 250)]
    v = mts.verdict(rows)
    assert v["gaps"][BOOL] == pytest.approx(-0.5) and v["gaps"][ARITH] == pytest.approx(2.0)
    assert v["met"] and v["met_by"] == ["multitask"]
    assert not v["arms"]["multitask-large"]["meets_target"]  # better everywhere, but five times the share
    assert v["arms"]["multitask+adapters"]["worst_gap"] == pytest.approx(-3.0)
    rows[1]["accuracy"][BOOL] = 0.88  # 2 points behind on one task
    assert not mts.verdict(rows)["met"]
    with pytest.raises(ValueError, match="include the 'specialist' arm"):
        mts.verdict(rows[1:])


def test_the_verdict_does_not_call_a_target_met_when_no_specialist_learned_anything():
    rows = [{"arm": "specialist", "accuracy": dict.fromkeys(PAIR, 0.0), "params": 1000},
            {"arm": "multitask", "accuracy": dict.fromkeys(PAIR, 0.0), "params": 200}]
    v = mts.verdict(rows)
    assert not v["specialists_learned"] and not v["met"] and v["met_by"] == []


def test_the_sentences_name_the_tasks_no_arm_learned():
    names = (BOOL, ARITH, "dyck_languages")
    rows = [{"arm": "specialist", "accuracy": {BOOL: 0.6, ARITH: 0.0, "dyck_languages": 0.0}, "params": 1000},
            {"arm": "multitask", "accuracy": {BOOL: 0.6, ARITH: 0.0, "dyck_languages": 0.1}, "params": 200}]
    v = mts.verdict(rows)
    assert v["unlearned"] == [ARITH] and v["tasks"] == list(names) and v["met"]
    assert mts.sentences(v)[0] == (f"0% in every arm on {ARITH}: at this size no arm learned that task, so 'within "
                                   "1 point' holds there trivially and the comparison rests on the other 2.")
    rows[1]["accuracy"][ARITH] = 0.02
    assert not mts.verdict(rows)["unlearned"] and not mts.sentences(mts.verdict(rows))[0].startswith("0% in every")
