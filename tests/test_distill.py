"""Distillation: each divergence on hand-computed cases, the loss hooks on the loop, the regimes' data, bad input."""

import math

import pytest
import torch
import torch.nn.functional as F

from workbench import distill
from workbench.core import train as tr
from workbench.core.models import StudentConfig, student
from workbench.core.tokenizer import CharTokenizer
from workbench.tasks import Example


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)


P, Q = [0.7, 0.2, 0.1], [0.4, 0.4, 0.2]
LP, LQ = torch.tensor(P).log(), torch.tensor(Q).log()


@pytest.mark.parametrize("loss", distill.LOSSES)
def test_divergence_of_identical_distributions_is_zero(loss):
    logits = torch.randn(2, 5, 11)
    assert distill.divergence(logits, logits.clone(), loss, temperature=3.0).item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("loss, expected", [
    ("forward_kl", kl(P, Q)),  # teacher P, student Q: KL(P || Q)
    ("reverse_kl", kl(Q, P)),
    ("jsd", 0.5 * kl(P, [(a + b) / 2 for a, b in zip(P, Q)]) + 0.5 * kl(Q, [(a + b) / 2 for a, b in zip(P, Q)])),
])
def test_divergence_matches_the_hand_computed_value(loss, expected):
    assert distill.divergence(LQ, LP, loss).item() == pytest.approx(expected, rel=1e-5)


def test_jsd_beta_weights_the_two_sides():
    beta = 0.2
    m = [beta * a + (1 - beta) * b for a, b in zip(P, Q)]
    expected = beta * kl(P, m) + (1 - beta) * kl(Q, m)
    assert distill.divergence(LQ, LP, "jsd", beta=beta).item() == pytest.approx(expected, rel=1e-5)


def test_temperature_softens_both_distributions_and_scales_by_its_square():
    t = 2.0
    p, q = F.softmax(LP / t, -1).tolist(), F.softmax(LQ / t, -1).tolist()
    assert distill.divergence(LQ, LP, "forward_kl", temperature=t).item() == pytest.approx(t * t * kl(p, q), rel=1e-5)
    # a softer temperature brings the distributions closer before the T^2 scaling
    assert kl(p, q) < kl(P, Q)


def test_mask_keeps_only_the_chosen_positions():
    s, t = torch.stack([LQ, LP]), torch.stack([LP, LP])
    both = distill.divergence(s, t, "forward_kl")
    first = distill.divergence(s, t, "forward_kl", mask=torch.tensor([True, False]))
    assert first.item() == pytest.approx(kl(P, Q), rel=1e-5) and both.item() == pytest.approx(kl(P, Q) / 2, rel=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "kl"}, "unknown distillation loss 'kl'; accepted: forward_kl, reverse_kl, jsd"),
    ({"temperature": 0}, "temperature must be a positive number, got 0"),
    ({"temperature": -1.5}, "temperature must be a positive number, got -1.5"),
    ({"loss": "jsd", "beta": 1.0}, "beta must lie strictly between 0 and 1"),
])
def test_bad_loss_settings_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        distill.divergence(LQ, LP, **kwargs)


def test_different_vocabulary_sizes_are_refused():
    with pytest.raises(ValueError, match="different vocabularies"):
        distill.divergence(torch.randn(3, 10), torch.randn(3, 12))


def test_teacher_and_student_tokenizers_without_a_mapping_are_refused():
    char = CharTokenizer()
    other = CharTokenizer(alphabet="abc")
    teacher = student(StudentConfig(layers=1, width=32, heads=2), other)
    with pytest.raises(ValueError, match="different vocabularies .* no mapping"):
        distill.LogitKD(teacher, student_tokenizer=char, teacher_tokenizer=other)
    with pytest.raises(ValueError, match="unknown distillation loss 'mse'"):
        distill.LogitKD(teacher, loss="mse")
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        distill.LogitKD(teacher, temperature=0.0)


def batch_of(tok, n=4):
    from workbench import tasks

    exs = tasks.get("boolean_expressions").sample(n, seed=0)
    return tr.encode(tok, exs, rationale=True, max_len=512)


def test_logit_kd_from_an_identical_teacher_is_the_cross_entropy_alone():
    tok = CharTokenizer()
    model = student(StudentConfig(layers=1, width=32, heads=2), tok)
    batch = batch_of(tok)
    loss, logs = distill.LogitKD(model, alpha=0.5, temperature=2.0)(model, batch)
    assert logs["kd"] == pytest.approx(0, abs=1e-5)
    assert logs["ce"] == pytest.approx(tr.lm_loss(model, batch)[0].item(), rel=1e-5)
    assert loss.item() == pytest.approx(0.5 * logs["ce"], rel=1e-5)


