"""Attributions for generated reasoning: which earlier tokens each generated token leans on.

    gen = explain.generation(model, tok, "not ( True and False ) is")       # greedy, ids kept
    att = explain.attribute(model, tok, gen, step=gen.answer_step, method="integrated_gradients")
    att.scores        # one score per context token (prompt + rationale written so far)

A reasoner writes its rationale one token at a time, so every generated token has its own
explanation over everything before it: the prompt and the rationale it has written so far.
For step ``t`` the explained quantity is ``log p(token_t | context_t)``, the model's own
log-probability of what it wrote. Four methods, all from Captum except the contrast:

- ``integrated_gradients`` (Sundararajan et al., 2017): ``LayerIntegratedGradients`` on the token
  embeddings, from an all-padding baseline; per token the sum over embedding dimensions. By
  completeness the scores add up to f(x) - f(baseline); the gap is the convergence ``delta``.
- ``feature_ablation``: replace one context token by padding, measure the drop (Captum's
  ``LLMAttribution`` over ``FeatureAblation``).
- ``shapley``: Shapley value sampling over context tokens (Castro et al., 2009; Captum's
  ``LLMAttribution`` over ``ShapleyValueSampling``), ``n_samples`` permutations.
- ``attention``: last-position attention averaged over layers and heads. Not an attribution
  (Jain & Wallace, 2019, "Attention is not Explanation"); it is here to be compared.

It works for a student (prompt = question + newline) and for a pretrained instruct model (the
chat template applied, ``chat=True``), on whatever device the model is on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from workbench.core.validate import BadInput, check_count, check_text, is_int

METHODS = {
    "integrated_gradients": "Integrated Gradients (embeddings)",
    "feature_ablation": "Feature ablation",
    "shapley": "Shapley value sampling",
    "attention": "Attention weights (contrast)",
}


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    return method


@dataclass
class Generation:
    """A greedy generation with its token ids: ``ids[:prompt_len]`` is the prompt."""

    prompt: str  # the user's text (before any template)
    ids: list[int]  # prompt ids + generated ids (eos dropped)
    prompt_len: int
    tokens: list[str]  # display text of every id
    text: str  # the generated text

    @property
    def steps(self) -> int:
        return len(self.ids) - self.prompt_len

    def context(self, step: int) -> list[int]:
        """Ids the model saw when it wrote generated token ``step``."""
        self.check_step(step)
        return self.ids[: self.prompt_len + step]

    def target(self, step: int) -> int:
        self.check_step(step)
        return self.ids[self.prompt_len + step]

    def check_step(self, step: int) -> int:
        if not is_int(step):
            raise BadInput(f"step {step!r} is not an integer; this generation has steps 0 to {self.steps - 1}")
        if not 0 <= step < self.steps:
            raise ValueError(f"step {step} is beyond the generation: it has {self.steps} tokens "
                             f"(steps 0 to {self.steps - 1})")
        return step

    @property
    def answer_step(self) -> int:
        """The step that writes the first character of the final answer (after "So the answer is ")."""
        from workbench.tasks.base import ANSWER_PREFIX

        at = self.text.rfind(ANSWER_PREFIX)
        offset = at + len(ANSWER_PREFIX) if at >= 0 else len(self.text) - len(self.text.lstrip())
        written = 0
        for step in range(self.steps):
            written += len(self.tokens[self.prompt_len + step])
            if written > offset:
                return step
        return max(self.steps - 1, 0)


@dataclass
class StepAttribution:
    """One method's scores for one generated token over its context (prompt + earlier generation)."""

    method: str
    step: int
    scores: np.ndarray  # [context length]
    target: str  # the token written at this step
    logprob: float  # log p(target | context)
    alternatives: list[tuple[str, float]]  # the model's top next tokens and their probabilities
    delta: float | None = None  # Integrated Gradients' convergence delta
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def prompt_ids(tokenizer, text: str, chat: bool = False) -> list[int]:
    """The ids a model sees for ``text``: a student's prompt, or the chat template for an instruct model."""
    from workbench.core.evaluate import chat_prompt, student_prompt

    check_text(text, "the prompt")
    if chat:
        rendered = chat_prompt(tokenizer, text, [])
        return tokenizer(rendered, add_special_tokens=False).input_ids
    return tokenizer(student_prompt(text)).input_ids


