"""How faithful is an attribution? Remove what it calls important and see whether the model notices.

    res = faithfulness.measure(model, tok, questions, methods=("integrated_gradients", "attention"))
    studies.interpretability.table(res)      # per method, and random order as the floor
    faithfulness.rationale_dependence(model, tok, questions)   # does the answer follow the rationale?

For the token that starts the final answer, context tokens are replaced by padding in the order a
method ranks them (most positive first):

- deletion curve: p(answer token) as the top-ranked 0, 10, ..., 100% are removed; a faithful
  ranking makes it fall fast, so a small area under the curve is good (Petsiuk et al., 2018);
- insertion curve: start from all padding and restore tokens in that order; a large area is good;
- comprehensiveness and sufficiency (DeYoung et al., 2020, ERASER): the drop in p when the top
  k% are removed (higher is better), and when only the top k% are kept (lower is better),
  averaged over k = 1, 5, 10, 20, 50%.

Every number has a floor: the same measure for random orders. A method is only as good as its
margin over random. ``rationale_dependence`` asks the complementary question of chain-of-thought
faithfulness (Lanham et al., 2023): corrupt one rationale step and watch whether the answer follows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from workbench import explain

FRACTIONS = np.linspace(0.0, 1.0, 11)  # shares of the context removed / restored along a curve
BINS = (0.01, 0.05, 0.1, 0.2, 0.5)  # top-k shares for comprehensiveness and sufficiency (ERASER's)


@torch.inference_mode()
def _probs(model, variants: list[list[int]], target: int, batch: int = 32) -> np.ndarray:
    """p(target) after each id list (all the same length): [len(variants)]."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(variants), batch):
        ids = torch.tensor(variants[i:i + batch], device=device)
        out.append(explain.next_token_logprobs(model, ids)[:, target].exp().cpu())
    return torch.cat(out).double().numpy()


def _keep(ctx: list[int], order: np.ndarray, n: int, base: int, removed: bool) -> list[int]:
    """``ctx`` with the first ``n`` positions of ``order`` removed (``removed``) or the only ones kept."""
    chosen = set(order[:n].tolist())
    return [base if ((i in chosen) == removed) else t for i, t in enumerate(ctx)]


def curves(model, ctx: list[int], target: int, order: np.ndarray, base: int) -> dict[str, np.ndarray]:
    """Deletion and insertion curves over ``FRACTIONS`` and the ERASER measures, for one ranking."""
    n = len(ctx)
    counts = [round(f * n) for f in FRACTIONS]
    bins = [max(1, math.ceil(k * n)) for k in BINS]
    variants = ([_keep(ctx, order, c, base, removed=True) for c in counts]
                + [_keep(ctx, order, c, base, removed=False) for c in counts]
                + [_keep(ctx, order, b, base, removed=True) for b in bins]
                + [_keep(ctx, order, b, base, removed=False) for b in bins] + [ctx])
    p = _probs(model, variants, target)
    k, m = len(counts), len(bins)
    full = p[-1]
    return {"deletion": p[:k], "insertion": p[k:2 * k],
            "comprehensiveness": float(np.mean(full - p[2 * k:2 * k + m])),
            "sufficiency": float(np.mean(full - p[2 * k + m:2 * k + 2 * m]))}


def auc(y: np.ndarray) -> float:
    return float(np.trapezoid(y, FRACTIONS))


def ranking(scores: np.ndarray) -> np.ndarray:
    """Positions from most to least important (most positive score first; ties keep text order)."""
    return np.argsort(-scores, kind="stable")


@dataclass
class Faithfulness:
    rows: list[dict]  # one per method, plus "random"
    curves: dict[str, dict[str, np.ndarray]]  # method -> mean deletion / insertion curve
    examples: int
    shares: dict[str, float] = field(default_factory=dict)  # method -> attribution share on the rationale


