"""The one training loop every pattern plugs into, on ``accelerate``.

    result = train(model, tokenizer, TrainConfig(tasks=("boolean_expressions",), steps=2000), out="artifacts/bool")

What plugs in, without copying the loop:
- ``sampler``: which examples each step trains on (curriculum learning swaps it). A sampler is
  deterministic in (step, rank) given its state, so a resumed run sees the data an uninterrupted
  run would have seen.
- ``loss_fn(model, batch) -> (loss, logs)``: the objective (distillation and multi-task swap it).
- ``callbacks``: called with every log record (live plots in notebooks, early stopping).

The loop: AdamW, linear warm-up then cosine decay, gradient clipping, length-bucketed batches (a
bucket of batches is drawn at once and sorted by length, so padding stays small), periodic
validation accuracy by greedy generation, atomic checkpoints holding model, optimizer,
scheduler, RNG and sampler state, and ``resume=True``. Under
``accelerate launch --num_processes 2 --cpu -m workbench train ...`` the same loop runs
data-parallel (each process draws its own examples; gradients are averaged).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from workbench import tasks as task_suite
from workbench.core import evaluate as ev
from workbench.core.checkpoints import latest_checkpoint, load_best, load_checkpoint, save_checkpoint
from workbench.tasks import Example
from workbench.tasks import splits as task_splits


@dataclass
class TrainConfig:
    tasks: tuple[str, ...] = ("boolean_expressions",)  # tasks mixed uniformly (task-tagged mixes: multitask.py)
    levels: tuple[int, ...] | None = None  # levels drawn uniformly; None: every level up to the BBH level
    val_levels: tuple[int, ...] | None = None  # levels validation scores (None: the trained levels)
    rationale: bool = True  # learn the step-by-step rationale, not only the answer
    format: str = "full"  # which rationale: the task's full trace or a compact one (Task.formats)
    steps: int = 1000  # optimizer steps
    batch_size: int = 32  # sequences per step and process
    lr: float = 2e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup: int = 100  # linear warm-up steps
    weight_decay: float = 0.1  # AdamW decoupled weight decay on matrices (not norms or biases)
    grad_clip: float = 1.0  # max global gradient norm
    bucket: int = 8  # batches drawn together and sorted by length; checkpoints fall on bucket edges
    eval_every: int = 200  # steps between validation evaluations (0: only at the end)
    eval_n: int = 64  # validation examples per evaluation (per task)
    eval_max_new_tokens: int | None = None  # cap on generated tokens when scoring (None: sized from references)
    checkpoint_every: int = 200  # steps between checkpoints (0: none)
    log_every: int = 20  # steps between log records
    compile: bool = False  # torch.compile the training forward/backward (~20% faster on CPU after ~1 min)
    keep_best: bool = False  # end with the weights of the best validation accuracy, not the last step's
    pool: int = 0  # >0: draw every batch from one fixed pool of this many examples (memorisation), not fresh
    augment: bool = False  # draw the tasks' training-side variants (Task.augments: tool_call), not the plain ones
    seed: int = 0  # seeds data order and initialisation-independent randomness

    def as_json(self) -> dict:
        """The config as JSON would read it back (tuples as lists): what a checkpoint records of its run."""
        return json.loads(json.dumps(asdict(self)))

    def check(self) -> None:
        for name in self.tasks:
            task = task_suite.get(name)
            for level in [*(self.levels or ()), *(self.val_levels or ())]:
                task.check_level(level)
            task.check_format(self.format)
            if self.augment:
                task.check_augment()
        for key in ("steps", "batch_size", "bucket", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)!r}")
        for key in ("eval_every", "checkpoint_every", "warmup", "pool"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.checkpoint_every % self.bucket or self.eval_every % self.bucket:
            raise ValueError(f"checkpoint_every ({self.checkpoint_every}) and eval_every ({self.eval_every}) "
                             f"must be multiples of bucket ({self.bucket})")


def finetune_config(task_name: str, steps: int, lr: float, batch_size: int = 32, rationale: bool = True,
                    seed: int = 0) -> TrainConfig:
    """A short fine-tune on one task (recovery after pruning, QAT, LoRA): no validation, no checkpoints."""
    return TrainConfig(tasks=(task_name,), rationale=rationale, steps=steps, batch_size=batch_size, lr=lr,
                       warmup=max(1, steps // 10), eval_every=0, checkpoint_every=0, seed=seed,
                       log_every=max(1, steps // 4), bucket=min(8, steps))


def finetune(model, tokenizer, task_name: str, steps: int, lr: float, batch_size: int = 32, rationale: bool = True,
             seed: int = 0) -> TrainResult:
    """``finetune_config``'s short run on ``model`` in place: the one fine-tune that pruning recovery, QAT and
    LoRA share (they differ in what they do to the model before and after)."""
    return train(model, tokenizer, finetune_config(task_name, steps, lr, batch_size, rationale, seed), progress=False,
                 validate_at_end=False)


# data -----------------------------------------------------------------------------------------
def held_out_inputs(task_names) -> set[str]:
    """Every validation and test input: freshly generated training data never contains them."""
    return {ex.input for name in task_names for split in ("test", "validation")
            for ex in task_splits.load(name, split)}


class TaskSampler:
    """Fresh examples from the generators: a task, then a level, uniformly; held-out inputs skipped.

    Stateless: step ``s`` on rank ``r`` always gets the same examples, which makes resuming exact.
    Curriculum samplers subclass it and keep their state in ``state_dict``.
    """

    def __init__(self, task_names, levels=None, seed: int = 0, augment: bool = False):
        self.task_names = tuple(task_names)
        self.levels = {n: self._levels(n, levels) for n in self.task_names}
        self.seed, self.augment = seed, augment
        self.exclude = held_out_inputs(self.task_names)

    @staticmethod
    def _levels(name, levels):
        task = task_suite.get(name)
        if levels is None:
            return tuple(lv for lv in task.levels if lv <= task.bbh_level)
        if not levels:
            raise ValueError(f"no levels given for {name}; give some of {list(task.levels)}, or None for its default")
        return tuple(task.check_level(lv) for lv in levels)

    def level_weights(self, task_name: str, step: int) -> dict[int, float]:
        """Probability of each level at ``step`` (uniform here; curricula override this)."""
        return {lv: 1.0 for lv in self.levels[task_name]}

    def examples(self, step: int, rank: int, n: int) -> list[Example]:
        rng = random.Random(f"{self.seed}:{rank}:{step}")
        out = []
        while len(out) < n:
            name = rng.choice(self.task_names)
            weights = self.level_weights(name, step)
            level = rng.choices(list(weights), weights=list(weights.values()))[0]
            ex = task_suite.get(name).generate(rng, level, augment=self.augment)
            if ex.input not in self.exclude:
                out.append(ex)
        return out

    def update(self, step: int, metrics: dict, model=None, tokenizer=None) -> None:
        """Feedback after each evaluation, with the model in eval mode (curricula advance on it)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class PoolSampler(TaskSampler):
    """Batches drawn (with replacement) from one fixed pool of ``size`` examples: what a model does with a
    small dataset it sees again and again, against fresh generator examples (``TaskSampler``)."""

    def __init__(self, task_names, levels=None, seed: int = 0, size: int = 256, augment: bool = False):
        super().__init__(task_names, levels, seed, augment)
        self.pool = super().examples(-1, -1, size)  # a step no run reaches: never a training batch

    def examples(self, step: int, rank: int, n: int) -> list[Example]:
        rng = random.Random(f"{self.seed}:{rank}:{step}:pool")
        return [rng.choice(self.pool) for _ in range(n)]