def _display(tokenizer, ids: list[int]) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


@torch.inference_mode()
def generation(model, tokenizer, text: str, max_new_tokens: int = 400, chat: bool = False) -> Generation:
    """Greedy generation for ``text``, keeping the ids that attributions are computed over. A prompt the model's
    context cannot hold is refused (BadInput), and the budget is cut to what the context leaves."""
    from workbench.core.evaluate import context_left

    ids = prompt_ids(tokenizer, text, chat)
    budget = min(max_new_tokens, context_left(model, len(ids), "the question's prompt"))
    device = next(model.parameters()).device
    x = torch.tensor([ids], device=device)
    out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=budget, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                         else tokenizer.eos_token_id, temperature=None, top_p=None, top_k=None)
    new = out[0, len(ids):].tolist()
    stops = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    stops |= {tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<end_of_turn>")
              if t in tokenizer.get_vocab()}
    for i, tid in enumerate(new):
        if tid in stops:
            new = new[:i]
            break
    full = ids + new
    return Generation(prompt=text, ids=full, prompt_len=len(ids), tokens=_display(tokenizer, full),
                      text=tokenizer.decode(new, skip_special_tokens=True))


def baseline_id(tokenizer) -> int:
    """The token that stands for "absent": padding, else end of sequence."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


class _FixedIds:
    """A tokenizer view whose ``encode`` returns given ids, so Captum's TextTokenInput uses exactly
    the ids the model generated (re-encoding decoded text can split tokens differently)."""

    def __init__(self, tokenizer, ids: list[int]):
        self._tokenizer, self._ids = tokenizer, ids

    def encode(self, _text, return_tensors=None, **kwargs):
        return torch.tensor([self._ids]) if return_tensors == "pt" else list(self._ids)

    def __call__(self, text, **kwargs):
        if not kwargs.pop("return_offsets_mapping", False) or getattr(self._tokenizer, "is_fast", False):
            return self._tokenizer(text, **kwargs)
        # Captum asks for character offsets, which only fast tokenizers give: rebuild them
        ids = self._tokenizer(text, **kwargs)["input_ids"]
        offsets, at = [], 0
        for i in ids:
            n = len(self._tokenizer.decode([i]))
            offsets.append((at, at + n))
            at += n
        return {"input_ids": ids, "offset_mapping": offsets}

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def next_token_logprobs(model, ids: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the next token after each row of ``ids``: [batch, vocab]."""
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits[:, -1]
    return torch.log_softmax(logits.float(), dim=-1)


def _integrated_gradients(model, ctx: torch.Tensor, target: int, base: int, n_steps: int):
    from captum.attr import LayerIntegratedGradients

    def f(ids):  # [batch, context] -> log p(target) [batch]
        return next_token_logprobs(model, ids)[:, target]

    lig = LayerIntegratedGradients(f, model.get_input_embeddings())
    attr, delta = lig.attribute(ctx, baselines=torch.full_like(ctx, base), n_steps=n_steps,
                                internal_batch_size=n_steps, return_convergence_delta=True)
    return attr.sum(-1)[0], float(delta.abs().max())


def word_groups(tokens: list[str]) -> list[int]:
    """A group id per token: a word with its leading space (characters or BPE pieces alike)."""
    groups, g = [], -1
    for i, tok in enumerate(tokens):
        if i == 0 or (tok[:1].isspace() and not tokens[i - 1].isspace()):
            g += 1
        groups.append(g)
    return groups


def _perturbation(model, ctx: torch.Tensor, target: int, base: int, method: str, n_samples: int,
                  mask: torch.Tensor | None, batch: int = 64):
    """Feature ablation or Shapley value sampling over context tokens (or the word groups of ``mask``),
    ``batch`` perturbed copies per forward."""
    from captum.attr import FeatureAblation, ShapleyValueSampling

    def f(ids):  # [batch, context] -> log p(target) [batch]
        with torch.inference_mode():
            return next_token_logprobs(model, ids)[:, target]

    algo = FeatureAblation(f) if method == "feature_ablation" else ShapleyValueSampling(f)
    kwargs = {"n_samples": n_samples} if method == "shapley" else {}
    return algo.attribute(ctx, baselines=base, feature_mask=mask, perturbations_per_eval=batch, **kwargs)[0].float()


