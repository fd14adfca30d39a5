"""Knowledge distillation: every regime plugs into the one training loop through its loss hook or its data.

    kd = distill.LogitKD(teacher, loss="forward_kl", temperature=2.0)      # a loss_fn for train()
    train(student, tok, cfg, sampler=distill.PoolSampler(texts), loss_fn=kd)

The regimes, each with its paper:

- **logit distillation** (Hinton et al., 2015): the student matches the teacher's next-token
  distribution at every completion position. ``divergence`` offers forward KL (mean-seeking, the
  classic), reverse KL (mode-seeking) and the generalized Jensen-Shannon divergence JSD(beta) of GKD
  (Agarwal et al., 2024), each on distributions softened by a temperature T and scaled by T^2 so
  gradients keep their size. ``LogitKD`` mixes it with the label cross-entropy (weight ``alpha``).
- **sequence-level distillation** (Kim & Rush, 2016): the student trains on the teacher's own
  generated rationales and answers (``teacher_examples``). Only text passes between them, so it
  works across tokenizers: a BPE teacher and a character-level student.
- **distilling step-by-step** (Hsieh et al., 2023): the student learns the label and the teacher's
  rationale as two tasks with their own prefixes (``step_by_step_examples``); at test time only the
  ``[label]`` task runs, so the rationale costs nothing at inference.
- **on-policy distillation** (GKD; Agarwal et al., 2024): the student samples its own completions and
  the teacher scores every token of them (``OnPolicyKD``), which removes the mismatch between the
  teacher-written text a student trains on and the text it writes itself.

Vocabulary trimming, for logit distillation from a pretrained teacher, is in ``workbench.vocab``.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import torch
import torch.nn.functional as F

from workbench import tasks as task_suite
from workbench.tasks import Example, extract_answer

LOSSES = ("forward_kl", "reverse_kl", "jsd")
LABEL_PREFIX, RATIONALE_PREFIX = "[label] ", "[rationale] "


# the divergences ------------------------------------------------------------------------------
def check_loss(name: str) -> str:
    if name not in LOSSES:
        raise ValueError(f"unknown distillation loss {name!r}; accepted: {', '.join(LOSSES)}")
    return name


def check_temperature(temperature: float) -> float:
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    return float(temperature)


def divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, loss: str = "forward_kl",
               temperature: float = 1.0, beta: float = 0.5, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean divergence between teacher and student next-token distributions over masked positions.

    logits: (..., V), the same V for both (restrict a teacher to the student's vocabulary first);
    mask: (...) booleans, the positions that count (default: all). Returns T^2 x the mean of
    forward_kl  KL(p_T || p_S) = sum p_T (log p_T - log p_S)
    reverse_kl  KL(p_S || p_T)
    jsd         beta KL(p_T || m) + (1 - beta) KL(p_S || m),  m = beta p_T + (1 - beta) p_S
    """
    check_loss(loss)
    t = check_temperature(temperature)
    if student_logits.shape[-1] != teacher_logits.shape[-1]:
        raise ValueError(f"student and teacher logits cover different vocabularies ({student_logits.shape[-1]} "
                         f"vs {teacher_logits.shape[-1]} tokens); map the teacher onto the student's tokens "
                         "(workbench.vocab.TrimmedVocab) or distil through text (teacher_examples)")
    log_s = F.log_softmax(student_logits.float() / t, dim=-1)
    log_t = F.log_softmax(teacher_logits.float() / t, dim=-1)
    if loss == "forward_kl":
        per = (log_t.exp() * (log_t - log_s)).sum(-1)
    elif loss == "reverse_kl":
        per = (log_s.exp() * (log_s - log_t)).sum(-1)
    else:
        if not 0 < beta < 1:
            raise ValueError(f"jsd beta must lie strictly between 0 and 1, got {beta!r}")
        log_m = torch.logsumexp(torch.stack([log_t + math.log(beta), log_s + math.log(1 - beta)]), dim=0)
        per = beta * (log_t.exp() * (log_t - log_m)).sum(-1) + (1 - beta) * (log_s.exp() * (log_s - log_m)).sum(-1)
    if mask is not None:
        per = per[mask]
    if per.numel() == 0:
        return student_logits.sum() * 0.0  # no completion tokens in the batch: a zero that keeps the graph
    return per.mean() * t * t


