"""Quantization and low-rank factorisation: round trips, sizes, save/reload, bad input."""

import pytest
import torch

from workbench import lowrank, quantize
from workbench.core.artifacts import compression, compressions
from workbench.core.measure import bytes_on_disk
from workbench.core.models import StudentConfig, linear_layers, student
from workbench.core.tokenizer import CharTokenizer

TASK = "boolean_expressions"


@pytest.fixture
def model():
    torch.manual_seed(0)
    return student(StudentConfig(layers=2, width=64, heads=4, max_len=256), CharTokenizer()).eval()


def logits(m):
    with torch.no_grad():
        return m(input_ids=torch.arange(5, 45).reshape(2, 20)).logits


@pytest.mark.parametrize("bits, tol", [(8, 0.01), (4, 0.2)])
def test_weight_round_trip_error_shrinks_with_bits(bits, tol):
    w = torch.randn(16, 64)
    q, scale = quantize.quantize_weight(w, bits, 32)
    assert q.abs().max() <= 2 ** (bits - 1) - 1
    err = (quantize.dequantize_weight(q, scale, 32) - w).abs().max() / w.abs().max()
    assert err < tol


def test_int4_packs_two_values_per_byte():
    q = torch.randint(-7, 8, (4, 10), dtype=torch.int8)
    packed = quantize._pack4(q)
    assert packed.shape == (4, 5) and packed.dtype == torch.uint8
    assert torch.equal(quantize._unpack4(packed), q)


@pytest.mark.parametrize("bits", [8, 4])
def test_weight_only_model_is_close_saves_small_and_reloads_identically(model, bits, tmp_path):
    q = quantize.weight_only(model, bits)
    assert quantize.is_quantized(q) and not quantize.is_quantized(model)
    rel = (logits(q) - logits(model)).abs().max() / logits(model).abs().max()
    assert rel < (0.05 if bits == 8 else 0.3)
    model.save_pretrained(tmp_path / "fp32")
    quantize.save(q, CharTokenizer(), tmp_path / "q")
    linear_bytes = sum(lin.weight.numel() * 4 for lin in linear_layers(model).values())
    saved = bytes_on_disk(tmp_path / "fp32") - bytes_on_disk(tmp_path / "q")
    assert saved > linear_bytes * (0.6 if bits == 8 else 0.75)  # int8 ~1/4 of fp32, int4 ~1/8, plus scales
    again, tok = quantize.load(tmp_path / "q")
    assert torch.equal(logits(again), logits(q))


def test_dynamic_int8_is_close_and_reloads_identically(model, tmp_path):
    q = quantize.dynamic_int8(model)
    assert quantize.is_quantized(q)
    rel = (logits(q) - logits(model)).abs().max() / logits(model).abs().max()
    assert rel < 0.1
    quantize.save(q, CharTokenizer(), tmp_path / "dyn")
    again, _ = quantize.load(tmp_path / "dyn")
    assert torch.allclose(logits(again), logits(q), atol=1e-6)
    # the record of what was done travels with the model, not as an ad hoc attribute
    assert [c.method for c in compressions(again)] == ["dynamic_int8"] and compressions(model) == ()
    assert compression(again, "dynamic_int8").spec["layers"] == list(linear_layers(model))


def test_qat_finetune_returns_a_weight_only_model_that_trained(model):
    direct = quantize.weight_only(model, 4)
    qat = quantize.qat_finetune(model, CharTokenizer(), TASK, bits=4, steps=8, batch_size=4, rationale=False)
    assert quantize.is_quantized(qat)
    assert not torch.equal(logits(qat), logits(direct))


@pytest.mark.parametrize("call, message", [
    (lambda m: quantize.weight_only(m, 3), "unsupported bit width 3; choose one of 8, 4"),
    (lambda m: quantize.weight_only(quantize.weight_only(m, 8), 4), "already quantized"),
    (lambda m: quantize.dynamic_int8(quantize.dynamic_int8(m)), "already quantized"),
    (lambda m: quantize.weight_only(m, 8, group=3), "group must be a positive even integer, got 3"),
    (lambda m: lowrank.factorize(m, rank=65), "rank 65 is larger than layer 'model.layers.0.self_attn.q_proj' allows"),
    (lambda m: lowrank.factorize(m, rank=0), "rank must be a positive integer, got 0"),
    (lambda m: lowrank.factorize(m, energy=1.5), r"energy must be in \(0, 1\], got 1.5"),
])
def test_bad_input_is_named(model, call, message):
    with pytest.raises(ValueError, match=message):
        call(model)


def test_full_energy_factorisation_reproduces_the_layer():
    lin = torch.nn.Linear(8, 64, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(64, 3) @ torch.randn(3, 8))  # rank 3
    s = torch.linalg.svdvals(lin.weight.detach())
    assert lowrank.rank_for_energy(s, 0.999999) == 3


def test_factorize_halves_linear_params_and_saves_and_reloads(model, tmp_path):
    small = lowrank.factorize(model, rank=16)
    assert lowrank.linear_params(small) < 0.55 * lowrank.linear_params(model)
    lowrank.save(small, CharTokenizer(), tmp_path / "lr")
    again, _ = lowrank.load(tmp_path / "lr")
    assert torch.allclose(logits(again), logits(small), atol=1e-6)
    by_energy = lowrank.factorize(model, energy=0.5)
    ranks = compression(by_energy, "lowrank").spec
    assert ranks and all(r >= 1 for r in ranks.values())
    assert compression(again, "lowrank").spec == compression(small, "lowrank").spec
    both = quantize.dynamic_int8(small)  # factorised, then quantized: both records kept, oldest first
    assert [c.method for c in compressions(both)] == ["lowrank", "dynamic_int8"]