def sampler_for(cfg: TrainConfig) -> TaskSampler:
    """Fresh examples, or a fixed pool when ``cfg.pool``."""
    if cfg.pool:
        return PoolSampler(cfg.tasks, cfg.levels, cfg.seed, cfg.pool, cfg.augment)
    return TaskSampler(cfg.tasks, cfg.levels, cfg.seed, cfg.augment)


def encode(tokenizer, examples: list[Example], rationale: bool, max_len: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; labels are -100 on the prompt and padding, so only the completion is learned."""
    rows, labels = [], []
    to_ids = getattr(tokenizer, "char_ids", None) or (lambda text: tokenizer(text, add_special_tokens=False).input_ids)
    for ex in examples:
        prompt = to_ids(ev.student_prompt(ex.input))
        done = to_ids(ev.student_completion(ex, rationale))
        ids = (prompt + done + [tokenizer.eos_token_id])[:max_len]
        rows.append(ids)
        labels.append(([-100] * len(prompt) + done + [tokenizer.eos_token_id])[:max_len])
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([lb + [-100] * (width - len(lb)) for lb in labels]),
    }


def bucketed(sampler, step: int, rank: int, cfg: TrainConfig) -> list[Example]:
    """The batch for ``step``: its bucket of ``cfg.bucket`` batches, sorted by length, in shuffled order."""
    first = step - step % cfg.bucket
    key = (first, rank, cfg.batch_size, cfg.bucket, cfg.rationale, cfg.format, cfg.seed)
    cached = getattr(sampler, "_bucket", None)
    if cached is None or cached[0] != key:  # drawn once per bucket, at its first step
        pool = sampler.examples(first, rank, cfg.batch_size * cfg.bucket)
        if cfg.rationale:
            pool = [task_suite.get(e.task).reformat(e, cfg.format) for e in pool]
        pool.sort(key=lambda e: len(e.input) + len(e.rationale if cfg.rationale else e.target))
        batches = [pool[i:i + cfg.batch_size] for i in range(0, len(pool), cfg.batch_size)]
        random.Random(f"{cfg.seed}:{rank}:{first}:order").shuffle(batches)
        sampler._bucket = cached = (key, batches)
    return cached[1][step - first]


# objective and schedule -----------------------------------------------------------------------
def lm_loss(model, batch) -> tuple[torch.Tensor, dict]:
    """Next-token cross-entropy on the completion (the default ``loss_fn``).

    The attention mask is left out on purpose: batches are right-padded and attention is causal, so
    no real token ever sees a pad, and pads carry no label. Without it attention takes the plain
    causal kernel (~8% faster compiled), with the same result.
    """
    out = model(input_ids=batch["input_ids"], labels=batch["labels"])
    return out.loss, {"loss": out.loss.item()}


def lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


def optimizer_for(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))


# the loop -------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    steps: int
    seconds: float
    tokens: int  # tokens processed by this process (padding excluded)
    history: list[dict] = field(default_factory=list)  # log and eval records, in order
    processes: int = 1  # data-parallel processes that trained together
    main_process: bool = True  # this process saves and scores

    @property
    def final_eval(self) -> dict:
        evals = [h for h in self.history if "val_accuracy" in h]
        return evals[-1] if evals else {}


def validate(model, tokenizer, cfg: TrainConfig) -> dict:
    """Greedy accuracy on ``eval_n`` validation examples of each task, spread over ``cfg.val_levels``
    (default: the trained levels); also by level, as ``val_accuracy/<task>/L<level>``."""
    logs = {}
    accs = []
    for name in cfg.tasks:
        levels = TaskSampler._levels(name, cfg.val_levels or cfg.levels)
        per_level = max(1, cfg.eval_n // len(levels))  # the same number at every level
        val = task_splits.load(name, "validation")
        pool = [e for lv in levels for e in [x for x in val if x.level == lv][:per_level]]
        res = ev.evaluate(model, tokenizer, name, pool,
                          ev.EvalConfig(rationale=cfg.rationale, format=cfg.format, batch_size=64,
                                        max_new_tokens=cfg.eval_max_new_tokens))
        logs[f"val_accuracy/{name}"] = res.accuracy
        logs.update({f"val_accuracy/{name}/L{lv}": a for lv, a in res.by_level.items()})
        accs.append(res.accuracy)
    logs["val_accuracy"] = sum(accs) / len(accs)
    return logs


def train(model, tokenizer, cfg: TrainConfig, out: str | Path | None = None, resume: bool = False,
          sampler=None, loss_fn=lm_loss, callbacks=(), progress: bool = True,
          validate_at_end: bool = True, validate_fn=None) -> TrainResult:
    """Train ``model`` in place; with ``out``, checkpoints go to ``out/checkpoints``.

    ``validate_fn(model, tokenizer, cfg) -> logs`` replaces ``validate`` (multi-task training scores
    task-tagged prompts); it returns the same keys.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    cfg.check()
    acc = Accelerator(cpu=not torch.cuda.is_available())
    sampler = sampler or sampler_for(cfg)
    validate_fn = validate_fn or validate
    max_len = model.config.max_position_embeddings
    optimizer = optimizer_for(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    start, history, best = 0, [], None  # best: (validation accuracy, step, weights) when cfg.keep_best
    if resume and out is not None and (ckpt := latest_checkpoint(Path(out))) is not None:
        start, history = load_checkpoint(ckpt, model, optimizer, scheduler, sampler, cfg.steps, cfg.as_json())
        best = load_best(ckpt)
    model, optimizer = acc.prepare(model, optimizer)
    model.train()
    forward = compiled(model) if cfg.compile else model  # same parameters; evaluation stays eager
    interactive = sys.stderr.isatty() or "ipykernel" in sys.modules  # headless runs get log lines only
    bar = tqdm(total=cfg.steps, initial=start, desc="train",
               disable=not (progress and interactive and acc.is_main_process))
    t0, tokens, window = time.perf_counter(), 0, []
    for step in range(start, cfg.steps):
        batch = encode(tokenizer, bucketed(sampler, step, acc.process_index, cfg), cfg.rationale, max_len)
        batch = {k: v.to(acc.device) for k, v in batch.items()}
        loss, logs = loss_fn(forward, batch)
        acc.backward(loss)
        grad_norm = acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
        window.append(logs["loss"])
        bar.update(1)
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            rec = {"step": done, "loss": sum(window) / len(window), "lr": scheduler.get_last_lr()[0],
                   "grad_norm": float(grad_norm), "tokens_per_s": tokens / (time.perf_counter() - t0)}
            window = []
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
            _emit(rec, history, callbacks, acc, progress, not bar.disable)
        if (cfg.eval_every and done % cfg.eval_every == 0) or (done == cfg.steps and validate_at_end):
            acc.wait_for_everyone()
            if acc.is_main_process:
                unwrapped = acc.unwrap_model(model).eval()
                rec = {"step": done, **validate_fn(unwrapped, tokenizer, cfg)}
                sampler.update(done, rec, model=unwrapped, tokenizer=tokenizer)
                if cfg.keep_best and (best is None or rec["val_accuracy"] > best[0]):
                    best = (rec["val_accuracy"], done, {k: v.detach().to("cpu", copy=True)
                                                        for k, v in unwrapped.state_dict().items()})
                unwrapped.train()
                _emit(rec, history, callbacks, acc, progress, not bar.disable)
            if acc.num_processes > 1:  # every rank follows the main process's curriculum
                from accelerate.utils import broadcast_object_list

                sampler.load_state_dict(broadcast_object_list([sampler.state_dict()])[0])
        if out is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
            acc.wait_for_everyone()
            if acc.is_main_process:
                save_checkpoint(Path(out), done, acc.unwrap_model(model), tokenizer, optimizer, scheduler,
                                sampler, history, best, cfg.as_json())
    bar.close()
    acc.wait_for_everyone()
    final = acc.unwrap_model(model).eval()
    last = next((h["val_accuracy"] for h in reversed(history) if "val_accuracy" in h), None)
    if best is not None and acc.is_main_process and (last is None or best[0] > last):
        final.load_state_dict(best[2])
        _emit({"step": cfg.steps, "restored_step": best[1], "restored_val_accuracy": best[0]}, history, callbacks,
              acc, progress, not bar.disable)
    return TrainResult(cfg.steps, time.perf_counter() - t0, tokens, history, acc.num_processes,
                       acc.is_main_process)


def compiled(model):
    """``torch.compile(model, dynamic=True)`` (one graph for every sequence length), or ``model``
    itself, with a warning, where no C compiler is installed for the CPU backend."""
    import warnings

    if not torch.cuda.is_available() and not (shutil.which("cc") or shutil.which("gcc")):
        warnings.warn("TrainConfig.compile: no C compiler found (cc/gcc); training runs uncompiled", stacklevel=3)
        return model
    return torch.compile(model, dynamic=True)


def _emit(rec: dict, history: list, callbacks, acc, progress: bool, printed_bar: bool) -> None:
    """Record ``rec``, pass it to the callbacks, and print it when nothing else shows it."""
    history.append(rec)
    for cb in callbacks:
        cb(rec)
    if progress and acc.is_main_process and not callbacks:
        line = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items())
        (print if not printed_bar else _tqdm_write)(line)


def _tqdm_write(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line)
