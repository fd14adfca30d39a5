"""Evaluation: batched greedy generation with the KV cache, exact-match scoring, speed and size, and
``account(...)``, the one row (parameters, bytes, latency, accuracy) every side-by-side study uses.

The same code scores a student trained here and a real pretrained model, so their numbers sit
side by side honestly: one prompt format per kind of model (below), greedy decoding, answers
cut at the end of the answer, and the task's own scorer. Few-shot prompting follows BIG-Bench
Hard's answer-only setting (Suzgun et al., 2022).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from workbench import tasks as task_suite
from workbench.core import measure
from workbench.core.validate import BadInput, read_examples
from workbench.tasks import ANSWER_PREFIX, Example, extract_answer
from workbench.tasks import splits as task_splits


# prompt formats -------------------------------------------------------------------------------
def student_prompt(text: str) -> str:
    """What a student trained here sees: the question and a newline, nothing else."""
    return text + "\n"


def student_completion(ex: Example, rationale: bool) -> str:
    """What a student learns to write after ``student_prompt``: rationale or answer, then eos."""
    return ex.rationale if rationale else ex.target


COT = "Let's think step by step."  # Kojima et al. (2022), as BBH's chain-of-thought prompts open each answer
COT_SYSTEM = f"Think step by step, then end with one line: {ANSWER_PREFIX}<answer>."


def fewshot_prompt(text: str, shots: list[Example], cot: bool = False) -> str:
    """Few-shot prompt for a base model: ``Q: ...\\nA: ...`` blocks, the answer alone or (``cot``) chain of thought:
    each shot's rationale after "Let's think step by step.", ending "So the answer is X." (BBH's CoT prompts)."""
    if cot:
        blocks = [f"Q: {s.input}\nA: {COT}\n{s.rationale}\n\n" for s in shots]
        return "".join(blocks) + f"Q: {text}\nA: {COT}\n"
    blocks = [f"Q: {s.input}\nA: {s.target}\n\n" for s in shots]
    return "".join(blocks) + f"Q: {text}\nA:"


def chat_prompt(tokenizer, text: str, shots: list[Example], cot: bool = False) -> str:
    """The same few-shot exchange as chat turns, through the model's own chat template (``cot``: each shot's
    answer is its rationale, and the system message asks for steps, then the answer line)."""
    system = COT_SYSTEM if cot else "Answer with the final answer only, on one line."
    messages = [{"role": "system", "content": system}]
    for s in shots:
        messages += [{"role": "user", "content": s.input}, {"role": "assistant", "content": s.rationale if cot
                                                                 else s.target}]
    messages.append({"role": "user", "content": text})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@dataclass
class EvalConfig:
    shots: int = 0  # few-shot examples in the prompt (0 for students; BBH baselines use 3)
    chat: bool = False  # wrap the prompt in the tokenizer's chat template (instruct models)
    rationale: bool = False  # a step-by-step rationale before the answer (with shots: chain of thought)
    format: str = "full"  # the rationale's format (Task.formats): sizes the generation budget
    batch_size: int = 8  # prompts generated at once (sorted by length, so little padding)
    max_new_tokens: int | None = None  # default: sized from the examples' answers (see answer_budget)

    def mode(self) -> str:
        if self.shots == 0 and not self.chat:
            return "student"
        return "chat" if self.chat else "few-shot"


@dataclass
class EvalResult:
    task: str
    n: int
    accuracy: float
    by_level: dict[str, float]
    params: int
    latency_ms: float  # wall time per example, batched, prompt processing included
    examples_per_s: float
    model: str = ""
    mode: str = ""
    bytes: int | None = None  # weight bytes on disk, when the model came from a folder
    predictions: list[dict] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        """The one JSON line the CLI prints."""
        keys = ("task", "n", "accuracy", "by_level", "params", "latency_ms", "examples_per_s")
        return {k: getattr(self, k) for k in keys}

    def to_dict(self) -> dict:
        return asdict(self)


class StopOnText(StoppingCriteria):
    """Stop each sequence once its generated text contains a stop string (e.g. the answer's newline)."""

    def __init__(self, tokenizer, prompt_len: int, stops: tuple[str, ...]):
        self.tokenizer, self.prompt_len, self.stops = tokenizer, prompt_len, stops

    def __call__(self, input_ids, scores, **kwargs):
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len:], skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def answer_budget(tokenizer, examples: list[Example], cfg: EvalConfig) -> int:
    """New tokens to allow: the longest reference answer (or rationale) in tokens, plus a margin."""
    if cfg.max_new_tokens:
        return cfg.max_new_tokens
    refs = [(ex.rationale or "") if cfg.rationale else ex.target for ex in examples]
    if cfg.rationale and not all(refs):  # user data without rationales: grow with the input
        refs = [ex.input * 8 for ex in examples]
    longest = max(len(tokenizer(r, add_special_tokens=False).input_ids) for r in refs)
    return min(4096, int(longest * 1.25) + 8)


