"""A character-level tokenizer for students trained from scratch, and loading any tokenizer.

One id per character keeps every reasoning step visible to the model (no digit merges, no
"True" as one opaque token), which is what lets a model of a few million parameters learn
digit-level arithmetic and bracket matching. ``CharTokenizer`` is a transformers
``PreTrainedTokenizer``: ``save_pretrained`` writes it beside the model and
``load_tokenizer(folder)`` reads it back.
"""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizer

from workbench.core.validate import BadInput, read_json

# every character the five tasks write, plus the rest of printable ASCII for users' own data
ALPHABET = "\n" + "".join(c for c in string.printable if c not in "\t\n\r\x0b\x0c")
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
VOCAB_FILE = "vocab.json"
VOCAB_SHAPE = 'an object {"alphabet": "..."}'


class CharTokenizer(PreTrainedTokenizer):
    """One token per character; ids 0-3 are pad, bos, eos, unk."""

    vocab_files_names = {"vocab_file": VOCAB_FILE}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str | None = None, alphabet: str = ALPHABET, **kwargs):
        if vocab_file is not None:
            chars = read_json(vocab_file, "character vocabulary", VOCAB_SHAPE).get("alphabet")
            if not isinstance(chars, str) or not chars:
                raise BadInput(f"{vocab_file}: no \"alphabet\" string; expected {VOCAB_SHAPE}")
        else:
            chars = alphabet
        self._vocab = {tok: i for i, tok in enumerate(SPECIALS)}
        for ch in chars:
            self._vocab.setdefault(ch, len(self._vocab))
        self._inv = {i: t for t, i in self._vocab.items()}
        self._alphabet = "".join(chars)
        for name, tok in zip(("pad_token", "bos_token", "eos_token", "unk_token"), SPECIALS):
            kwargs.setdefault(name, tok)
        kwargs.setdefault("padding_side", "left")  # decoder-only: batched generation pads on the left
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(**kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return list(text)

    def char_ids(self, text: str) -> list[int]:
        """``self(text, add_special_tokens=False).input_ids`` without transformers' per-call machinery (a
        dictionary lookup per character: the training loop encodes every example this way). Text that spells a
        special token (``<eos>``...) goes the general way, which reads it as that token."""
        if "<" in text and any(sp in text for sp in SPECIALS):
            return self(text, add_special_tokens=False).input_ids
        vocab, unk = self._vocab, self._vocab["<unk>"]
        return [vocab.get(ch, unk) for ch in text]

    def _convert_token_to_id(self, token: str) -> int:
        return self._vocab.get(token, self._vocab["<unk>"])

    def _convert_id_to_token(self, index: int) -> str:
        return self._inv.get(index, "<unk>")

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return "".join(tokens)

    def build_inputs_with_special_tokens(self, ids0, ids1=None):
        return ids0 if ids1 is None else ids0 + ids1  # prompts carry no bos: the task text starts them

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        path = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILE)
        with open(path, "w") as f:
            json.dump({"alphabet": self._alphabet}, f)
        return (path,)


def load_tokenizer(path_or_name: str, **kwargs):
    """Our CharTokenizer when the folder holds one, else ``AutoTokenizer``."""
    config = Path(path_or_name) / "tokenizer_config.json"
    if config.exists() and read_json(config, "tokenizer config").get("tokenizer_class") == "CharTokenizer":
        return CharTokenizer.from_pretrained(path_or_name)
    return AutoTokenizer.from_pretrained(path_or_name, **kwargs)
