"""Fixtures: seeds and threads fixed in one place, and a tiny student to exercise the core."""

import pytest
import torch

from workbench.core import env
from workbench.core.tokenizer import CharTokenizer


@pytest.fixture(autouse=True)
def _seeded():
    env.set_seed(0)
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory):
    """(model, tokenizer, folder): a random 2-layer character-level Llama, saved with save_pretrained."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = CharTokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(cfg).eval()
    folder = tmp_path_factory.mktemp("student")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model, tok, folder


@pytest.fixture(scope="session")
def varied_student():
    """(model, tokenizer): a random 2-layer, 64-wide student whose greedy text varies from character to
    character (initializer_range 0.3; at the default 0.02 it writes only newlines)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = CharTokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, initializer_range=0.3)
    return LlamaForCausalLM(cfg).eval(), tok
