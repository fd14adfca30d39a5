"""Vocabulary trimming: a pretrained teacher's tokenizer, cut down to the tokens a task uses.

    vocab = TrimmedVocab.from_texts(teacher_tok, texts)         # the teacher ids the task's text uses
    tok = vocab.tokenizer()                                     # that tokenizer, with ids 0..len(vocab)-1
    report = vocab.report(teacher)                              # parameters trimming alone removes
    small_teacher = vocab.trim(teacher)                         # same outputs on the kept tokens

A character-level student and a BPE teacher share no vocabulary, so their logits cannot be compared.
A student built on the teacher's tokenizer can, but a pretrained vocabulary is huge: Gemma 3 270M
keeps about 170M of its 268M parameters in a 262k-token embedding, SmolLM2-135M about 28M in 49k,
while a task writes a few dozen to a few hundred distinct tokens. Keeping only those (as in the
vocabulary trimming of Abdaoui et al., 2020, and of multilingual model compression) shrinks the
embedding and the output layer without changing a single computation on the task's text. Logit
distillation then runs over the kept tokens: the teacher's logits restricted to them and
renormalised by a log-softmax over that subset.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizer


@dataclass
class TrimmedVocab:
    kept: list[int]  # teacher ids, sorted; a kept token's student id is its index here
    teacher_size: int  # the teacher's full vocabulary size
    fallback: int  # the student id that tokens outside the kept set map to (the teacher's unk or eos)

    @classmethod
    def from_texts(cls, tokenizer, texts, extra_ids=()) -> TrimmedVocab:
        """The tokens ``tokenizer`` uses on ``texts``, plus its special tokens (eos, pad, unk, bos)."""
        ids = {i for t in texts for i in tokenizer(t, add_special_tokens=False).input_ids}
        specials = [tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.bos_token_id]
        ids |= {i for i in [*specials, *extra_ids] if i is not None}
        if not ids:
            raise ValueError("no texts to take the task's tokens from")
        kept = sorted(ids)
        base = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.eos_token_id
        return cls(kept=kept, teacher_size=len(tokenizer), fallback=kept.index(base))

    def __len__(self) -> int:
        return len(self.kept)

    def _tables(self):
        if not hasattr(self, "_to_student"):
            to_student = torch.full((self.teacher_size,), self.fallback, dtype=torch.long)
            to_student[torch.tensor(self.kept)] = torch.arange(len(self.kept))
            self._to_student, self._to_teacher = to_student, torch.tensor(self.kept)
        return self._to_student, self._to_teacher

    def to_student(self, teacher_ids: torch.Tensor) -> torch.Tensor:
        return self._tables()[0].to(teacher_ids.device)[teacher_ids]

    def to_teacher(self, student_ids: torch.Tensor) -> torch.Tensor:
        if student_ids.numel() and int(student_ids.max()) >= len(self.kept):
            raise ValueError(f"student id {int(student_ids.max())} is outside the trimmed vocabulary "
                             f"({len(self.kept)} tokens)")
        return self._tables()[1].to(student_ids.device)[student_ids]

    def restrict(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        """(..., teacher_size) logits -> (..., len(kept)); any softmax over them is renormalised on the subset."""
        return teacher_logits[..., self._tables()[1].to(teacher_logits.device)]

    def tokenizer(self, base) -> TrimmedTokenizer:
        return TrimmedTokenizer(base, self)

    def trim(self, model):
        """A copy of ``model`` whose embedding and output layer keep only the kept rows: on any text made
        of kept tokens it computes exactly the original's logits, restricted to those tokens."""
        small = copy.deepcopy(model)
        index = torch.tensor(self.kept)
        emb = small.get_input_embeddings()
        new_emb = torch.nn.Embedding(len(self.kept), emb.weight.shape[1], dtype=emb.weight.dtype)
        new_emb.weight.data = emb.weight.data[index].clone()
        small.set_input_embeddings(new_emb)
        head = small.get_output_embeddings()
        if small.config.tie_word_embeddings:
            head.weight = new_emb.weight
        else:
            head.weight = torch.nn.Parameter(head.weight.data[index].clone())
        head.out_features = len(self.kept)
        small.config.vocab_size = len(self.kept)
        for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
            old = getattr(small.config, key, None)
            if isinstance(old, int):
                setattr(small.config, key, self.kept.index(old) if old in self.kept else self.fallback)
        return small.eval()

    def report(self, model) -> dict:
        """Parameters before and after trimming (tied embeddings counted once)."""
        before = sum(p.numel() for p in model.parameters())
        width = model.get_input_embeddings().weight.shape[1]
        tables = 1 if model.config.tie_word_embeddings else 2
        removed = tables * (self.teacher_size - len(self.kept)) * width
        return {"vocabulary": self.teacher_size, "kept_tokens": len(self.kept), "params": before,
                "params_trimmed": before - removed, "removed": removed, "removed_share": removed / before}


class TrimmedTokenizer(PreTrainedTokenizer):
    """The teacher's tokenizer with ids renumbered to the kept tokens: the same pieces for the same text."""

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, base, vocab: TrimmedVocab, **kwargs):
        self.base, self.trimmed = base, vocab
        self._vocab = {base.convert_ids_to_tokens(i): s for s, i in enumerate(vocab.kept)}
        self._inv = {s: t for t, s in self._vocab.items()}
        for name in ("pad_token", "bos_token", "eos_token", "unk_token"):
            tok = getattr(base, name, None)
            if tok is not None and tok in self._vocab:
                kwargs.setdefault(name, tok)
        kwargs.setdefault("padding_side", "left")
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(**kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return self.base.tokenize(text)

    def _convert_token_to_id(self, token: str) -> int:
        return self._vocab.get(token, self.trimmed.fallback)

    def _convert_id_to_token(self, index: int) -> str:
        return self._inv.get(index, self._inv[self.trimmed.fallback])

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self.base.convert_tokens_to_string(tokens)

    def build_inputs_with_special_tokens(self, ids0, ids1=None):
        return ids0 if ids1 is None else ids0 + ids1

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        raise NotImplementedError("a trimmed tokenizer is rebuilt from its base tokenizer and TrimmedVocab.kept; "
                                  "save the kept ids (vocab.kept) beside the model instead")