# logit distillation as a loss hook ------------------------------------------------------------
def _unwrap(model):
    """The plain transformers model under accelerate / torch.compile wrappers (for ``generate``)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def check_vocabularies(student_tokenizer, teacher_tokenizer, vocab=None) -> None:
    """Logit distillation needs one token space: the same vocabulary, or a mapping (``vocab``)."""
    if vocab is not None or student_tokenizer is None or teacher_tokenizer is None:
        return
    s, t = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if s != t:
        shared = len(set(s.items()) & set(t.items()))
        raise ValueError(f"teacher and student tokenizers have different vocabularies ({len(t)} vs {len(s)} "
                         f"tokens, {shared} with the same id) and no mapping was given: distil through text "
                         "(sequence-level: teacher_examples) or build the student on the teacher's trimmed "
                         "vocabulary (workbench.vocab.TrimmedVocab) and pass it as vocab=")


class LogitKD:
    """``loss_fn`` for ``train``: alpha x cross-entropy on the labels + (1 - alpha) x divergence from the teacher.

    ``vocab`` (a ``workbench.vocab.TrimmedVocab``) maps a student built on a trimmed copy of the
    teacher's vocabulary: the teacher reads the same tokens under its own ids, and its logits are
    restricted to the kept tokens (log-softmax over them renormalises the distribution).
    ``cache=True`` keeps the teacher's logits per training sequence, for a fixed pool of examples and a
    costly teacher (a pretrained model on a CPU): each sequence is scored once, however many epochs.
    """

    def __init__(self, teacher, loss: str = "forward_kl", temperature: float = 2.0, alpha: float = 0.5,
                 beta: float = 0.5, vocab=None, student_tokenizer=None, teacher_tokenizer=None, cache: bool = False):
        self.loss, self.temperature = check_loss(loss), check_temperature(temperature)
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha (the label loss's share) must lie in [0, 1], got {alpha!r}")
        check_vocabularies(student_tokenizer, teacher_tokenizer, vocab)
        self.teacher, self.alpha, self.beta, self.vocab = teacher.eval(), alpha, beta, vocab
        self.cache: dict[tuple, torch.Tensor] | None = {} if cache else None

    @torch.no_grad()
    def teacher_logits(self, input_ids: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """(B, T, V_student) teacher logits for right-padded ``input_ids`` (rows of ``lengths`` tokens)."""
        keys = [tuple(row[:n]) for row, n in zip(input_ids.tolist(), lengths)]
        todo = [i for i, k in enumerate(keys) if self.cache is None or k not in self.cache]
        out = {}
        if todo:
            ids = input_ids[todo]
            if self.vocab is not None:
                ids = self.vocab.to_teacher(ids)
            device = next(self.teacher.parameters()).device
            if device != input_ids.device:  # the teacher follows the student (accelerate put it on the GPU)
                self.teacher.to(input_ids.device)
                device = input_ids.device
            logits = self.teacher(input_ids=ids.to(device)).logits.float()
            if self.vocab is not None:
                logits = self.vocab.restrict(logits)
            for j, i in enumerate(todo):
                out[i] = logits[j, :lengths[i]].to(input_ids.device)
                if self.cache is not None:
                    self.cache[keys[i]] = out[i].half()
        width = (out[todo[0]] if todo else self.cache[keys[0]]).shape[-1]
        full = torch.zeros(*input_ids.shape, width, device=input_ids.device)  # (B, T, V); padding stays 0
        for i, k in enumerate(keys):
            full[i, :lengths[i]] = out[i] if i in out else self.cache[k].float()
        return full

    def __call__(self, model, batch) -> tuple[torch.Tensor, dict]:
        ids, labels = batch["input_ids"], batch["labels"]
        logits = model(input_ids=ids).logits
        lengths = batch["attention_mask"].sum(1).tolist()
        teacher = self.teacher_logits(ids, lengths)
        mask = labels[:, 1:] != -100  # position i predicts token i + 1
        kd = divergence(logits[:, :-1], teacher[:, :-1], self.loss, self.temperature, self.beta, mask)
        ce = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        loss = self.alpha * ce + (1 - self.alpha) * kd
        return loss, {"loss": loss.item(), "ce": ce.item(), "kd": kd.item()}


class OnPolicyKD:
    """``loss_fn`` for GKD (Agarwal et al., 2024): on a share ``mix`` of the steps the student writes its own
    completions (sampled at ``sample_temperature``) for the batch's prompts and the teacher scores every
    token of them (``divergence(loss)`` on those tokens); on the other steps it is supervised logit
    distillation on the batch's text (``alpha`` x cross-entropy + the divergence). The first ``start``
    steps are all supervised: GKD starts from a student that already writes the format, since a random
    student's samples teach nothing. Same tokenizer for both (or ``vocab``)."""

    def __init__(self, teacher, tokenizer, loss: str = "jsd", mix: float = 0.5, temperature: float = 1.0,
                 beta: float = 0.5, alpha: float = 0.5, start: int = 0, sample_temperature: float = 1.0,
                 max_new_tokens: int | None = None, seed: int = 0, vocab=None, cache: bool = False):
        if not 0 <= mix <= 1:
            raise ValueError(f"mix (the share of on-policy steps) must lie in [0, 1], got {mix!r}")
        check_temperature(sample_temperature)
        self.supervised = LogitKD(teacher, loss, temperature, alpha=alpha, beta=beta, vocab=vocab, cache=cache)
        self.kd = LogitKD(teacher, loss, temperature, alpha=0.0, beta=beta, vocab=vocab)
        self.tokenizer, self.mix, self.sample_temperature, self.start = tokenizer, mix, sample_temperature, start
        self.max_new_tokens, self.rng, self.on_policy_steps, self.steps = max_new_tokens, random.Random(seed), 0, 0

    @torch.no_grad()
    def sample(self, model, batch) -> dict:
        """The batch's prompts, each followed by the student's own sampled completion (labels on it only)."""
        ids, labels = batch["input_ids"], batch["labels"]
        plens = [int((row != -100).nonzero()[0]) if (row != -100).any() else len(row) for row in labels]
        budget = self.max_new_tokens or int((labels != -100).sum(1).max()) + 8
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        width = max(plens)
        prompts = torch.full((len(plens), width), pad, dtype=ids.dtype, device=ids.device)
        attn = torch.zeros_like(prompts)
        for i, n in enumerate(plens):  # left-pad: new tokens follow every prompt directly
            prompts[i, width - n:], attn[i, width - n:] = ids[i, :n], 1
        net = _unwrap(model)
        was_training = net.training
        net.eval()
        gen = net.generate(input_ids=prompts, attention_mask=attn, max_new_tokens=budget, do_sample=True,
                           temperature=self.sample_temperature, top_k=0, top_p=1.0, pad_token_id=pad)
        net.train(was_training)
        rows, labs = [], []
        for i, n in enumerate(plens):
            done = gen[i, width:].tolist()
            done = done[:done.index(eos) + 1] if eos in done else done
            rows.append(ids[i, :n].tolist() + done)
            labs.append([-100] * n + done)
        longest = max(map(len, rows))
        return {"input_ids": torch.tensor([r + [pad] * (longest - len(r)) for r in rows], device=ids.device),
                "attention_mask": torch.tensor([[1] * len(r) + [0] * (longest - len(r)) for r in rows],
                                               device=ids.device),
                "labels": torch.tensor([lb + [-100] * (longest - len(lb)) for lb in labs], device=ids.device)}

    def __call__(self, model, batch) -> tuple[torch.Tensor, dict]:
        self.steps += 1
        on_policy = self.steps > self.start and self.rng.random() < self.mix
        if not on_policy:
            loss, logs = self.supervised(model, batch)
            return loss, {**logs, "on_policy": 0.0}
        self.on_policy_steps += 1
        loss, logs = self.kd(model, self.sample(model, batch))
        return loss, {**logs, "on_policy": 1.0}