def test_logit_kd_cache_scores_each_sequence_once_with_the_same_result():
    tok = CharTokenizer()
    torch.manual_seed(0)
    teacher = student(StudentConfig(layers=1, width=32, heads=2), tok)
    model = student(StudentConfig(layers=1, width=32, heads=2), tok)
    batch = batch_of(tok)
    calls = []
    teacher.register_forward_hook(lambda *a: calls.append(1))
    plain = distill.LogitKD(teacher)(model, batch)[0].item()
    cached = distill.LogitKD(teacher, cache=True)
    first, second = cached(model, batch)[0].item(), cached(model, batch)[0].item()
    assert len(calls) == 2  # the plain hook once, the cached hook only the first time
    assert first == pytest.approx(plain, rel=1e-3) and second == pytest.approx(first, rel=1e-6)


def test_logit_kd_trains_a_student_toward_its_teacher_on_the_loop():
    tok = CharTokenizer()
    torch.manual_seed(1)
    teacher = student(StudentConfig(layers=1, width=32, heads=2), tok)
    model = student(StudentConfig(layers=1, width=32, heads=2), tok)
    pool = [Example("boolean_expressions", 1, f"{a} is", f"{a} = {a}\nSo the answer is {a}.", a)
            for a in ("True", "False", "not True", "not False")]
    kd = distill.LogitKD(teacher, alpha=0.0, temperature=1.0)
    batch = tr.encode(tok, pool, True, 512)
    before = kd(model, batch)[1]["kd"]
    cfg = tr.TrainConfig(tasks=("boolean_expressions",), steps=40, batch_size=4, lr=1e-2, warmup=1, bucket=1,
                         eval_every=0, checkpoint_every=0, log_every=10)
    tr.train(model, tok, cfg, sampler=distill.PoolSampler(pool), loss_fn=kd, progress=False, validate_at_end=False)
    assert kd(model, batch)[1]["kd"] < before / 2


def test_on_policy_kd_samples_the_students_own_completions():
    tok = CharTokenizer()
    torch.manual_seed(0)
    teacher = student(StudentConfig(layers=1, width=32, heads=2), tok)
    model = student(StudentConfig(layers=1, width=32, heads=2), tok)
    batch = batch_of(tok)
    hook = distill.OnPolicyKD(teacher, tok, mix=1.0, max_new_tokens=12)
    sampled = hook.sample(model, batch)
    plen = [int((row != -100).nonzero()[0]) for row in batch["labels"]]
    for i, n in enumerate(plen):
        assert sampled["input_ids"][i, :n].tolist() == batch["input_ids"][i, :n].tolist()  # same prompt
        assert (sampled["labels"][i, :n] == -100).all() and (sampled["labels"][i, n:] != -100).sum() <= 12
    loss, logs = hook(model, batch)
    assert logs["on_policy"] == 1.0 and loss.requires_grad and hook.on_policy_steps == 1
    with pytest.raises(ValueError, match="mix .* got 1.5"):
        distill.OnPolicyKD(teacher, tok, mix=1.5)


def test_pool_sampler_is_deterministic_and_stays_in_the_pool():
    pool = [Example("boolean_expressions", 1, f"q{i}", "", "True") for i in range(10)]
    s = distill.PoolSampler(pool, seed=3)
    assert s.examples(5, 0, 8) == s.examples(5, 0, 8) and s.examples(5, 0, 8) != s.examples(6, 0, 8)
    assert all(e in pool for e in s.examples(0, 0, 50))
    with pytest.raises(ValueError, match="pool is empty"):
        distill.PoolSampler([])


def test_labelled_pool_is_fresh_nested_and_fractions_are_prefixes():
    from workbench.core.train import held_out_inputs

    pool = distill.labelled_pool("boolean_expressions", 60)
    assert len({e.input for e in pool}) == 60 and not {e.input for e in pool} & held_out_inputs(["boolean_expressions"])
    assert distill.fraction(pool, 0.25) == pool[:15] and distill.fraction(pool, 0.001) == pool[:1]
    with pytest.raises(ValueError, match="fraction must lie in"):
        distill.fraction(pool, 0)


def test_step_by_step_makes_a_label_task_and_a_rationale_task():
    gold = [Example("boolean_expressions", 1, "True is", "gold steps\nSo the answer is True.", "True")]
    made = [Example("boolean_expressions", 1, "True is", "teacher steps\nSo the answer is False.", "False")]
    label, why = distill.step_by_step_examples(gold, made)
    assert (label.input, label.target) == ("[label] True is", "True")  # the gold label
    assert (why.input, why.target) == ("[rationale] True is", made[0].rationale)  # the teacher's rationale
    assert distill.label_prompts(gold)[0].input == "[label] True is"


def test_teacher_examples_carry_the_teachers_text_and_answer(varied_student):
    model, tok = varied_student
    gold = [Example("boolean_expressions", 1, "True is", "True\nSo the answer is True.", "True")]
    made = distill.teacher_examples(model, tok, gold, max_new_tokens=20)
    from workbench.core.evaluate import solve

    assert made[0].rationale == solve(model, tok, "True is", max_new_tokens=20).strip()
    assert made[0].input == gold[0].input and distill.agreement(made, gold) in (0.0, 1.0)


