"""The lean decode path: a tiny Llama student routes a request without transformers' per-token machinery.

    lm = LeanLlama(model)                      # LeanLlama.unsupported(model) says why a model cannot take it
    lean_greedy(lm, tok, "What is 2+2?\\n", 64)  # == evaluate.generate(model, tok, [...], 64, 1)[0]
    LeanDecoder(lm, tok, grammar, answer_prefix=None).run(prompt, 480, suffix="")   # == constrained_generate

For a 0.8M-parameter model the arithmetic of one token is a few dozen microseconds; what a
transformers forward adds (module calls, mask and cache objects, output dataclasses, decoding the
whole text again through the tokenizer for every candidate) is most of a routed request. Here one
token is a dozen plain torch ops per layer over the model's own weight tensors (q, k and v as one
matmul, gate and up as one), rotary tables computed once, and a KV cache preallocated to the
model's context and written in place. The ops, their order and their shapes are those of
transformers' Llama with sdpa attention, so the logits are bitwise the same as its forward with a
DynamicCache (checked in ``tests/test_lean.py``), and greedy decoding picks the same tokens.

``LeanDecoder`` is ``constrain.ConstrainedDecoder`` for character-level tokenizers: the text grows one
character per token, so there is nothing to decode; the grammar's state is kept and advanced by the
one character of the greedy token (``CallGrammar.advance``), and only when that token breaks the call
is the state's set of allowed characters read (``CallGrammar.allowed``, a table per state) and the
best allowed token taken: the same choice as trying the candidates in descending logit order.
Compiling the step (``torch.compile``, dynamic length) measured slower here on CPU (2.2 against
1.4 ms per token on a busy 2-core machine), took 72 s to compile and changed the logits' last bits,
so the step stays eager.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from workbench.agent.constrain import ConstrainedDecoder
from workbench.agent.grammar import CallGrammar
from workbench.tasks.base import ANSWER_PREFIX


class LeanLlama:
    """A LlamaForCausalLM's greedy step: ``lm(ids, first=True)`` runs a prompt, ``lm(ids)`` continues it;
    each returns the last position's logits [vocab] and extends the KV cache by ``len(ids)``."""

    def __init__(self, model):
        reason = self.unsupported(model)
        if reason:
            raise ValueError(f"the lean path cannot run this model: {reason}")
        c, m = model.config, model.model
        self.model, self.params = model, list(model.parameters())
        self.versions = self._versions()
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.eps, self.scale, self.context = c.rms_norm_eps, self.head_dim ** -0.5, c.max_position_embeddings
        self.q_dim = c.num_attention_heads * self.head_dim
        self.embed, self.norm, self.head = m.embed_tokens.weight, m.norm.weight, model.lm_head.weight
        self.vocab = self.head.shape[0]
        eos = model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])  # ids that end a reply
        with torch.no_grad():  # fused weights: one matmul for q, k, v and one for gate, up (bitwise the same rows)
            self.layers = [(layer.input_layernorm.weight,
                            torch.cat([layer.self_attn.q_proj.weight, layer.self_attn.k_proj.weight,
                                       layer.self_attn.v_proj.weight]),
                            layer.self_attn.o_proj.weight, layer.post_attention_layernorm.weight,
                            torch.cat([layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight]),
                            layer.mlp.down_proj.weight) for layer in m.layers[:c.num_hidden_layers]]
            positions = torch.arange(self.context, device=self.embed.device)[None]
            cos, sin = m.rotary_emb(self.embed[:1][None], positions)  # [1, context, head_dim]: elementwise, exact
        # rotate_half(x) * sin == x[..., swap] * sin with the first half's sign flipped: one gather, not four ops
        half = self.head_dim // 2
        self.swap = torch.cat([torch.arange(half, self.head_dim), torch.arange(half)]).to(self.embed.device)
        self.cos, self.sin = cos[0], torch.cat([-sin[0, :, :half], sin[0, :, half:]], dim=-1)
        shape = (len(self.layers), 1, c.num_key_value_heads, self.context, self.head_dim)  # L, B, H, T, D
        self.k = torch.zeros(shape, device=self.embed.device)
        self.v = torch.zeros_like(self.k)
        self.n = 0  # positions in the cache

    @staticmethod
    def unsupported(model) -> str | None:
        """Why ``model`` cannot take the lean path (None: it can): a plain fp32 Llama with sdpa attention."""
        c = getattr(model, "config", None)
        if getattr(c, "model_type", None) != "llama" or not hasattr(model, "lm_head"):
            return "not a LlamaForCausalLM"
        layers = model.model.layers
        linears = [model.lm_head] + [lin for layer in layers for lin in (
            layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj,
            layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj)]
        checks = [(all(type(lin) is torch.nn.Linear and lin.bias is None for lin in linears),
                   "its linear layers are not plain nn.Linear without bias (quantized?)"),
                  (all(p.dtype == torch.float32 for p in model.parameters()), "its weights are not fp32"),
                  (c.num_key_value_heads == c.num_attention_heads, "it uses grouped-query attention"),
                  (c.hidden_act == "silu", f"its activation is {c.hidden_act}"),
                  (getattr(model.model.rotary_emb, "rope_type", "default") == "default", "its RoPE is scaled"),
                  (c._attn_implementation == "sdpa", f"its attention is {c._attn_implementation}, not sdpa"),
                  (getattr(c, "pretraining_tp", 1) == 1, "pretraining_tp > 1")]
        return next((why for ok, why in checks if not ok), None)

    def _versions(self) -> int:
        return sum(p._version for p in self.params)

    def stale(self) -> bool:
        """Whether the model's weights changed in place since this step copied them (fused q/k/v, gate/up)."""
        return self._versions() != self.versions

    def _rms(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def _rotate(self, x, cos, sin):
        return x * cos + x[..., self.swap] * sin  # RoPE: transformers' apply_rotary_pos_emb, bitwise

    @torch.inference_mode()
    def __call__(self, ids: list[int], first: bool = False) -> torch.Tensor:
        n0 = 0 if first else self.n
        T, n1, D = len(ids), n0 + len(ids), self.head_dim
        if n1 > self.context:
            raise ValueError(f"{n1} positions; this model reads at most {self.context}")
        x = F.embedding(torch.tensor([ids], device=self.embed.device), self.embed)  # [1, T, C]
        cos, sin = self.cos[n0:n1], self.sin[n0:n1]  # [T, D], broadcast over heads
        # a chunk after cached positions needs transformers' explicit mask; a prompt is causal, one token sees all
        mask = (torch.arange(n1, device=x.device)[None] <= torch.arange(n0, n1, device=x.device)[:, None]
                if T > 1 and n0 else None)
        for i, (ln1, w_qkv, w_o, ln2, w_gate_up, w_down) in enumerate(self.layers):
            qkv = F.linear(self._rms(x, ln1), w_qkv).view(1, T, -1, D).transpose(1, 2)  # [1, 3H, T, D]
            h = self.q_dim // D
            qk = self._rotate(qkv[:, :2 * h], cos, sin)  # q and k rotated together
            self.k[i, :, :, n0:n1] = qk[:, h:]
            self.v[i, :, :, n0:n1] = qkv[:, 2 * h:]
            a = F.scaled_dot_product_attention(qk[:, :h], self.k[i, :, :, :n1], self.v[i, :, :, :n1],
                                               attn_mask=mask, scale=self.scale, is_causal=T > 1 and not n0)
            x = x + F.linear(a.transpose(1, 2).reshape(1, T, -1), w_o)
            gate, up = F.linear(self._rms(x, ln2), w_gate_up).chunk(2, dim=-1)
            # silu's vectorised and strided kernels round differently: give it the contiguous gate transformers has
            x = x + F.linear(F.silu(gate.contiguous()) * up, w_down)
        self.n = n1
        # every position through the head, as transformers does, so the last row's matmul is the same
        return F.linear(self._rms(x, self.norm), self.head)[0, -1]


def char_pieces(tokenizer) -> list[str | None] | None:
    """Each id's text (None for special ids) when every other id is one character and text is their
    concatenation; None for a tokenizer that merges (BPE), where the lean decoder does not apply."""
    n = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    pieces = [None if i in special else tokenizer.decode([i], skip_special_tokens=True) for i in range(n)]
    if any(p is not None and len(p) != 1 for p in pieces):
        return None
    ids = [i for i in range(n) if pieces[i] is not None]
    if tokenizer.decode(ids + ids[::-1], skip_special_tokens=True) != "".join(pieces[i] for i in ids + ids[::-1]):
        return None
    return pieces


def lean_greedy(lm: LeanLlama, tokenizer, prompt: str, max_new_tokens: int, add_special_tokens: bool = True,
                ids: bool = False) -> str | list[int]:
    """Greedy completion of one prompt, as ``evaluate.generate`` with batch 1: stops after an eos, at most
    ``max_new_tokens`` (cut to the model's context). ``ids=True``: the token ids, the eos included."""
    from workbench.core.evaluate import context_left

    prompt_ids = tokenizer(prompt, add_special_tokens=add_special_tokens).input_ids
    budget = min(max_new_tokens, context_left(lm.model, len(prompt_ids), "a prompt"))
    eos = lm.eos
    out, logits = [], lm(prompt_ids, first=True)
    while len(out) < budget:
        tok = int(logits.argmax())
        out.append(tok)
        if tok in eos or len(out) == budget:
            break
        logits = lm([tok])
    return out if ids else tokenizer.decode(out, skip_special_tokens=True)


class LeanDecoder(ConstrainedDecoder):
    """``ConstrainedDecoder`` over a ``LeanLlama`` and a character-level tokenizer (``char_pieces``): the same
    tokens, decided with one grammar step per token.

    ``jump=True`` (jump-forward decoding): where the grammar leaves one character possible (``{"arguments":{``,
    the rest of a key or a tool name once one candidate fits, ``:``), it is taken without a model step and fed
    with the next token in one pass: a call's fixed text costs no steps of its own. ``lm`` is any step with
    ``LeanLlama``'s interface (``__call__(ids, first)``, ``model``, ``vocab``, ``eos``), such as
    ``runtimes.OnnxStep`` over an ONNX graph with a KV cache."""

    def __init__(self, lm: LeanLlama, tokenizer, grammar: CallGrammar, answer_prefix: str | None = ANSWER_PREFIX,
                 pieces: list[str | None] | None = None, jump: bool = True):
        self.lm, self.pieces, self.jump = lm, pieces or char_pieces(tokenizer), jump
        if self.pieces is None:
            raise ValueError("the lean decoder needs a character-level tokenizer (one character per id)")
        vocab = lm.vocab  # ids past the tokenizer (a padded output layer) write nothing
        self.pieces = (self.pieces + [None] * vocab)[:vocab]
        self.alphabet = "".join(sorted({p for p in self.pieces if p is not None}))
        self.ids_of: dict[str, list[int]] = {}  # character -> the ids that write it
        for i, c in enumerate(self.pieces):
            if c is not None:
                self.ids_of.setdefault(c, []).append(i)
        self._masks: dict[str, torch.Tensor] = {}  # allowed characters -> their ids, sorted
        super().__init__(lm.model, tokenizer, grammar, answer_prefix)

    def reset(self):
        super().reset()
        self.state = self.grammar.state() if self.answer_prefix is None else None  # the call's parse state

    def decode(self, ids: list[int]) -> str:
        return "".join(p for p in map(self.pieces.__getitem__, ids) if p is not None)

    def forward(self, ids: list[int], first: bool):
        return self.lm(ids, first=first)

    def force_prefix(self):
        super().force_prefix()
        self.state = self.grammar.state()

    def free_step(self, max_new_tokens: int) -> bool:
        tok = int(self.logits.argmax())
        piece = self.pieces[tok]
        if self.steps >= max_new_tokens or piece is None:
            self.force_prefix()
            return True
        if (self.text + piece).endswith(self.answer_prefix):
            return False  # the constrained step takes it: the call starts after it
        self.generated.append(tok)
        self.text, self.steps = self.text + piece, self.steps + 1
        self.feed([tok])
        return True

    def best_viable(self):
        """(token, its character, the state after it) for the best token the grammar allows, None if none."""
        t0 = time.perf_counter()
        tok = int(self.logits.argmax())
        piece = self.pieces[tok]
        self.tried += 1
        if self.start is None:  # the greedy token completes the answer prefix (free_step said so)
            best = tok, piece, self.grammar.state()
        else:
            nxt = None if piece is None else self.grammar.advance(self.state, piece)
            best = None if nxt is None else (tok, piece, nxt)
            if best is None:  # rare for a trained model: the state's table of allowed characters decides
                chars = self.grammar.allowed(self.state, self.alphabet)
                self.tried += len(self.alphabet)
                if chars:
                    ids = self._masks.get(chars)
                    if ids is None:
                        ids = self._masks[chars] = torch.tensor(sorted(i for c in chars for i in self.ids_of[c]))
                    tok = int(ids[self.logits[ids].argmax()])
                    piece = self.pieces[tok]
                    best = tok, piece, self.grammar.advance(self.state, piece)
        self.grammar_s += time.perf_counter() - t0
        return best

    def constrained_step(self) -> bool:
        best = self.best_viable()
        if best is None:
            self.fallback = True
            return True
        tok, piece, self.state = best
        self.generated.append(tok)
        self.steps, self.json_steps = self.steps + 1, self.json_steps + 1
        self.text += piece
        if self.start is None:
            self.start = len(self.text)
        ids = [tok] + self._jump()
        if self.grammar.done(self.state):
            return True
        self.feed(ids)
        return False

    def feed(self, ids: list[int], first: bool = False):
        if first and self.state is not None:  # an answer-only call: its fixed opening goes in with the prompt
            ids = ids + self._jump()
        super().feed(ids, first)

    def _jump(self) -> list[int]:
        """Take the characters the grammar forces next (``CallGrammar.forced``), each the one token that writes
        it, without asking the model: they go in with the next ``feed``. Nothing with ``jump=False``."""
        if not self.jump:
            return []
        ids = []
        for c in self.grammar.forced(self.state, self.alphabet)[:self.max_json_tokens - self.json_steps]:
            only = self.ids_of[c]
            if len(only) != 1:  # two tokens write it: the model's logits choose between them
                break
            self.state = self.grammar.advance(self.state, c)
            ids.append(only[0])
            self.text += c
        self.generated += ids
        n = len(ids)
        self.steps, self.json_steps, self.jumped = self.steps + n, self.json_steps + n, self.jumped + n
        return ids