# data for the regimes -------------------------------------------------------------------------
class PoolSampler:
    """A fixed pool of examples (the labelled data, or the teacher's texts), drawn uniformly with
    replacement; deterministic in (seed, rank, step), like ``train.TaskSampler``, so resuming is exact."""

    def __init__(self, examples: list[Example], seed: int = 0):
        if not examples:
            raise ValueError("the training pool is empty: give at least one example")
        self.pool, self.seed = list(examples), seed

    def examples(self, step: int, rank: int, n: int) -> list[Example]:
        return random.Random(f"pool:{self.seed}:{rank}:{step}").choices(self.pool, k=n)

    def update(self, step: int, metrics: dict, model=None, tokenizer=None) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def labelled_pool(task_name: str, n: int, seed: int = 0, levels=None) -> list[Example]:
    """``n`` fresh generator examples (levels up to the BBH level, uniformly), none of them a validation
    or test input; the first k of the list are the "k labelled examples" of a data-efficiency curve."""
    from workbench.core.train import TaskSampler

    sampler = TaskSampler((task_name,), levels, seed=10_000 + seed)  # not the stream a specialist trains on
    out, seen, step, stale = [], set(), 0, 0
    while len(out) < n:
        before = len(out)
        for ex in sampler.examples(step, 0, 64):
            if ex.input not in seen and len(out) < n:
                seen.add(ex.input)
                out.append(ex)
        stale = stale + 1 if len(out) == before else 0
        if stale == 50:  # 3,200 draws without a new input: the space at these levels is used up
            raise ValueError(f"{task_name} has only about {len(out)} distinct fresh inputs at these levels "
                             f"(validation and test inputs excluded); ask for a pool of at most that, not {n}")
        step += 1
    return out