# the study's bookkeeping ----------------------------------------------------------------------
def runs_of(acc):
    return [{"regime": g, "share": f, "accuracy": a} for (g, f), a in acc.items()]


@pytest.mark.parametrize("acc, met", [
    ({("label_only", 1.0): 0.80, ("step_by_step", 0.25): 0.81, ("logit_kd", 0.05): 0.70}, True),
    ({("label_only", 1.0): 0.80, ("step_by_step", 0.25): 0.79, ("logit_kd", 1.0): 0.95}, False),  # 100% does not count
])
def test_target_one_compares_distilled_at_a_quarter_with_label_only_at_all(acc, met):
    from workbench.studies import distillation as ds

    v = ds.verdict(runs_of(acc))
    assert v["met"] is met and v["label_only_100"] == 0.80


def test_target_two_needs_both_the_size_ratio_and_the_accuracy():
    from workbench.studies import distillation as ds

    rows = [{"model": "T", "params": 2_000_000, "accuracy": 0.90},
            {"model": "small", "params": 100_000, "accuracy": 0.885, "teacher": "T"},  # 20x, 1.5 points
            {"model": "big", "params": 200_000, "accuracy": 0.95, "teacher": "T"},  # only 10x
            {"model": "weak", "params": 50_000, "accuracy": 0.80, "teacher": "T"}]  # 40x, 10 points
    v = ds.smaller_and_close(rows)
    assert v["met"] and v["met_by"] == ["small"]
    assert [round(p["ratio"]) for p in v["pairs"]] == [20, 10, 40]


def test_the_curve_table_puts_each_regime_on_one_row():
    from workbench.studies import distillation as ds

    s = ds.Study(pool=100)
    text = ds.table(runs_of({("label_only", 0.05): 0.5, ("label_only", 1.0): 0.8, ("step_by_step", 0.05): 0.6}), s)
    assert "| 5% (5) | 100% (100) |" in text and "| label_only | 50% | 80% |" in text
    assert "| step_by_step | 60% |  |" in text


def test_an_unknown_regime_is_refused():
    from workbench.studies import distillation as ds

    with pytest.raises(ValueError, match="unknown regime 'dark'; accepted: label_only, sequence_level"):
        ds.run_one(ds.study("smoke"), "dark", 1.0, [], [])


@pytest.mark.parametrize("full, expected", [(("label_only",), ["label_only"]), (None, ["label_only", "logit_kd"])])
def test_the_curve_trains_only_the_full_regimes_on_the_whole_pool(monkeypatch, full, expected):
    from workbench.studies import distillation as ds

    s = ds.Study(fractions=(0.25, 1.0), regimes=("label_only", "logit_kd"), full_regimes=full)
    monkeypatch.setattr(ds, "test_set", lambda s: [])
    monkeypatch.setattr(ds, "run_one", lambda s, regime, share, *a, **kw: {"regime": regime, "share": share})
    runs = ds.curve(s, None, None, [], [])
    assert [r["regime"] for r in runs if r["share"] == 0.25] == ["label_only", "logit_kd"]
    assert [r["regime"] for r in runs if r["share"] == 1.0] == expected


def test_the_lora_teacher_row_reads_its_card_only_when_it_scored_the_same_questions(monkeypatch):
    from workbench.studies import distillation as ds

    s = ds.Study(test_n=100)
    card = {"tasks": [s.task], "eval": {"n": 100, "accuracy": 0.6, "latency_ms": 400.0, "max_new_tokens": None}}
    monkeypatch.setattr(ds, "test_set", lambda s: [])
    monkeypatch.setattr(ds, "scored", lambda label, *a, **kw: {"model": label, "accuracy": "scored now"})
    row = ds.teacher_row("T", torch.nn.Linear(2, 3), None, card, s)
    assert row["accuracy"] == 0.6 and row["latency_ms"] == 400.0 and row["params"] == 9 and row["role"] == "teacher"
    for other in (dict(s.__dict__, test_n=50), dict(s.__dict__, max_new_tokens=32), dict(s.__dict__, task="x")):
        assert ds.teacher_row("T", None, None, card, ds.Study(**other))["accuracy"] == "scored now"
    old_card = {**card, "eval": {k: v for k, v in card["eval"].items() if k != "max_new_tokens"}}  # cap unknown
    assert ds.teacher_row("T", None, None, old_card, s)["accuracy"] == "scored now"


def test_a_specialist_teachers_id_follows_its_recipe_and_stored_dtype():
    from workbench.studies import distillation

    card = {"name": "boolean_expressions specialist (laptop)", "params": 818_176, "recipe_key": "aaa",
            "stored_dtype": "float16"}
    same = distillation.specialist_id(dict(card))
    assert distillation.specialist_id(dict(card)) == same
    assert distillation.specialist_id({**card, "recipe_key": "bbb"}) != same  # re-shipped: texts made again
    assert distillation.specialist_id({**card, "stored_dtype": "float32"}) != same
