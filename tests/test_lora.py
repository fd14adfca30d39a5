"""LoRA with peft on the one training loop: few trainable parameters, merging keeps the outputs."""

import pytest
import torch
from transformers import LlamaForCausalLM

from workbench import lora
from workbench.core.measure import count_params
from workbench.core.models import StudentConfig, student
from workbench.core.tokenizer import CharTokenizer
from workbench.studies.quantization import lora_verdict

TASK = "boolean_expressions"


def tiny():
    torch.manual_seed(0)
    return student(StudentConfig(layers=2, width=64, heads=4, max_len=256), CharTokenizer())


def test_adapters_train_only_a_small_fraction_and_merge_to_the_same_outputs():
    base = tiny()
    frozen = {k: v.clone() for k, v in base.state_dict().items()}
    run = lora.finetune(base, CharTokenizer(), TASK, rank=2, steps=8, batch_size=4, lr=1e-2)
    assert 0 < run["trainable_fraction"] < 0.1 and run["train_state_bytes"] == 12 * run["trainable"]
    peft_model = run["model"]
    ids = torch.arange(5, 25).reshape(1, 20)
    with torch.no_grad():
        adapted = peft_model(input_ids=ids).logits
        merged = lora.merge(peft_model)
        assert type(merged) is LlamaForCausalLM and count_params(merged) == count_params(tiny())
        assert torch.allclose(merged(input_ids=ids).logits, adapted, atol=1e-5)
    changed = [k for k, v in merged.state_dict().items() if k in frozen and not torch.equal(v, frozen[k])]
    assert changed and all(k.endswith("_proj.weight") for k in changed)  # only the adapted layers moved


def test_full_fine_tune_trains_everything():
    run = lora.finetune(tiny(), CharTokenizer(), TASK, rank=0, steps=4, batch_size=4)
    assert run["trainable_fraction"] == 1.0


@pytest.mark.parametrize("rank, message", [(0.5, "LoRA rank must be a positive integer, got 0.5"),
                                           (65, "LoRA rank 65 is larger than the narrowest layer allows")])
def test_bad_rank_is_named(rank, message):
    with pytest.raises(ValueError, match=message):
        lora.wrap(tiny(), rank)


def test_merge_needs_adapters():
    with pytest.raises(ValueError, match="no LoRA adapters to merge"):
        lora.merge(tiny())


def test_verdict_measures_the_share_of_the_full_gap():
    rows = [{"model": "before", "accuracy": 0.5},
            {"model": "r1", "rank": 1, "trainable_fraction": 0.01, "accuracy": 0.88},
            {"model": "r16", "rank": 16, "trainable_fraction": 0.05, "accuracy": 0.9},
            {"model": "full", "rank": 0, "trainable_fraction": 1.0, "accuracy": 0.9}]
    v = lora_verdict(rows)
    assert v["lora"][0]["share_of_full_gap"] == pytest.approx(0.95) and v["lora"][0]["meets_target"]
    assert not v["lora"][1]["meets_target"] and v["met"]
