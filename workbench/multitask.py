"""Multi-task learning: one student on all five tasks, with task-tagged prompts and a chosen task mix.

    sampler = multitask.MultiTaskSampler(tasks.NAMES, scheme="temperature", temperature=5.0)
    train(model, tok, TrainConfig(tasks=tasks.NAMES, steps=5000), sampler=sampler, validate_fn=multitask.validate)
    multitask.evaluate_tasks(model, tok, tasks.NAMES, n=100)   # accuracy per task at the BBH level

Every prompt starts with its task's tag, ``[word_sorting] Sort the following words ...``: tagging
at the data level, like T5's task prefixes (Raffel et al., 2020), so the student itself is
unchanged, and the tag routes a request to its task's adapter when there is one.

Mixing, the probability p_i that a training example comes from task i:
- ``proportional``: p_i ∝ n_i, the task's data size (default: the examples its specialist recipe sees);
- ``uniform``: p_i = 1 / k;
- ``temperature``: p_i ∝ n_i^(1/T), as in multilingual training (Arivazhagan et al., 2019, use T=5;
  mT5's alpha=0.3 is T≈3.3): T=1 is proportional, T→∞ uniform, between them small tasks are up-sampled;
- ``loss_balanced``: p_i ∝ the student's current loss on task i, measured on a fixed probe batch at
  every evaluation, so the tasks it finds hardest are drawn most (uniform until the first measurement);
- or a dict of the user's own weights.

What each task writes: ``formats`` maps a task to its rationale format (``Task.formats``), or to None
for the answer alone, so one student can learn each task in the format that suits it (the recipes'
choices, ``recipe_formats``); without it every task writes its full rationale (or, ``rationale=False``,
every answer alone).

Shared body, small task parts: ``TaskAdapters`` puts one LoRA adapter per task (Hu et al., 2021) on a
frozen multi-task body through peft's multi-adapter API, and switches adapter per request by the tag.

The side-by-side study at equal compute (specialists, multi-task students, adapters, the transfer
matrix) is in ``studies.multitask``.
"""

from __future__ import annotations

import math
import numbers
import random
from dataclasses import replace

import torch

from workbench import tasks as task_suite
from workbench.core.train import TaskSampler, TrainConfig
from workbench.tasks import Example, splits
from workbench.tasks.base import FULL

SCHEMES = ("proportional", "uniform", "temperature", "loss_balanced")


# task tags -------------------------------------------------------------------------------------
def tag(task_name: str, text: str) -> str:
    """``[task_name] text``: the prefix that tells a multi-task student which task it faces."""
    return f"[{task_suite.get(task_name).name}] {text}"


def split_tag(text: str) -> tuple[str, str]:
    """(task name, untagged text) of a tagged prompt; a missing or unknown tag raises ValueError."""
    name, sep, rest = text[1:].partition("] ") if text.startswith("[") else ("", "", text)
    if not sep or name not in task_suite.TASKS:
        found = f"unknown task tag {'[' + name + ']'!r}" if sep else f"no task tag at the start of {text[:40]!r}"
        raise ValueError(f"{found}; accepted tags: {', '.join(f'[{n}]' for n in task_suite.NAMES)}")
    return name, rest


def tagged(ex: Example) -> Example:
    """``ex`` with its input tagged by its task."""
    return replace(ex, input=tag(ex.task, ex.input))


# what each task writes -------------------------------------------------------------------------
def recipe_formats(task_names=task_suite.NAMES) -> dict[str, str | None]:
    """Each task's format in its laptop specialist recipe (``recipes.LAPTOP``): a rationale format, or None
    where the recipe learns the answer alone."""
    from workbench.core.recipes import LAPTOP

    return {t: LAPTOP[t][1].format if LAPTOP[t][1].rationale else None for t in task_names}


def check_formats(formats: dict, task_names) -> dict[str, str | None]:
    """``formats`` for ``task_names``, checked: every task named, each format one its task has (or None)."""
    missing = [t for t in task_names if t not in formats]
    if missing:
        raise ValueError(f"formats name no format for task {missing[0]!r}; give one of "
                         f"{list(task_suite.get(missing[0]).formats)} or None (the answer alone) for each task")
    for t in task_names:
        if formats[t] is not None:
            task_suite.get(t).check_format(formats[t])
    return {t: formats[t] for t in task_names}


def written(ex: Example, fmt: str | None) -> Example:
    """``ex`` as a student learns to write it: its rationale in format ``fmt``, or (None) the answer alone
    (its rationale is then the target, so a rationale-trained loop learns just the answer)."""
    return replace(ex, rationale=ex.target) if fmt is None else task_suite.get(ex.task).reformat(ex, fmt)


