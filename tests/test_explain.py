"""Attributions, faithfulness measures and the explorer widget, on a tiny random student."""

import copy
import html

import numpy as np
import pytest
import torch

from workbench import explain, faithfulness
from workbench.studies import interpretability
from workbench.tasks import Example

QUESTION = "not ( True and False ) is"


@pytest.fixture(scope="module")
def student(tiny_student):
    """The tiny random student, kept from writing special tokens so that it always generates text."""
    model, tok, folder = tiny_student
    model = copy.deepcopy(model)
    special = torch.tensor([tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id])

    def no_special(_module, _inputs, logits):
        logits[..., special] = -1e4
        return logits

    model.lm_head.register_forward_hook(no_special)
    return model, tok, folder


@pytest.fixture(scope="module")
def gen(student):
    model, tok, _ = student
    return explain.generation(model, tok, QUESTION, max_new_tokens=12)


def _logp(model, ids, target):
    with torch.no_grad():
        return float(torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, -1], -1)[target])


def test_generation_keeps_prompt_and_generated_ids(student, gen):
    model, tok, _ = student
    assert tok.decode(gen.ids[:gen.prompt_len]) == QUESTION + "\n"
    assert 0 < gen.steps <= 12 and len(gen.tokens) == len(gen.ids)
    assert gen.context(2) == gen.ids[:gen.prompt_len + 2] and gen.target(2) == gen.ids[gen.prompt_len + 2]


def test_integrated_gradients_completeness(student, gen):
    """IG attributions add up to f(x) - f(baseline) (within the reported convergence delta)."""
    model, tok, _ = student
    att = explain.attribute(model, tok, gen, 3, "integrated_gradients", n_steps=200)
    ctx, target = gen.context(3), gen.target(3)
    expected = _logp(model, ctx, target) - _logp(model, [tok.pad_token_id] * len(ctx), target)
    assert att.scores.shape == (len(ctx),)
    assert att.scores.sum() == pytest.approx(expected, abs=1e-2)
    assert att.delta < 1e-2
    assert att.logprob == pytest.approx(_logp(model, ctx, target), abs=1e-5)


def test_feature_ablation_matches_captum_llm_attribution(student, gen):
    """The batched forward gives the same scores as Captum's LLMAttribution (one forward per perturbation)."""
    model, tok, _ = student
    ours = explain.attribute(model, tok, gen, 4, "feature_ablation", words=False).scores
    theirs = explain.llm_attribution(model, tok, gen, 4, "feature_ablation")
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # and by hand: removing token 0 changes log p(target) by exactly its score
    ctx, target = gen.context(4), gen.target(4)
    ablated = [tok.pad_token_id] + ctx[1:]
    assert ours[0] == pytest.approx(_logp(model, ctx, target) - _logp(model, ablated, target), abs=1e-5)


