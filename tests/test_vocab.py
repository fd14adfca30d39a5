"""Vocabulary trimming on a tiny BPE tokenizer trained in the test: ids, renormalisation, the trimmed model."""

import pytest
import torch
import torch.nn.functional as F

from workbench import distill
from workbench.vocab import TrimmedVocab

TEXTS = ["not True and False is\nnot True = False ; False and False\nSo the answer is False.",
         "True or ( False ) is\nTrue or False = True ; True\nSo the answer is True."]
OTHER = ["the quick brown fox jumps over the lazy dog", "pack my box with five dozen liquor jugs"]


@pytest.fixture(scope="module")
def bpe():
    """(teacher, tokenizer): a byte-level BPE over task and unrelated text, and a random Llama on it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator((TEXTS + OTHER) * 20, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval(), tok


def test_kept_tokens_are_the_ones_the_task_uses_plus_specials(bpe):
    _, tok = bpe
    vocab = TrimmedVocab.from_texts(tok, TEXTS)
    used = {i for t in TEXTS for i in tok(t, add_special_tokens=False).input_ids}
    assert set(vocab.kept) == used | {tok.eos_token_id, tok.unk_token_id} and vocab.kept == sorted(vocab.kept)
    assert len(vocab) < len(tok) / 2


def test_trimmed_tokenizer_gives_the_same_pieces_under_new_ids(bpe):
    _, tok = bpe
    vocab = TrimmedVocab.from_texts(tok, TEXTS)
    small = vocab.tokenizer(tok)
    for text in TEXTS:
        ids = small(text, add_special_tokens=False).input_ids
        base = tok(text, add_special_tokens=False).input_ids
        assert vocab.to_teacher(torch.tensor(ids)).tolist() == base
        assert vocab.to_student(torch.tensor(base)).tolist() == ids
        assert small.decode(ids) == text
    assert small.eos_token_id == vocab.kept.index(tok.eos_token_id) and len(small) == len(vocab)
    # a token the task never used maps to the fallback (the unk), not to a wrong token
    foreign = small("jumps", add_special_tokens=False).input_ids
    assert set(foreign) == {vocab.fallback}
    with pytest.raises(ValueError, match="outside the trimmed vocabulary"):
        vocab.to_teacher(torch.tensor([len(vocab)]))


def test_restricted_logits_renormalise_over_the_kept_tokens(bpe):
    teacher, tok = bpe
    vocab = TrimmedVocab.from_texts(tok, TEXTS)
    logits = teacher(input_ids=torch.tensor([tok(TEXTS[0]).input_ids])).logits
    full = F.softmax(logits, -1)
    kept = F.softmax(vocab.restrict(logits), -1)
    expected = full[..., vocab.kept] / full[..., vocab.kept].sum(-1, keepdim=True)
    assert torch.allclose(kept, expected, atol=1e-6) and torch.allclose(kept.sum(-1), torch.ones(1))


def test_the_trimmed_teacher_computes_the_same_logits_on_the_kept_tokens(bpe):
    teacher, tok = bpe
    vocab = TrimmedVocab.from_texts(tok, TEXTS)
    trimmed = vocab.trim(teacher)
    ids = torch.tensor([tok(TEXTS[1], add_special_tokens=False).input_ids])
    assert torch.allclose(trimmed(input_ids=vocab.to_student(ids)).logits,
                          vocab.restrict(teacher(input_ids=ids).logits), atol=1e-5)
    report = vocab.report(teacher)
    assert report["removed"] == (len(tok) - len(vocab)) * 32  # tied: one table of width 32
    assert report["params_trimmed"] == sum(p.numel() for p in trimmed.parameters())
    assert trimmed.config.vocab_size == len(vocab)


def test_logit_kd_over_a_trimmed_vocabulary_trains_a_student_on_the_teachers_tokenizer(bpe):
    from workbench.core.models import StudentConfig, student

    teacher, tok = bpe
    vocab = TrimmedVocab.from_texts(tok, TEXTS)
    small = vocab.tokenizer(tok)
    model = student(StudentConfig(layers=1, width=32, heads=2, max_len=128), small)
    assert model.config.vocab_size == len(vocab)
    ids = torch.tensor([small(TEXTS[0], add_special_tokens=False).input_ids])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    kd = distill.LogitKD(teacher, vocab=vocab, alpha=0.0)
    loss, logs = kd(model, batch)
    assert loss.item() > 0 and loss.requires_grad
    with pytest.raises(ValueError, match="different vocabularies"):
        distill.LogitKD(teacher, alpha=0.0)(model, batch)  # no mapping: the logits do not line up