# mixing weights --------------------------------------------------------------------------------
def default_sizes(task_names=task_suite.NAMES) -> dict[str, float]:
    """Each task's data size: the training examples its laptop specialist recipe sees (steps x batch)."""
    from workbench.core.recipes import LAPTOP

    return {n: float(LAPTOP[n][1].steps * LAPTOP[n][1].batch_size) for n in task_names}


def check_weights(values, task_names=None, what: str = "mixing weights", positive: bool = False) -> dict[str, float]:
    """``values`` (task -> number, one for each of ``task_names``) normalised to sum 1, after checking them."""
    allowed = tuple(task_names or task_suite.NAMES)
    if not isinstance(values, dict) or not values:
        raise ValueError(f"{what} must be a non-empty dict of task -> number, got {values!r}")
    for name, v in values.items():
        if name not in allowed:
            raise ValueError(f"unknown task {name!r} in {what}; accepted: {', '.join(allowed)}")
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0 or (positive
                                                                                                   and v == 0):
            raise ValueError(f"{what}: the value for {name!r} must be a finite number {'>' if positive else '>='} 0, "
                             f"got {v!r}")
    names = task_names or tuple(values)
    if missing := [n for n in names if n not in values]:
        raise ValueError(f"{what} lack {missing[0]!r}; give one for each of {', '.join(names)}")
    total = sum(float(values[n]) for n in names)
    if total <= 0:
        raise ValueError(f"{what} must sum to a positive number, got {total!r} from {values}")
    return {n: float(values[n]) / total for n in names}


def mixing_weights(scheme="uniform", sizes: dict | None = None, temperature: float = 5.0,
                   losses: dict | None = None, tasks=None) -> dict[str, float]:
    """The probability of each task under ``scheme`` (one of ``SCHEMES``, or a dict of the user's weights).

    ``sizes`` (task -> positive number) feed proportional and temperature (default ``default_sizes``);
    ``losses`` (task -> current loss) feed loss_balanced; ``tasks`` default to every task (or the dict's keys).
    """
    if isinstance(scheme, dict):
        return check_weights(scheme, tasks)
    names = tuple(task_suite.get(n).name for n in (tasks or task_suite.NAMES))
    if scheme == "uniform":
        return {n: 1 / len(names) for n in names}
    if scheme in ("proportional", "temperature"):
        t = 1.0 if scheme == "proportional" else temperature
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not t > 0:  # also refuses nan
            raise ValueError(f"temperature must be a positive number (inf: uniform), got {temperature!r}")
        n = check_weights(default_sizes(names) if sizes is None else sizes, names, "sizes", positive=True)
        return check_weights({k: n[k] ** (1 / t) for k in names}, names)  # n normalised first: no overflow
    if scheme == "loss_balanced":
        if losses is None:
            raise ValueError("the loss_balanced scheme needs losses (task -> current loss); MultiTaskSampler "
                             "measures them with probe_loss at every evaluation")
        return check_weights(losses, names, "losses")
    raise ValueError(f"unknown mixing scheme {scheme!r}; accepted: {', '.join(SCHEMES)}, or a dict of task -> weight")