def test_word_groups_share_one_score(student, gen):
    model, tok, _ = student
    groups = explain.word_groups(list("not ( True"))
    assert groups == [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
    scores = explain.attribute(model, tok, gen, 2, "feature_ablation", words=True).scores
    g = explain.word_groups(gen.tokens[:len(scores)])
    for gid in set(g):
        vals = scores[[i for i, x in enumerate(g) if x == gid]]
        assert np.allclose(vals, vals[0])


@pytest.mark.parametrize("method", list(explain.METHODS))
def test_every_method_scores_the_whole_context(student, gen, method):
    model, tok, _ = student
    att = explain.attribute(model, tok, gen, 5, method, n_steps=8, n_samples=2)
    assert att.scores.shape == (gen.prompt_len + 5,) and np.isfinite(att.scores).all()
    assert len(att.alternatives) == 5 and att.alternatives[0][1] >= att.alternatives[-1][1]
    if method == "attention":  # each head's row is a softmax over the context
        assert att.scores.sum() == pytest.approx(1.0, abs=1e-4)
    assert 0.0 <= explain.rationale_share(gen, att) <= 1.0


def test_answer_step_finds_the_answer():
    text = "x = True ; True\nSo the answer is True."
    prompt = list("q\n")
    g = explain.Generation(prompt="q", ids=list(range(len(prompt) + len(text))), prompt_len=2,
                           tokens=prompt + list(text), text=text)
    assert text[g.answer_step] == "T" and text[:g.answer_step].endswith("So the answer is ")


def test_bad_input_is_named(student, gen):
    model, tok, _ = student
    with pytest.raises(ValueError, match="unknown attribution method 'saliency'"):
        explain.attribute(model, tok, gen, 0, "saliency")
    with pytest.raises(ValueError, match=f"step {gen.steps} is beyond the generation"):
        explain.attribute(model, tok, gen, gen.steps)
    with pytest.raises(ValueError, match="prompt is empty"):
        explain.generation(model, tok, "   ")


def test_deletion_and_insertion_curves_end_where_they_should(student, gen):
    model, tok, _ = student
    ctx, target = gen.context(4), gen.target(4)
    pad = tok.pad_token_id
    c = faithfulness.curves(model, ctx, target, np.arange(len(ctx)), pad)
    full, empty = np.exp(_logp(model, ctx, target)), np.exp(_logp(model, [pad] * len(ctx), target))
    assert c["deletion"][0] == pytest.approx(full, rel=1e-4) and c["deletion"][-1] == pytest.approx(empty, rel=1e-4)
    assert c["insertion"][0] == pytest.approx(empty, rel=1e-4) and c["insertion"][-1] == pytest.approx(full, rel=1e-4)
    assert faithfulness.auc(np.ones_like(faithfulness.FRACTIONS)) == pytest.approx(1.0)
    assert list(faithfulness.ranking(np.array([0.1, 0.5, -1.0, 0.5]))) == [1, 3, 0, 2]


def test_measure_reports_every_method_against_random(student):
    model, tok, _ = student
    res = faithfulness.measure(model, tok, [QUESTION], methods=("attention", "feature_ablation"), n_random=2,
                               max_new_tokens=8)
    assert [r["method"] for r in res.rows] == ["attention", "feature_ablation", "random"]
    floor = res.rows[-1]
    assert floor["deletion_gain"] == 0 and floor["insertion_gain"] == 0
    assert res.curves["attention"]["deletion"].shape == faithfulness.FRACTIONS.shape
    assert "| attention |" in interpretability.table(res)
    with pytest.raises(ValueError, match="unknown attribution method"):
        faithfulness.measure(model, tok, [QUESTION], methods=("lime",))


def test_perturb_step_flips_the_right_values():
    r = "not True = False ; ( False )\n( False ) = False ; False\nSo the answer is False."
    last, implied = faithfulness.perturb_step(r, "last")
    assert last == "not True = False ; ( False )\n( False ) = True ; True\nSo the answer is " and implied == "True"
    first, none = faithfulness.perturb_step(r, "first")
    assert first == "not True = True ; ( False )\n" and none is None
    with pytest.raises(ValueError, match="no 'X = V ; rest' step"):
        faithfulness.perturb_step("So the answer is 3.", "last")


# the widget, driven headlessly -----------------------------------------------------------------
@pytest.fixture(scope="module")
def explorer(student):
    from workbench.widgets import AttributionExplorer

    model, tok, _ = student
    examples = [Example("boolean_expressions", 1, q, "", "True") for q in (QUESTION, "True or False is")]
    examples.append(Example("dyck_languages", 1, "[ (", "", ") ]"))
    return AttributionExplorer(model, tok, examples, n_steps=4, n_samples=1, max_new_tokens=10)


def _key(explorer):
    return explorer.heatmap.value.split("data-key='", 1)[1].split("'", 1)[0]


def test_explorer_redraws_on_example_method_and_step(explorer):
    first = _key(explorer)
    explorer.step.value = 1 if explorer.step.value != 1 else 2
    after_step = _key(explorer)
    explorer.method.value = "attention"
    after_method = _key(explorer)
    explorer.example.value = "True or False is"
    after_example = _key(explorer)
    assert len({first, after_step, after_method, after_example}) == 4
    explorer.task.value = "dyck_languages"
    assert explorer.text == "[ (" and _key(explorer) != after_example
    assert explorer.explainer.cache  # attributions are kept for revisits


@pytest.mark.parametrize("kwargs, message", [
    ({"text": ""}, "prompt is empty"),
    ({"method": "lime"}, "unknown attribution method 'lime'"),
    ({"step": 999}, "step 999 is beyond the generation"),
])
def test_explorer_explains_bad_input_in_the_widget(explorer, kwargs, message):
    before = explorer.heatmap.value
    said = explorer.show(**kwargs)
    assert message in said and message in html.unescape(explorer.status.value)
    assert explorer.heatmap.value == before  # the last good view stays


def test_explorer_typed_question(explorer):
    explorer.custom.value = "False and True is"
    explorer.run.click()
    assert explorer.text == "False and True is" and "data-key" in explorer.heatmap.value