def measure(model, tokenizer, questions: list[str], methods=tuple(explain.METHODS), n_random: int = 5,
            n_steps: int = 50, n_samples: int = 5, chat: bool = False, max_new_tokens: int = 400,
            seed: int = 0, step=None) -> Faithfulness:
    """Deletion/insertion areas, comprehensiveness and sufficiency per method at each answer's first token,
    or at the token ``step(generation)`` picks (a router's JSON always starts with "{": its choice comes later)."""
    for m in methods:
        explain.check_method(m)
    if not questions:
        raise ValueError("no questions to measure faithfulness on")
    rng = np.random.default_rng(seed)
    base = explain.baseline_id(tokenizer)
    per: dict[str, list[dict]] = {m: [] for m in (*methods, "random")}
    shares: dict[str, list[float]] = {m: [] for m in methods}
    for q in questions:
        gen = explain.generation(model, tokenizer, q, max_new_tokens, chat)
        if gen.steps == 0:
            continue
        at = gen.answer_step if step is None else step(gen)
        ctx, target = gen.context(at), gen.target(at)
        for m in methods:
            t0 = time.perf_counter()
            att = explain.attribute(model, tokenizer, gen, at, m, n_steps, n_samples)
            seconds = time.perf_counter() - t0
            per[m].append({**curves(model, ctx, target, ranking(att.scores), base), "seconds": seconds,
                           "delta": att.delta})
            shares[m].append(explain.rationale_share(gen, att))
        for _ in range(n_random):
            per["random"].append({**curves(model, ctx, target, rng.permutation(len(ctx)), base),
                                  "seconds": 0.0, "delta": None})
    rows, mean_curves = [], {}
    for m, items in per.items():
        if not items:
            continue
        dele = np.mean([i["deletion"] for i in items], axis=0)
        ins = np.mean([i["insertion"] for i in items], axis=0)
        mean_curves[m] = {"deletion": dele, "insertion": ins}
        deltas = [i["delta"] for i in items if i["delta"] is not None]
        rows.append({"method": m, "deletion_auc": auc(dele), "insertion_auc": auc(ins),
                     "comprehensiveness": float(np.mean([i["comprehensiveness"] for i in items])),
                     "sufficiency": float(np.mean([i["sufficiency"] for i in items])),
                     "seconds": float(np.mean([i["seconds"] for i in items])),
                     "ig_delta": float(np.mean(deltas)) if deltas else None})
    floor = next(r for r in rows if r["method"] == "random")
    for r in rows:  # margins over random order: positive means better than random on that measure
        r["deletion_gain"] = floor["deletion_auc"] - r["deletion_auc"]
        r["insertion_gain"] = r["insertion_auc"] - floor["insertion_auc"]
        r["comprehensiveness_gain"] = r["comprehensiveness"] - floor["comprehensiveness"]
    return Faithfulness(rows=rows, curves=mean_curves, examples=len(per["random"]) // max(n_random, 1),
                        shares={m: float(np.mean(v)) for m, v in shares.items() if v})


# does the answer follow the rationale? ----------------------------------------------------------
FLIP = {"True": "False", "False": "True"}


def _flip_words(text: str) -> str:
    return " ".join(FLIP.get(w, w) for w in text.split(" "))


def perturb_step(rationale: str, which: str) -> tuple[str, str | None]:
    """A boolean_expressions rationale cut after one corrupted step, and the answer it now implies.

    ``which="last"``: the last step's value and result flipped ("( True ) = True ; True" ->
    "( True ) = False ; False"), so the answer it implies flips. ``which="first"``: only the first
    step's value flipped; the rest is for the model to write (implied answer: None, unknown).
    """
    from workbench.tasks.base import ANSWER_PREFIX

    lines = rationale.split("\n")
    steps = [ln for ln in lines if " = " in ln and not ln.startswith(ANSWER_PREFIX)]
    if not steps:
        raise ValueError("this rationale has no 'X = V ; rest' step to corrupt (perturbations are defined "
                         "for boolean_expressions rationales)")
    if which == "last":
        left, right = steps[-1].split(" = ", 1)
        flipped = f"{left} = {_flip_words(right)}"
        implied = flipped.rsplit(" ; ", 1)[-1].strip()
        return "\n".join([*steps[:-1], flipped, ANSWER_PREFIX]), implied
    if which == "first":
        left, right = steps[0].split(" = ", 1)
        value, _, rest = right.partition(" ; ")
        return f"{left} = {FLIP.get(value, value)} ; {rest}\n", None
    raise ValueError(f"which must be 'last' or 'first', got {which!r}")


def rationale_dependence(model, tokenizer, questions: list[str], max_new_tokens: int = 400) -> dict:
    """How often the answer follows a corrupted rationale step (boolean_expressions rationales).

    follows_last: the last step flipped, the model asked to answer: share of answers that follow
    the flipped step (a model that reads its rationale follows it). changed_first: the first step
    flipped, the model writes the rest: share of final answers that change. Questions whose rationale
    has no step to corrupt are counted in ``skipped``.
    """
    from workbench.core.evaluate import generate, student_prompt
    from workbench.tasks import extract_answer

    follows, changed, n, skipped = 0, 0, 0, 0
    for q in questions:
        gen = explain.generation(model, tokenizer, q, max_new_tokens)
        original = extract_answer(gen.text)
        try:
            last, implied = perturb_step(gen.text, "last")
            first, _ = perturb_step(gen.text, "first")
        except ValueError:  # the model wrote no step to corrupt: nothing to measure on this question
            skipped += 1
            continue
        outs = generate(model, tokenizer, [student_prompt(q) + last, student_prompt(q) + first], max_new_tokens,
                        batch_size=1)
        follows += extract_answer(last + outs[0]) == implied
        changed += extract_answer(first + outs[1]) != original
        n += 1
    return {"n": n, "skipped": skipped, "follows_last": follows / n if n else 0.0,
            "changed_first": changed / n if n else 0.0}