def llm_attribution(model, tokenizer, gen: Generation, step: int, method: str = "feature_ablation",
                    n_samples: int = 5) -> np.ndarray:
    """The same scores through Captum's ``LLMAttribution`` (one forward per perturbation: slower).

    ``attribute`` gives Captum's perturbation algorithms a batched forward instead; the tests check
    that both agree."""
    from captum.attr import FeatureAblation, LLMAttribution, ShapleyValueSampling, TextTokenInput

    check_method(method)
    if method not in ("feature_ablation", "shapley"):
        raise ValueError(f"LLMAttribution takes perturbation methods (feature_ablation, shapley), not {method!r}")
    device = next(model.parameters()).device
    view = _FixedIds(tokenizer, gen.context(step))
    algo = FeatureAblation(model) if method == "feature_ablation" else ShapleyValueSampling(model)
    kwargs = {"n_samples": n_samples} if method == "shapley" else {}
    res = LLMAttribution(algo, view).attribute(
        TextTokenInput("", view, baselines=baseline_id(tokenizer)),
        target=torch.tensor([gen.target(step)], device=device), forward_in_tokens=False, **kwargs)
    return res.seq_attr.detach().float().cpu().numpy()


@torch.inference_mode()
def _attention(model, ctx: torch.Tensor) -> torch.Tensor:
    impl = model.config._attn_implementation
    model.set_attn_implementation("eager")  # sdpa kernels return no weights
    try:
        out = model(input_ids=ctx, use_cache=False, output_attentions=True)
    finally:
        model.set_attn_implementation(impl)
    # each layer: [batch, heads, query, key]; the last query wrote the next token
    return torch.stack([a[0, :, -1, :].float().mean(0) for a in out.attentions]).mean(0)


def attribute(model, tokenizer, gen: Generation, step: int, method: str = "integrated_gradients",
              n_steps: int = 50, n_samples: int = 5, words: bool = True, top_k: int = 5) -> StepAttribution:
    """Scores of every context token (prompt and earlier generated tokens) for generated token ``step``.

    ``words``: the perturbation methods remove whole words (a character model's context is hundreds
    of characters; one forward per word instead of per character), each character gets its word's score.
    """
    check_method(method)
    gen.check_step(step)
    if n_steps < 2 or n_samples < 1:
        raise ValueError(f"n_steps must be >= 2 and n_samples >= 1, got n_steps={n_steps}, n_samples={n_samples}")
    device = next(model.parameters()).device
    ctx = torch.tensor([gen.context(step)], device=device)
    target, base = gen.target(step), baseline_id(tokenizer)
    t0 = time.perf_counter()
    with torch.inference_mode():
        logp = next_token_logprobs(model, ctx)[0]
    top = torch.topk(logp, min(top_k, logp.numel()))
    alternatives = [(tokenizer.decode([int(i)]), float(p.exp())) for p, i in zip(top.values, top.indices)]
    delta = None
    if method == "integrated_gradients":
        scores, delta = _integrated_gradients(model, ctx, target, base, n_steps)
    elif method == "attention":
        scores = _attention(model, ctx)
    else:
        mask = torch.tensor([word_groups(gen.tokens[: ctx.shape[1]])], device=device) if words else None
        scores = _perturbation(model, ctx, target, base, method, n_samples, mask)
    return StepAttribution(method=method, step=step, scores=scores.detach().cpu().numpy().astype(np.float64),
                           target=gen.tokens[gen.prompt_len + step], logprob=float(logp[target]),
                           alternatives=alternatives, delta=delta, seconds=time.perf_counter() - t0)


def rationale_share(gen: Generation, att: StepAttribution) -> float:
    """Share of the absolute attribution that falls on generated tokens rather than on the prompt."""
    mags = np.abs(att.scores)
    total = mags.sum()
    return float(mags[gen.prompt_len:].sum() / total) if total > 0 else 0.0