def shots_for(task_name: str, k: int, level: int | None) -> list[Example]:
    """The first ``k`` training examples at ``level`` (BBH level when None): fixed, never test data."""
    if k == 0:
        return []
    task = task_suite.get(task_name)
    lvl = task.bbh_level if level is None or level not in task.levels else level
    return task_splits.load(task_name, "train", level=lvl, n=k)


def build_prompts(tokenizer, examples: list[Example], cfg: EvalConfig) -> list[str]:
    prompts = []
    for ex in examples:
        if cfg.mode() == "student":
            prompts.append(student_prompt(ex.input))
            continue
        shots = shots_for(ex.task, cfg.shots, ex.level)
        if cfg.rationale:  # chain of thought: the shots' rationales in the format scored
            task = task_suite.get(ex.task)
            shots = [task.reformat(s, cfg.format) for s in shots]
        prompts.append(chat_prompt(tokenizer, ex.input, shots, cfg.rationale) if cfg.chat
                       else fewshot_prompt(ex.input, shots, cfg.rationale))
    return prompts


@torch.inference_mode()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 8,
             stops: tuple[str, ...] = (), add_special_tokens: bool = True, ids: bool = False) -> list:
    """Greedy completions for ``prompts`` (KV cache on), in their original order.

    ``add_special_tokens`` lets the tokenizer add what its model was trained with (Gemma's <bos>);
    turn it off for text that already holds them (a rendered chat template). ``ids=True`` returns
    each completion's token ids instead of its text, up to and including the eos that ended it.
    Prompt and completion together never pass the model's context: a prompt that fills it is refused
    (BadInput), and ``max_new_tokens`` is cut to what is left of it.
    """
    device = next(model.parameters()).device
    tokenizer.padding_side = "left"  # decoder-only: new tokens follow every prompt directly
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # length buckets: little padding
    out: list = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                        add_special_tokens=add_special_tokens).to(device)
        plen = enc.input_ids.shape[1]
        budget = min(max_new_tokens, context_left(model, plen, "a prompt"))
        criteria = StoppingCriteriaList([StopOnText(tokenizer, plen, stops)]) if stops else None
        gen = model.generate(**enc, max_new_tokens=budget, do_sample=False, use_cache=True,
                             pad_token_id=tokenizer.pad_token_id, stopping_criteria=criteria,
                             temperature=None, top_p=None, top_k=None)
        if ids:
            eos = tokenizer.eos_token_id
            for i, row in zip(idx, gen[:, plen:].tolist()):
                out[i] = row[:row.index(eos) + 1] if eos in row else row
            continue
        texts = tokenizer.batch_decode(gen[:, plen:], skip_special_tokens=True)
        for i, t in zip(idx, texts):
            out[i] = t
    return out


def context_of(model) -> int | None:
    """The most tokens ``model`` reads (prompt and completion together), when its config says."""
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def context_left(model, n_tokens: int, what: str) -> int:
    """Tokens the model may still write after ``n_tokens`` of prompt; BadInput when the prompt leaves none."""
    context = context_of(model)
    if context is None:
        return 1 << 30
    if n_tokens >= context:
        raise BadInput(f"{what} is {n_tokens:,} tokens long; this model reads at most {context:,} tokens, "
                       "prompt and answer together: shorten the input")
    return context - n_tokens


def answer_of(completion: str, cfg: EvalConfig) -> str:
    """The final answer inside a completion (after "So the answer is", or its first line)."""
    return extract_answer(completion) if cfg.rationale else completion.strip().split("\n", 1)[0].strip()


