"""Pruning: the sparsity reached is the sparsity asked, structured removal is exact on zeroed units,
pruned models save and reload, recovery keeps zeros at zero, bad input is named."""

import pytest
import torch
from transformers import LlamaForCausalLM

from workbench import prune
from workbench.core import models
from workbench.core.measure import count_params, forward_latency
from workbench.core.models import StudentConfig, student
from workbench.core.tokenizer import CharTokenizer

TASK = "boolean_expressions"


@pytest.fixture
def model():
    torch.manual_seed(0)
    return student(StudentConfig(layers=3, width=64, heads=4, max_len=256), CharTokenizer()).eval()


@pytest.fixture(scope="module")
def texts():
    return prune.calibration(TASK, n=8)


def logits(m, ids=None):
    ids = ids if ids is not None else torch.arange(5, 45).reshape(2, 20)
    with torch.no_grad():
        return m(input_ids=ids).logits


@pytest.mark.parametrize("s", [0.0, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_reaches_the_sparsity_asked(model, s, scope):
    prune.magnitude(model, s, scope=scope)
    assert prune.sparsity(model) == pytest.approx(s, abs=1e-3)
    if scope == "layer":
        for lin in models.linear_layers(model).values():
            assert float((lin.weight == 0).float().mean()) == pytest.approx(s, abs=1e-3)


def test_global_magnitude_prunes_layers_unevenly_and_keeps_the_largest(model):
    layers = models.linear_layers(model)
    biggest = max(float(m.weight.detach().abs().max()) for m in layers.values())
    prune.magnitude(model, 0.5)
    assert max(float(m.weight.detach().abs().max()) for m in layers.values()) == biggest
    per_layer = [float((m.weight == 0).float().mean()) for m in layers.values()]
    assert max(per_layer) - min(per_layer) > 0.01


def test_wanda_prunes_each_row_to_the_sparsity_asked(model, texts):
    tok = CharTokenizer()
    masks = prune.wanda(model, tok, texts, 0.5)
    assert prune.sparsity(model) == pytest.approx(0.5)
    for name, lin in models.linear_layers(model).items():
        assert ((lin.weight == 0).sum(1) == lin.in_features // 2).all(), name
        assert torch.equal(masks[name] == 0, lin.weight == 0)


def test_wanda_uses_activations_not_only_magnitudes(model, texts):
    tok = CharTokenizer()
    other = models.copy_model(model)
    prune.wanda(model, tok, texts, 0.5)
    prune.magnitude(other, 0.5, scope="layer")
    differs = [not torch.equal(a.weight == 0, b.weight == 0)
               for a, b in zip(models.linear_layers(model).values(), models.linear_layers(other).values())]
    assert any(differs)


def test_two_four_keeps_two_of_every_four(model):
    prune.n_m(model, 2, 4)
    assert prune.sparsity(model) == pytest.approx(0.5)
    for lin in models.linear_layers(model).values():
        groups = (lin.weight != 0).view(lin.out_features, -1, 4).sum(-1)
        assert (groups == 2).all()


@pytest.mark.parametrize("call, message", [
    (lambda m: prune.magnitude(m, 1.0), r"sparsity must be in \[0, 1\), got 1.0"),
    (lambda m: prune.magnitude(m, -0.1), r"sparsity must be in \[0, 1\), got -0.1"),
    (lambda m: prune.magnitude(m, 0.5, scope="row"), "scope must be 'global' or 'layer', got 'row'"),
    (lambda m: prune.n_m(m, 4, 4), "N:M needs integers 0 < N < M, got 4:4"),
    (lambda m: prune.n_m(m, 3, 2), "N:M needs integers 0 < N < M, got 3:2"),
    (lambda m: prune.magnitude(m, 0.5, names=["model.layers.9.mlp.up_proj"]),
     r"no decoder linear layer named 'model.layers.9.mlp.up_proj'; layers look like model.layers.0.self_attn.q_proj"),
    (lambda m: prune.structured(m, heads=1, scores={}), r"heads must be one of \[0, 2, 3\] .* got 1"),
    (lambda m: prune.structured(m, heads=4, scores={}), r"heads must be one of \[0, 2, 3\]"),
    (lambda m: prune.structured(m, layers=3, scores={}), r"layers must be an integer in \[0, 3\)"),
    (lambda m: prune.structured(m, neurons=1.0, scores={}), r"sparsity must be in \[0, 1\), got 1.0"),
])
def test_bad_input_is_named(model, call, message):
    with pytest.raises(ValueError, match=message):
        call(model)


def test_structured_removal_of_zeroed_units_keeps_outputs_identical(model):
    before = logits(model)
    layers = model.model.layers
    d = model.config.head_dim or model.config.hidden_size // model.config.num_attention_heads
    inner = model.config.intermediate_size
    with torch.no_grad():
        for layer in layers:  # zero heads 1 and 3's outputs and the first quarter of the MLP neurons' outputs
            layer.self_attn.o_proj.weight[:, d:2 * d] = 0
            layer.self_attn.o_proj.weight[:, 3 * d:] = 0
            layer.mlp.down_proj.weight[:, : inner // 4] = 0
        layers[2].self_attn.o_proj.weight.zero_()  # layer 2 becomes the identity
        layers[2].mlp.down_proj.weight.zero_()
    zeroed = logits(model)
    assert not torch.allclose(zeroed, before)  # the zeroing changed the model...
    scores = {"heads": [torch.tensor([1.0, 0.0, 1.0, 0.0])] * 3,
              "neurons": [torch.cat([torch.zeros(inner // 4), torch.ones(inner - inner // 4)])] * 3,
              "layer_change": [1.0, 1.0, 0.0]}
    small = prune.structured(model, heads=2, neurons=0.25, layers=1, scores=scores)
    assert torch.allclose(logits(small), zeroed, atol=1e-5)  # ...and removing the zeroed units changed nothing
    assert small.config.num_hidden_layers == 2 and small.config.num_attention_heads == 2
    assert small.config.intermediate_size == inner - inner // 4
    assert count_params(small) < count_params(model)


def test_structured_with_calibration_scores_shrinks_and_runs(model, texts):
    small = prune.structured(model, CharTokenizer(), texts, heads=2, neurons=0.5, layers=1)
    assert count_params(small) < 0.7 * count_params(model)
    assert logits(small).shape == logits(model).shape
    assert forward_latency(small, 1, length=16, repeats=2) > 0


def test_pruned_models_save_and_reload_with_the_same_outputs(model, texts, tmp_path):
    small = prune.structured(model, CharTokenizer(), texts, heads=2, neurons=0.5)
    small.save_pretrained(tmp_path / "small")
    assert torch.allclose(logits(LlamaForCausalLM.from_pretrained(tmp_path / "small")), logits(small))
    prune.wanda(model, CharTokenizer(), texts, 0.5)
    model.save_pretrained(tmp_path / "masked")
    again = LlamaForCausalLM.from_pretrained(tmp_path / "masked")
    assert torch.allclose(logits(again), logits(model)) and prune.sparsity(again) == pytest.approx(0.5)


def test_recovery_trains_but_keeps_pruned_weights_at_zero(model):
    masks = prune.magnitude(model, 0.5)
    zeros = {n: lin.weight == 0 for n, lin in models.linear_layers(model).items()}
    kept = {n: lin.weight.detach().clone() for n, lin in models.linear_layers(model).items()}
    prune.recover(model, CharTokenizer(), TASK, masks, steps=8, batch_size=4, rationale=False)
    for n, lin in models.linear_layers(model).items():
        assert (lin.weight[zeros[n]] == 0).all()
        assert not torch.equal(lin.weight, kept[n])
    assert prune.sparsity(model) == pytest.approx(0.5, abs=1e-3)


def test_explorer_widget_computes_each_setting_once_and_shows_it(model):
    from workbench.tasks import splits
    from workbench.widgets import PruningExplorer

    examples = splits.load(TASK, "test", level=3, n=2)
    ex = PruningExplorer(model, CharTokenizer(), TASK, examples, recovery_steps=2)
    assert ex.computed == 1 and "wanda 50%" in ex.output.value and "dense" in ex.output.value
    ex.sparsity.value = 0.8
    assert ex.computed == 2 and "wanda 80%" in ex.output.value
    assert ex.cache[("wanda", 0.8, False)]["sparsity"] == pytest.approx(0.8, abs=0.01)
    ex.sparsity.value = 0.5
    assert ex.computed == 2 and "wanda 50%" in ex.output.value  # cached: shown at once
    ex.method.value = "2:4"
    assert ex.sparsity.disabled and "2:4 50%" in ex.output.value
    seeded = PruningExplorer(model, CharTokenizer(), TASK, examples,
                             rows=[{**ex.dense, "method": "dense"},
                                   {**ex.cache[("wanda", 0.5, False)], "method": "wanda", "target": 0.5,
                                    "recovered": False}])
    assert seeded.computed == 0


def test_importance_scores_every_layer_head_group_and_neuron(model, texts):
    scores = prune.importance(model, CharTokenizer(), texts)
    assert len(scores["layer_change"]) == 3 and all(c > 0 for c in scores["layer_change"])
    assert all(h.shape == (4,) and (h > 0).all() for h in scores["heads"])
    assert all(n.shape == (model.config.intermediate_size,) for n in scores["neurons"])


def test_lora_recovery_merges_into_a_plain_model_and_keeps_the_masks(model):
    masks = prune.wanda(model, CharTokenizer(), prune.calibration(TASK, n=4), 0.5)
    before = {n: lin.weight.detach().clone() for n, lin in models.linear_layers(model).items()}
    out = prune.recover(model, CharTokenizer(), TASK, masks, steps=8, batch_size=4, rationale=False, lora_rank=2)
    fresh = student(StudentConfig(layers=3, width=64, heads=4, max_len=256), CharTokenizer())
    assert type(out) is LlamaForCausalLM and count_params(out) == count_params(fresh)
    assert prune.sparsity(out) == pytest.approx(0.5)
    assert any(not torch.equal(lin.weight, before[n]) for n, lin in models.linear_layers(out).items())
    with pytest.raises(ValueError, match="lora_rank must be a non-negative integer"):
        prune.recover(out, CharTokenizer(), TASK, lora_rank=-1)