# the sampler -----------------------------------------------------------------------------------
def _spread(task_name: str, split: str, levels, n: int, fmt: str | None = FULL) -> list[Example]:
    """The first ``n // len(levels)`` stored examples at each level (at least one each), written in ``fmt``, tagged."""
    pool = splits.load(task_name, split)
    per = max(1, n // len(levels))
    return [tagged(written(e, fmt)) for lv in levels for e in [x for x in pool if x.level == lv][:per]]


@torch.no_grad()
def probe_loss(model, tokenizer, task_name: str, levels=None, rationale: bool = True, n: int = 8,
               fmt: str | None = FULL) -> float:
    """Mean per-token loss on a fixed probe batch of ``task_name``: ``n`` tagged validation examples (in ``fmt``)."""
    from workbench.core.train import encode

    levels = levels or TaskSampler._levels(task_name, None)
    was_training = model.training
    model.eval()
    batch = encode(tokenizer, _spread(task_name, "validation", levels, n, fmt), rationale,
                   model.config.max_position_embeddings)
    loss = model(input_ids=batch["input_ids"].to(model.device), labels=batch["labels"].to(model.device)).loss
    model.train(was_training)
    return float(loss)


class MultiTaskSampler(TaskSampler):
    """Tagged examples from several tasks: a task by the mixing weights, a level uniformly up to the BBH
    level, then a fresh generator example (held-out inputs skipped).

    The tasks of step ``s`` on rank ``r`` come from their own random stream, so they follow the weights
    exactly whatever the generators draw; loss_balanced re-weights at each evaluation (``update``) and
    keeps every weighting it used in ``history``.
    """

    def __init__(self, task_names=task_suite.NAMES, scheme="uniform", sizes: dict | None = None,
                 temperature: float = 5.0, levels=None, seed: int = 0, rationale: bool = True, probe_n: int = 8,
                 formats: dict | None = None, augment: bool = False):
        super().__init__(task_names, levels, seed, augment)
        self.scheme, self.rationale, self.probe_n = scheme, rationale, probe_n
        self.formats = check_formats(formats, self.task_names) if formats else dict.fromkeys(self.task_names, FULL)
        start = "uniform" if scheme == "loss_balanced" else scheme
        self.weights = mixing_weights(start, sizes, temperature, tasks=self.task_names)
        self.losses: dict[str, float] = {}
        self.history: list[dict] = [{"step": 0, "weights": dict(self.weights)}]

    def draw_tasks(self, step: int, rank: int, n: int) -> list[str]:
        rng = random.Random(f"{self.seed}:{rank}:{step}:tasks")
        return rng.choices(list(self.weights), weights=list(self.weights.values()), k=n)

    def examples(self, step: int, rank: int, n: int) -> list[Example]:
        rng = random.Random(f"{self.seed}:{rank}:{step}")
        out = []
        for name in self.draw_tasks(step, rank, n):
            weights = self.level_weights(name, step)
            while True:
                level = rng.choices(list(weights), weights=list(weights.values()))[0]
                ex = task_suite.get(name).generate(rng, level, augment=self.augment)
                if ex.input not in self.exclude:
                    break
            out.append(tagged(written(ex, self.formats[name])))  # written before tagging: formats parse the input
        return out

    def reweight(self, step: int, losses: dict[str, float]) -> None:
        """loss_balanced: draw each task in proportion to ``losses``, from ``step`` on."""
        self.losses = {n: float(losses[n]) for n in self.task_names}
        self.weights = mixing_weights("loss_balanced", losses=self.losses, tasks=self.task_names)
        self.history.append({"step": step, "weights": dict(self.weights), "losses": dict(self.losses)})

    def update(self, step: int, metrics: dict, model=None, tokenizer=None) -> None:
        if self.scheme == "loss_balanced" and model is not None:
            self.reweight(step, {n: probe_loss(model, tokenizer, n, self.levels[n], self.rationale, self.probe_n,
                                               self.formats[n]) for n in self.task_names})

    def state_dict(self) -> dict:
        return {"weights": self.weights, "losses": self.losses, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.weights, self.losses = dict(state["weights"]), dict(state["losses"])
            self.history = list(state["history"])


# scoring ---------------------------------------------------------------------------------------
def validate(model, tokenizer, cfg: TrainConfig, formats: dict | None = None) -> dict:
    """``train.validate`` on tagged prompts, with the same keys: ``train(..., validate_fn=validate)`` (with
    ``formats``, each task written as its sampler writes it: ``functools.partial(validate, formats=...)``)."""
    from workbench.core.evaluate import EvalConfig, evaluate

    logs = {}
    for name in cfg.tasks:
        fmt = formats[name] if formats else FULL
        pool = _spread(name, "validation", TaskSampler._levels(name, cfg.val_levels or cfg.levels), cfg.eval_n, fmt)
        res = evaluate(model, tokenizer, name, pool, EvalConfig(rationale=cfg.rationale or formats is not None,
                                                                batch_size=64, max_new_tokens=cfg.eval_max_new_tokens))
        logs[f"val_accuracy/{name}"] = res.accuracy
        logs.update({f"val_accuracy/{name}/L{lv}": a for lv, a in res.by_level.items()})
    logs["val_accuracy"] = sum(logs[f"val_accuracy/{n}"] for n in cfg.tasks) / len(cfg.tasks)
    return logs


def evaluate_tasks(model, tokenizer, task_names, n: int, level: int | None = None, rationale: bool = True,
                   adapters: TaskAdapters | None = None, tags: bool = True, max_new_tokens: int | None = None,
                   batch_size: int = 64, formats: dict | None = None) -> dict[str, float]:
    """Accuracy per task on its first ``n`` test examples at the BBH level (or ``level``), inputs tagged
    (``tags=False`` for a single-task specialist). With ``adapters``, each request runs under the adapter
    its tag routes to; with ``formats`` (task -> format or None), each task's generation budget is sized
    from the format its student writes."""
    from workbench.core.evaluate import EvalConfig, evaluate

    if adapters is not None and not tags:
        raise ValueError("adapters are chosen by each request's task tag; keep tags=True")
    formats = check_formats(formats, task_names) if formats else None
    cfg = EvalConfig(rationale=rationale or formats is not None, batch_size=batch_size, max_new_tokens=max_new_tokens)
    out = {}
    for name in task_names:
        task = task_suite.get(name)
        examples = splits.load(name, "test", level=task.bbh_level if level is None else level, n=n)
        if formats:  # written before tagging: formats parse the input
            examples = [written(e, formats[name]) for e in examples]
        groups: dict[str | None, list[Example]] = {}  # adapter -> its requests
        for ex in (tagged(e) for e in examples) if tags else examples:
            groups.setdefault(adapters.route(ex.input) if adapters else None, []).append(ex)
        correct = sum(evaluate(adapters.use(a) if adapters else model, tokenizer, name, group, cfg).accuracy
                      * len(group) for a, group in groups.items())
        out[name] = correct / len(examples)
    return out


# shared body, per-task adapters ----------------------------------------------------------------
class TaskAdapters:
    """One LoRA adapter per task on a frozen shared body (peft multi-adapter), switched per request by its tag.

        adapters = TaskAdapters(body, tasks.NAMES, rank=4)    # wraps ``body`` in place
        adapters.train(tok, "dyck_languages", cfg)            # that adapter only; the body stays frozen
        adapters.use(adapters.route("[dyck_languages] ..."))  # the peft model, that adapter active
    """

    def __init__(self, body, task_names=task_suite.NAMES, rank: int = 4, alpha: float | None = None):
        from peft import LoraConfig, get_peft_model

        from workbench.core.measure import count_params, param_bytes
        from workbench.lora import targets

        if not (isinstance(rank, int) and rank >= 1):
            raise ValueError(f"LoRA rank must be a positive integer, got {rank!r}")
        self.task_names = tuple(task_suite.get(n).name for n in task_names)
        self.body_params, self.body_bytes = count_params(body), param_bytes(body)
        cfg = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, target_modules=targets(body), lora_dropout=0.0)
        self.model = get_peft_model(body, cfg, adapter_name=self.task_names[0])
        for name in self.task_names[1:]:
            self.model.add_adapter(name, cfg)
        self.model.eval()

    def route(self, text: str) -> str:
        """The adapter for a tagged request: its task's."""
        name, _ = split_tag(text)
        if name not in self.task_names:
            raise ValueError(f"no adapter for task {name!r}; adapters: {', '.join(self.task_names)}")
        return name

    def use(self, task_name: str):
        """The peft model with ``task_name``'s adapter active (and, for training, the only trainable part)."""
        if task_name not in self.task_names:
            raise ValueError(f"no adapter for task {task_name!r}; adapters: {', '.join(self.task_names)}")
        self.model.set_adapter(task_name)
        return self.model

    def train(self, tokenizer, task_name: str, cfg: TrainConfig, progress: bool = False, fmt: str | None = FULL):
        """Train ``task_name``'s adapter on tagged examples of its task written in ``fmt`` (None: the answer
        alone), on the one training loop."""
        from functools import partial

        from workbench.core.train import train

        cfg = replace(cfg, tasks=(task_name,))
        formats = {task_name: fmt if cfg.rationale else None}  # rationale=False: the answer alone
        sampler = MultiTaskSampler(cfg.tasks, levels=cfg.levels, seed=cfg.seed, rationale=cfg.rationale,
                                   formats=formats, augment=cfg.augment)
        return train(self.use(task_name), tokenizer, cfg, sampler=sampler, progress=progress,
                     validate_at_end=False, validate_fn=partial(validate, formats=formats))

    def sizes(self) -> dict:
        """Parameters and bytes of the body, of each adapter, and in all."""
        params = {n: sum(p.numel() for k, p in self.model.named_parameters() if "lora_" in k and f".{n}." in k)
                  for n in self.task_names}
        width = next(self.model.parameters()).element_size()
        return {"body_params": self.body_params, "body_bytes": self.body_bytes, "adapter_params": params,
                "adapter_bytes": {n: width * v for n, v in params.items()},
                "total_bytes": self.body_bytes + width * sum(params.values())}