def evaluate(model, tokenizer, task_name: str, examples: list[Example], cfg: EvalConfig | None = None,
             model_name: str = "", model_path: str | None = None, labels: list[str] | None = None) -> EvalResult:
    """Score ``model`` on ``examples`` of one task; exact match, overall and by level.

    Every prompt is measured before anything is generated: one the model's context cannot hold is refused
    (BadInput) under its label in ``labels`` (e.g. ``"mine.jsonl:7"``; default ``"example N"``).
    """
    cfg = cfg or EvalConfig()
    task = task_suite.get(task_name)
    if not examples:
        raise ValueError(f"no examples to score for task {task_name!r}")
    if cfg.rationale:
        examples = [task.reformat(ex, cfg.format) for ex in examples]
    prompts = build_prompts(tokenizer, examples, cfg)
    for i, p in enumerate(prompts):
        n_tokens = len(tokenizer(p, add_special_tokens=not cfg.chat).input_ids)
        context_left(model, n_tokens, f"{labels[i] if labels else f'example {i + 1}'}: the input's prompt")
    # the answer alone ends with its line; a few-shot chain of thought where the model starts the next question
    stops = ("\n",) if not cfg.rationale else ("\nQ: ",) if cfg.mode() == "few-shot" else ()
    budget = answer_budget(tokenizer, examples, cfg)
    t0 = time.perf_counter()
    completions = generate(model, tokenizer, prompts, budget, cfg.batch_size, stops, add_special_tokens=not cfg.chat)
    seconds = time.perf_counter() - t0
    preds, by_level = [], {}
    for ex, comp in zip(examples, completions):
        if "\nQ: " in stops:  # a chain of thought ends where the model starts the next question (and its answer)
            comp = comp.split("\nQ: ", 1)[0]
        answer = answer_of(comp, cfg)
        reason = task.diagnose(answer, ex.target)
        preds.append({"input": ex.input, "level": ex.level, "target": ex.target,
                      "prediction": answer, "completion": comp, "correct": reason is None, "reason": reason})
        by_level.setdefault(str(ex.level), []).append(reason is None)
    n = len(examples)
    return EvalResult(
        task=task_name, n=n, accuracy=sum(p["correct"] for p in preds) / n,
        by_level={k: sum(v) / len(v) for k, v in sorted(by_level.items())},
        params=measure.count_params(model), latency_ms=1000 * seconds / n, examples_per_s=n / seconds,
        model=model_name, mode=cfg.mode(), bytes=measure.bytes_on_disk(model_path) if model_path else None,
        predictions=preds)


def solve(model, tokenizer, text: str, rationale: bool = True, max_new_tokens: int = 512) -> str:
    """A student's full completion for one question (its rationale and answer), greedy."""
    stops = () if rationale else ("\n",)
    return generate(model, tokenizer, [student_prompt(text)], max_new_tokens, 1, stops)[0]


# data from users ------------------------------------------------------------------------------
def read_jsonl(path: str | Path, task_name: str) -> list[Example]:
    """Examples from a user's JSONL file of ``{"input", "target"}`` objects (``level``, ``rationale`` optional).

    Every line is checked against the task (``validate.read_examples``): a bad one raises BadInput (a
    ValueError) naming the file and the line number.
    """
    return [ex for _, ex in read_examples(path, task_suite.get(task_name))]


# showing results ------------------------------------------------------------------------------
def results_table(results: list[EvalResult]) -> str:
    """A markdown table: one row per model, accuracy per task, then mean latency and parameters."""
    models = list(dict.fromkeys(r.model for r in results))
    task_names = list(dict.fromkeys(r.task for r in results))
    by = {(r.model, r.task): r for r in results}
    head = "| model | params | " + " | ".join(task_names) + " | ms / example |"
    rows = [head, "|---" * (len(task_names) + 3) + "|"]
    for m in models:
        rs = [by[(m, t)] for t in task_names if (m, t) in by]
        accs = [f"{100 * by[(m, t)].accuracy:.0f}%" if (m, t) in by else "" for t in task_names]
        ms = sum(r.latency_ms for r in rs) / len(rs)
        rows.append(f"| {m} | {rs[0].params / 1e6:.1f}M | " + " | ".join(accs) + f" | {ms:.0f} |")
    return "\n".join(rows)


def mistakes(results: list[EvalResult], k: int = 2) -> str:
    """The first ``k`` wrong answers of each result, with the scorer's reason."""
    lines = []
    for r in results:
        wrong = [p for p in r.predictions if not p["correct"]][:k]
        for p in wrong:
            lines.append(f"[{r.model} | {r.task}] {p['reason']}\n  input:  {p['input'][-90:]}\n"
                         f"  target: {p['target'][:90]}\n  answer: {p['prediction'][:90]}")
    return "\n".join(lines)


def account(model, tokenizer, task_name: str, examples, label: str, *, eval_cfg=None, params: int | None = None,
            save=None, latency_length: int = 128, **info) -> dict:
    """One row of a side-by-side table: parameters, bytes on disk, forward latency at batch 1 and 16, accuracy.

        evaluate.account(model, tok, "boolean_expressions", examples, "dense")
        # {'model': 'dense', 'params': ..., 'bytes': ..., 'latency_b1_ms': ..., 'accuracy': ...}

    ``params`` overrides the count (a quantized model is counted as its float original); ``save`` writes
    the model the way its scheme stores it (``quantize.save``, ``lowrank.save``); ``info`` is added to the row.
    """
    res = evaluate(model, tokenizer, task_name, examples, eval_cfg or EvalConfig(rationale=True, batch_size=64))
    return {"model": label, "params": measure.count_params(model) if params is None else params,
            "bytes": measure.saved_bytes(model, tokenizer, save),
            "latency_b1_ms": measure.forward_latency(model, 1, latency_length, repeats=15),
            "latency_b16_ms": measure.forward_latency(model, 16, latency_length, repeats=5, warmup=1),
            "accuracy": res.accuracy, "gen_ms_per_example": res.latency_ms, **info}
