"""Curriculum learning: samplers that decide which task levels each training step draws from.

    sampler = curriculum.make("competence", ["multistep_arithmetic_two"], levels=(1, 2, 3), total_steps=800)
    train(model, tok, cfg, sampler=sampler)          # the one training loop, through its sampler hook
    curriculum.plan("baby_steps", ..., points=50)    # the planned mix of levels, before any training

Every scheduler is a ``TaskSampler`` that overrides ``level_weights(task, step)``; the examples
themselves are still fresh draws from the generators, so data order stays deterministic in
(seed, step, rank) and a resumed run continues exactly. Levels are the difficulty signal (longer
expressions, more brackets, more words); only self-paced learning measures difficulty with the
model instead.

- ``random``: every level uniformly at every step (the baseline).
- ``easy_to_hard``: one level at a time in order, each for an equal share of the first ``ramp``
  of training, then all levels mixed (the "one-pass" curriculum of Bengio et al., 2009).
- ``baby_steps``: levels up to k, and k grows when validation accuracy on the levels seen so far
  reaches ``threshold``, or after ``patience`` evaluations without it (Spitkovsky et al. move on
  at convergence; a threshold alone can stall on a level the model cannot master) (Bengio et al.,
  2009; Spitkovsky et al., 2010, "Baby Steps").
- ``competence``: square-root competence c(t) = min(1, sqrt(t (1 - c0^2) / T + c0^2)); a level is
  drawn in proportion to how much of it lies under c(t) when levels are ranked easy to hard
  (Platanios et al., 2019, NAACL), with T = ``ramp`` x total steps.
- ``self_paced``: the model's own loss per level, measured at each evaluation, ranks the levels;
  a growing fraction of the easiest by loss is drawn (Kumar et al., 2010, self-paced learning).
- ``hard_first``: ``easy_to_hard`` reversed (an anti-curriculum, as a control).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from workbench.core.train import TaskSampler

SCHEDULERS = ("random", "easy_to_hard", "baby_steps", "competence", "self_paced", "hard_first")


@dataclass
class Pacing:
    ramp: float = 0.5  # fraction of training over which the schedule opens up to every level
    threshold: float = 0.8  # baby_steps: validation accuracy on the seen levels that opens the next level
    patience: int = 3  # baby_steps: evaluations on one stage after which the next level opens anyway
    c0: float = 0.1  # competence: initial competence (fraction of the data available at step 0)
    start: float = 0.2  # self_paced: fraction of levels (easiest by loss) drawn at step 0

    def check(self) -> None:
        if not 0 < self.ramp <= 1:
            raise ValueError(f"ramp must be in (0, 1], got {self.ramp!r}")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold!r}")
        if not 0 < self.c0 <= 1:
            raise ValueError(f"c0 must be in (0, 1], got {self.c0!r}")
        if not 0 < self.start <= 1:
            raise ValueError(f"start must be in (0, 1], got {self.start!r}")
        if not (isinstance(self.patience, int) and self.patience >= 1):
            raise ValueError(f"patience must be a positive integer, got {self.patience!r}")


def check_scheduler(name: str) -> str:
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    return name


class CurriculumSampler(TaskSampler):
    """A ``TaskSampler`` whose level mix follows a schedule over ``total_steps``."""

    def __init__(self, scheduler: str, task_names, levels=None, seed: int = 0, total_steps: int = 1000,
                 pacing: Pacing | None = None, rationale: bool = True):
        super().__init__(task_names, levels, seed)
        self.rationale = rationale  # self_paced measures the loss on what the model is trained to write
        self.scheduler = check_scheduler(scheduler)
        if total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        self.total_steps = total_steps
        self.pacing = pacing or Pacing()
        self.pacing.check()
        self.stage = {n: 1 for n in self.task_names}  # baby_steps: how many levels are open
        self.waited = {n: 0 for n in self.task_names}  # baby_steps: evaluations spent on the current stage
        self.level_loss: dict[str, dict[int, float]] = {n: {} for n in self.task_names}  # self_paced

    # the schedule ----------------------------------------------------------------------------
    def level_weights(self, task_name: str, step: int) -> dict[int, float]:
        levels = self.levels[task_name]
        k, frac = len(levels), step / self.total_steps
        p = self.pacing
        if self.scheduler == "random":
            w = [1.0] * k
        elif self.scheduler in ("easy_to_hard", "hard_first"):
            order = list(range(k)) if self.scheduler == "easy_to_hard" else list(range(k))[::-1]
            if frac >= p.ramp:
                w = [1.0] * k
            else:
                w = [0.0] * k
                w[order[min(k - 1, int(frac / p.ramp * k))]] = 1.0
        elif self.scheduler == "baby_steps":
            w = [1.0 if i < self.stage[task_name] else 0.0 for i in range(k)]
        elif self.scheduler == "competence":
            c = min(1.0, math.sqrt(min(1.0, frac / p.ramp) * (1 - p.c0**2) + p.c0**2))
            w = [min(1.0, max(0.0, c * k - i)) for i in range(k)]  # share of level i under c
        else:  # self_paced
            w = self._self_paced(task_name, frac)
        return dict(zip(levels, w))

    def _self_paced(self, task_name: str, frac: float) -> list[float]:
        levels, k = self.levels[task_name], len(self.levels[task_name])
        p = self.pacing
        share = min(1.0, p.start + (1 - p.start) * frac / p.ramp)  # fraction of levels open
        n_open = max(1, math.ceil(share * k - 1e-9))
        losses = self.level_loss[task_name]
        # before the first measurement the labels are the only guide: easiest level first
        ranked = sorted(range(k), key=lambda i: (losses.get(levels[i], 0.0), i)) if losses else range(k)
        open_ = set(list(ranked)[:n_open])
        return [1.0 if i in open_ else 0.0 for i in range(k)]

    # feedback from the loop -------------------------------------------------------------------
    def update(self, step: int, metrics: dict, model=None, tokenizer=None) -> None:
        if self.scheduler == "baby_steps":
            for name in self.task_names:
                seen = self.levels[name][: self.stage[name]]
                accs = [metrics.get(f"val_accuracy/{name}/L{lv}") for lv in seen]
                if None in accs:
                    raise ValueError(f"baby_steps needs validation accuracy at every seen level of {name!r} "
                                     f"(levels {list(seen)}); set TrainConfig.val_levels to include them")
                self.waited[name] += 1
                passed = sum(accs) / len(accs) >= self.pacing.threshold
                if (passed or self.waited[name] >= self.pacing.patience) and self.stage[name] < len(self.levels[name]):
                    self.stage[name] += 1
                    self.waited[name] = 0
        elif self.scheduler == "self_paced" and model is not None:
            for name in self.task_names:
                self.level_loss[name] = probe_losses(model, tokenizer, name, self.levels[name], self.rationale)

    def state_dict(self) -> dict:
        return {"stage": self.stage, "waited": self.waited, "level_loss": {n: {str(k): v for k, v in d.items()}
                                                    for n, d in self.level_loss.items()}}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        self.stage = dict(state["stage"])
        self.waited = dict(state["waited"])
        self.level_loss = {n: {int(k): v for k, v in d.items()} for n, d in state["level_loss"].items()}


@torch.no_grad()
def probe_losses(model, tokenizer, task_name: str, levels, rationale: bool = True, n: int = 16) -> dict[int, float]:
    """Mean per-token loss of ``model`` on ``n`` validation examples of each level (self-paced's signal)."""
    from workbench.core.train import encode
    from workbench.tasks import splits

    was_training = model.training
    model.eval()
    pool = splits.load(task_name, "validation")
    out = {}
    for lv in levels:
        examples = [e for e in pool if e.level == lv][:n]
        batch = encode(tokenizer, examples, rationale, model.config.max_position_embeddings)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        out[lv] = float(model(**batch).loss)
    model.train(was_training)
    return out


def make(scheduler: str, task_names, levels=None, seed: int = 0, total_steps: int = 1000, rationale: bool = True,
         **pacing) -> CurriculumSampler:
    """A sampler for ``scheduler``; pacing keywords are ``Pacing``'s fields (ramp, threshold, patience, c0,
    start)."""
    unknown = set(pacing) - set(Pacing.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown pacing parameter(s) {sorted(unknown)}; accepted: "
                         f"{', '.join(Pacing.__dataclass_fields__)}")
    if isinstance(task_names, str):
        task_names = (task_names,)
    check_scheduler(scheduler)
    return CurriculumSampler(scheduler, task_names, levels, seed, total_steps, Pacing(**pacing), rationale)


def plan(scheduler: str, task_name: str, levels=None, total_steps: int = 1000, points: int = 50,
         eval_every: int | None = None, **pacing) -> tuple[list[int], list[int], list[list[float]]]:
    """The planned share of each level over training: ``(steps, levels, shares[point][level])``.

    Schedules that depend on the model (baby_steps, self_paced) are shown at their slowest pace:
    baby_steps opens one more level every ``patience`` evaluations (``eval_every``, default a tenth
    of training), earlier when validation passes its threshold; self_paced ranks the levels by
    their labels, as it does before its first measurement.
    """
    sampler = make(scheduler, (task_name,), levels, 0, total_steps, **pacing)
    sampler.exclude = set()
    every = eval_every or max(1, total_steps // 10)
    steps = [round(i * (total_steps - 1) / max(1, points - 1)) for i in range(points)]
    shares = []
    for s in steps:
        if scheduler == "baby_steps":
            sampler.stage[task_name] = min(len(sampler.levels[task_name]), 1 + s // (every * sampler.pacing.patience))
        w = sampler.level_weights(task_name, s)
        total = sum(w.values()) or 1.0
        shares.append([v / total for v in w.values()])
    return steps, list(sampler.levels[task_name]), shares