def fraction(pool: list, share: float) -> list:
    """The first ``share`` of ``pool`` (at least one example): nested subsets, as in Hsieh et al."""
    if not 0 < share <= 1:
        raise ValueError(f"a data fraction must lie in (0, 1], got {share!r}")
    return pool[:max(1, round(share * len(pool)))]


def label_only(examples: list[Example]) -> list[Example]:
    """What plain fine-tuning learns from: the input and its label, no rationale."""
    return [replace(ex, rationale="") for ex in examples]


def teacher_examples(teacher, tokenizer, examples: list[Example], batch_size: int = 32,
                     max_new_tokens: int | None = None) -> list[Example]:
    """Sequence-level distillation data: each input with the teacher's own greedy rationale and answer.

    The teacher answers in the student format (it was trained or fine-tuned on it). An answer the teacher
    never reached (no "So the answer is") becomes an empty target: the example still teaches its steps.
    """
    from workbench.core.evaluate import generate, student_prompt

    if not examples:
        return []
    budget = max_new_tokens or min(4096, int(max(len(tokenizer(ex.rationale or ex.target,
                                                                add_special_tokens=False).input_ids)
                                                 for ex in examples) * 1.25) + 8)
    texts = generate(teacher, tokenizer, [student_prompt(ex.input) for ex in examples], budget, batch_size)
    return [replace(ex, rationale=text.strip(), target=extract_answer(text) or "") for ex, text in zip(examples, texts)]


def agreement(teacher_made: list[Example], gold: list[Example]) -> float:
    """Share of the teacher's answers that match the gold labels (the task's own scorer)."""
    task = task_suite.get(gold[0].task)
    return sum(task.diagnose(t.target, g.target) is None for t, g in zip(teacher_made, gold)) / len(gold)


def step_by_step_examples(labelled: list[Example], rationales: list[Example]) -> list[Example]:
    """Two tasks per input (Hsieh et al.): ``[label] x`` -> the gold label, ``[rationale] x`` -> the teacher's
    rationale. Train answer-only (``rationale=False``); ask with ``label_prompts`` at test time."""
    out = []
    for gold, made in zip(labelled, rationales):
        out.append(replace(gold, input=LABEL_PREFIX + gold.input, rationale=""))
        out.append(replace(gold, input=RATIONALE_PREFIX + gold.input, rationale="", target=made.rationale))
    return out


def label_prompts(examples: list[Example]) -> list[Example]:
    """Test examples asked as the ``[label]`` task of a step-by-step student."""
    return [replace(ex, input=LABEL_PREFIX + ex.input) for ex in examples]