class Explainer:
    """Generations and attributions cached per (prompt, method, step): the widget's back end."""

    def __init__(self, model, tokenizer, chat: bool = False, max_new_tokens: int = 400, n_steps: int = 50,
                 n_samples: int = 5):
        self.model, self.tokenizer, self.chat = model, tokenizer, chat
        self.max_new_tokens = check_count(max_new_tokens, "max_new_tokens")
        self.n_steps, self.n_samples = check_count(n_steps, "n_steps", 2), check_count(n_samples, "n_samples")
        self.generations: dict[str, Generation] = {}
        self.cache: dict[tuple[str, str, int], StepAttribution] = {}

    def generation(self, text: str) -> Generation:
        if text not in self.generations:
            self.generations[text] = generation(self.model, self.tokenizer, text, self.max_new_tokens, self.chat)
        return self.generations[text]

    def attribution(self, text: str, method: str, step: int) -> StepAttribution:
        key = (text, check_method(method), step)
        if key not in self.cache:
            self.cache[key] = attribute(self.model, self.tokenizer, self.generation(text), step, method,
                                        self.n_steps, self.n_samples)
        return self.cache[key]


# rendering ------------------------------------------------------------------------------------
def _escape(s: str) -> str:
    import html

    return html.escape(s).replace("\n", "⏎<br>").replace(" ", "&nbsp;") or "&nbsp;"


def heatmap_html(gen: Generation, att: StepAttribution, key: str = "") -> str:
    """The context as text, each token shaded by its score (red: raises the token, blue: lowers it);
    the token being written is boxed, later tokens are grey."""
    scale = float(np.abs(att.scores).max()) or 1.0
    cells = []
    for pos, tok in enumerate(gen.tokens):
        if pos < len(att.scores):
            v = att.scores[pos] / scale
            color = f"rgba(220,40,40,{v:.2f})" if v >= 0 else f"rgba(40,90,220,{-v:.2f})"
            title = f"{att.scores[pos]:+.4f}"
            style = f"background:{color}"
        elif pos == len(att.scores):
            style, title = "outline:2px solid #222;font-weight:bold", "written at this step"
        else:
            style, title = "color:#bbb", "not written yet"
        if pos == gen.prompt_len:
            cells.append("<br><span style='color:#888'>── generated ──</span><br>")
        cells.append(f"<span title='{title}' style='{style};font-family:monospace'>{_escape(tok)}</span>")
    alts = ", ".join(f"{_escape(t)!s} {p:.0%}" for t, p in att.alternatives)
    delta = f" · IG convergence delta {att.delta:.2e}" if att.delta is not None else ""
    return (f"<div data-key='{key}' class='wb-heatmap-body'>"
            f"<div><b>step {att.step}</b>: writes <code>{_escape(att.target)}</code> "
            f"(p = {np.exp(att.logprob):.2f}) · {METHODS[att.method]}{delta} · {att.seconds:.2f} s</div>"
            f"<div style='line-height:1.9;margin:6px 0'>{''.join(cells)}</div>"
            f"<div><small>top alternatives: {alts}</small></div></div>")


def top_tokens(gen: Generation, att: StepAttribution, k: int = 8) -> str:
    """The ``k`` highest-scoring context tokens as a markdown table (where they sit, and their score)."""
    order = np.argsort(-att.scores, kind="stable")[:k]
    lines = [f"Step {att.step} writes {att.target!r} (p = {np.exp(att.logprob):.3f}); {METHODS[att.method]}.", "",
             "| rank | position | in | token | score |", "|---|---|---|---|---|"]
    for rank, pos in enumerate(order, 1):
        where = "prompt" if pos < gen.prompt_len else "rationale"
        lines.append(f"| {rank} | {pos} | {where} | {gen.tokens[pos]!r} | {att.scores[pos]:+.4f} |")
    return "\n".join(lines)


def convergence_table(model, tokenizer, gen: Generation, step: int, n_steps=(10, 50, 200)) -> str:
    """Integrated Gradients' completeness gap (convergence delta) and time for several step counts."""
    lines = ["| IG steps | sum of scores | convergence delta | seconds |", "|---|---|---|---|"]
    for n in n_steps:
        att = attribute(model, tokenizer, gen, step, "integrated_gradients", n_steps=n)
        lines.append(f"| {n} | {att.scores.sum():+.4f} | {att.delta:.4f} | {att.seconds:.2f} |")
    return "\n".join(lines)
