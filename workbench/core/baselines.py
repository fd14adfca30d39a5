"""The "general small model" baseline: real pretrained models scored few-shot on every task.

Every later notebook must beat these numbers. Each model answers BBH-level test questions
after ``shots`` solved examples from the train split (answer only, greedy), as plain text and,
for instruct models, through their chat template too; ``score(..., cot=True)`` gives them the best
prompt instead, chain of thought (each shot's rationale before its answer).
"""

from __future__ import annotations

from workbench.core.evaluate import EvalConfig, EvalResult, evaluate
from workbench.core.models import PRETRAINED, load_pretrained
from workbench.core.report import record
from workbench.tasks import NAMES, get
from workbench.tasks import splits as task_splits


def score(name: str, task_names=NAMES, n: int = 30, shots: int = 3, chat: bool = False,
          batch_size: int = 8, model_and_tokenizer=None, save: bool = True, cot: bool = False) -> list[EvalResult]:
    """Score one pretrained model on ``n`` BBH-level test questions of each task. ``cot``: chain of thought, the
    best prompt BBH gives a model (Suzgun et al., 2022): each shot's step-by-step rationale, "Let's think step by
    step." before the answer, and the answer read after the last "So the answer is"."""
    model, tok = model_and_tokenizer or load_pretrained(name)
    cfg = EvalConfig(shots=shots, chat=chat, batch_size=batch_size, rationale=cot)
    label = name + {(False, False): "", (True, False): " (chat)", (False, True): " (CoT)",
                    (True, True): " (chat, CoT)"}[chat, cot]
    results = []
    for task_name in task_names:
        examples = task_splits.load(task_name, "test", level=get(task_name).bbh_level, n=n)
        res = evaluate(model, tok, task_name, examples, cfg, model_name=label)
        if save:
            record(f"baselines/{label}/{task_name}/accuracy", res.accuracy)
            record(f"baselines/{label}/{task_name}/latency_ms", round(res.latency_ms, 1))
        results.append(res)
    if save:
        record(f"baselines/{label}/all/params", results[0].params)
    return results


def score_all(profile, task_names=NAMES, save: bool = True) -> list[EvalResult]:
    """Every pretrained model the profile names, plain and (instruct models) through chat."""
    results = []
    for name in profile.pretrained:
        pair = load_pretrained(name)
        for chat in (False, True) if profile.pretrained_chat and PRETRAINED[name].chat else (False,):
            results += score(name, task_names, profile.eval_n, profile.shots, chat, profile.eval_batch, pair, save)
    return results


def versus(task_name: str, model, tokenizer, label: str, profile, rationale: bool = True,
           save_as: str = "tour") -> list[EvalResult]:
    """A specialist and every pretrained model of the profile on the same BBH-level test questions."""
    examples = task_splits.load(task_name, "test", level=get(task_name).bbh_level, n=profile.eval_n)
    spec = evaluate(model, tokenizer, task_name, examples, EvalConfig(rationale=rationale, batch_size=64),
                    model_name=label)
    results = [spec, *score_all(profile, [task_name], save=False)]
    for r in results:
        record(f"{save_as}/{r.model}/{task_name}/accuracy", r.accuracy)
        record(f"{save_as}/{r.model}/{task_name}/latency_ms", round(r.latency_ms, 1))
        record(f"{save_as}/{r.model}/{task_name}/params", r.params)
    return results
