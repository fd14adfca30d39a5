"""The study of notebook 09, the capstone: one task (tool_call, what an agent's router does) through every stage
of the workbench in one pipeline, each stage measured on the same tool_call level-2 test requests.

    st = studies.capstone.study()
    out = studies.capstone.run(model, tok, card, st)           # every stage, in order (the specialist from recipes)
    print(studies.capstone.table(out["rows"]))                 # a row per stage: params, bytes, p50, calls, minutes
    studies.capstone.waterfall(out["rows"], "accuracy")        # what each stage gained or cost against the one before

The stages: (1) the general baseline, SmolLM2-135M-Instruct prompted with the tool list, constrained; (2) the
shipped specialist (answer-only JSON, curriculum levels 1-4, best validation kept), free and constrained: it is
also the teacher of what follows; (3) structured pruning (MLP neurons, optionally head groups and layers) and a
short recovery distilled from the dense specialist (Hinton et al., 2015: its logits at T=2 plus the labels);
(4) dynamic int8 of the recovered model; (5) ONNX export of the final fp32 model, int8 by ONNX Runtime, with the
greedy-equivalence check; then faithfulness (Integrated Gradients' deletion AUC against random order) of the
final model against the dense one. Speed figures are measurements of one run on the machine named.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from workbench import distill, faithfulness, prune, quantize
from workbench.agent import deploy, runtimes
from workbench.agent.router import Router
from workbench.core import env, report
from workbench.core.measure import count_params, param_bytes
from workbench.core.models import load_pretrained

RECOVERY = ("kd", "finetune", "none")  # distilled from the dense specialist, labels only, no recovery


@dataclass
class Study:
    """What notebook 09 measures, per profile (``study()``)."""

    task: str = "tool_call"  # the agent's task; the stages only make sense for a router
    level: int = 2  # the test level every stage is scored on (the specialist's reference level)
    n: int = 40  # level-2 test requests each specialist stage routes
    pretrained: str = "smollm2-135m-instruct"  # the general baseline
    pretrained_n: int = 3  # its requests: the first of the same ones (~10 s each on one busy CPU core)
    heads: int = 0  # key/value head groups removed per layer (the specialist: 0 or 2 of 4 keep a valid shape)
    neurons: float = 0.5  # share of MLP neurons removed per layer (50%: recovered by distillation)
    layers: int = 0  # decoder layers removed
    calib_n: int = 64  # training texts that score what to remove
    recovery: str = "kd"  # how the pruned model recovers: one of RECOVERY
    recovery_steps: int = 60  # fine-tune steps (batch 32) after pruning
    recovery_lr: float = 1e-3
    temperature: float = 2.0  # of the distillation's softened distributions
    alpha: float = 0.5  # the label loss's share of the distillation loss
    runtime_n: int = 20  # requests through the exported ONNX int8 runtime (no KV cache there: slower)
    check_n: int = 100  # level-2 requests of the export's greedy-equivalence check
    faith_n: int = 6  # questions for the faithfulness table
    faith_steps: int = 50  # Integrated Gradients steps
    faith_random: int = 3  # random orders per question: the floor

    SIZES: ClassVar[dict] = {
        "smoke": dict(n=4, pretrained_n=1, calib_n=8, recovery_steps=4, runtime_n=2, check_n=4,
                      faith_n=2, faith_steps=8, faith_random=1),
        "gpu": dict(n=100, pretrained_n=50, recovery_steps=400, runtime_n=100, faith_n=50, faith_random=5),
    }

    def __post_init__(self):
        if self.task != "tool_call":
            raise ValueError(f"task {self.task!r} is not the capstone's; accepted: 'tool_call' (an agent's router)")
        if self.recovery not in RECOVERY:
            raise ValueError(f"recovery {self.recovery!r} is not a recovery; accepted: {', '.join(RECOVERY)}")
        if not (isinstance(self.neurons, (int, float)) and 0 <= self.neurons < 1):
            raise ValueError(f"neurons {self.neurons!r} is not a share of MLP neurons to remove; accepted: [0, 1)")
        for key in ("n", "pretrained_n", "calib_n", "runtime_n", "check_n", "faith_n", "faith_random"):
            value = getattr(self, key)
            if not (isinstance(value, int) and 1 <= value <= 100):
                raise ValueError(f"{key} {value!r} is not a number of requests; accepted: integers 1 to 100")
        for key in ("heads", "layers", "recovery_steps"):
            value = getattr(self, key)
            if not (isinstance(value, int) and value >= 0):
                raise ValueError(f"{key} {value!r} is not a count; accepted: integers >= 0")
        if not (isinstance(self.faith_steps, int) and self.faith_steps >= 2):
            raise ValueError(f"faith_steps {self.faith_steps!r} is too few; accepted: integers >= 2")


def study(profile: str | None = None, **overrides) -> Study:
    """The study sized for ``profile`` (smoke: seconds)."""
    return env.sized(Study, profile, **overrides)


def requests(st: Study):
    """The level-``st.level`` test requests every specialist stage routes."""
    from workbench.tasks import splits

    return splits.load(st.task, "test", level=st.level, n=st.n)


# the stages --------------------------------------------------------------------------------------------
def compress(model, tokenizer, st: Study) -> dict:
    """Structured pruning of ``model`` (a copy: the dense one stays the teacher), then recovery; returns the
    pruned model before and after recovery and the recovery's training seconds."""
    from workbench.core.models import copy_model
    from workbench.core.train import finetune_config, lm_loss, train

    texts = prune.calibration(st.task, st.calib_n, rationale=False)
    pruned = prune.structured(model, tokenizer, texts, heads=st.heads, neurons=st.neurons, layers=st.layers)
    recovered, seconds = copy_model(pruned), 0.0
    if st.recovery != "none" and st.recovery_steps:
        # the specialist's own recipe: answer only, levels 1-4 (never the held-out level 5)
        cfg = replace(finetune_config(st.task, st.recovery_steps, st.recovery_lr, rationale=False),
                      levels=(1, 2, 3, 4))
        loss = (distill.LogitKD(model, "forward_kl", st.temperature, st.alpha, student_tokenizer=tokenizer,
                                teacher_tokenizer=tokenizer) if st.recovery == "kd" else lm_loss)
        t0 = time.perf_counter()
        train(recovered, tokenizer, cfg, loss_fn=loss, progress=False, validate_at_end=False)
        seconds = time.perf_counter() - t0
    return {"pruned": pruned, "recovered": recovered.eval(), "seconds": seconds}


def stage(label: str, router, examples, nbytes: int, params: int, train_minutes: float) -> dict:
    """One row: ``deploy.serve``'s measurements (batch 1) with the stage's size and its training minutes."""
    row = deploy.serve(label, router, examples, 1, nbytes)
    return {**row, "stage": label, "params": params, "train_minutes": train_minutes}


def int8_bytes(int8, fp32) -> int:
    """Weights of a dynamic-int8 copy of ``fp32``: int8 linear layers plus the float embeddings and norms."""
    return quantize.linear_bytes(int8) + param_bytes(fp32) - quantize.linear_bytes(fp32)


def run(model, tokenizer, card: dict, st: Study | None = None, folder: str | Path | None = None,
        pretrained=None, callback=None) -> dict:
    """Every stage in order on the same requests. ``card``: the specialist's (its ``train_seconds`` are the
    student's training minutes); ``folder``: where the export goes (a temporary folder if None); ``pretrained``:
    (model, tokenizer) of the general baseline, loaded if None. Returns the stage rows, the export check, the
    compressed models and the faithfulness comparison."""
    import tempfile

    st = st or study()
    examples = requests(st)
    rationale = card["train"]["rationale"]
    rows = []

    def add(row):
        prev = rows[-1]["train_minutes_total"] if rows else 0.0
        rows.append({**row, "train_minutes_total": prev + row["train_minutes"]})
        if callback:
            callback(rows[-1])

    pm, pt = pretrained or load_pretrained(st.pretrained)
    add(stage(f"general {st.pretrained}, constrained", Router(pm, pt, kind="chat"), examples[:st.pretrained_n],
              param_bytes(pm), count_params(pm), 0.0))
    minutes = card["train_seconds"] / 60
    fp32, params = param_bytes(model), count_params(model)
    add(stage("specialist, free", Router(model, tokenizer, constrained=False, rationale=rationale), examples,
              fp32, params, minutes))
    add(stage("specialist (teacher), constrained", Router(model, tokenizer, rationale=rationale), examples,
              fp32, params, 0.0))
    small = compress(model, tokenizer, st)
    cut = f"-{st.neurons:.0%} MLP" + (f" -{st.heads}h" if st.heads else "") + (f" -{st.layers}L" if st.layers else "")
    for key, label, mins in (("pruned", f"pruned {cut}, constrained", 0.0),
                             ("recovered", f"pruned + {st.recovery} recovery, constrained", small["seconds"] / 60)):
        m = small[key]
        add(stage(label, Router(m, tokenizer, rationale=rationale), examples, param_bytes(m), count_params(m), mins))
    final = small["recovered"]
    int8 = quantize.dynamic_int8(final)
    add(stage("+ int8 (torch dynamic), constrained", Router(int8, tokenizer, rationale=rationale), examples,
              int8_bytes(int8, final), count_params(final), 0.0))
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="capstone-export-"))
    checks = export_checked(final, tokenizer, folder, st)
    runner = runtimes.OnnxRunner(folder, int8=True, tokenizer=tokenizer)
    add(stage("exported: ONNX Runtime int8, constrained",
              Router(runtimes.AsCausalLM(runner), tokenizer, rationale=rationale), examples[:st.runtime_n],
              runner.bytes, count_params(final), 0.0))
    faith = faithful(model, final, tokenizer, st)
    return {"rows": rows, "checks": checks, "pruned": small["pruned"], "final": final, "int8": int8,
            "folder": folder, "faithfulness": faith}


def export_checked(model, tokenizer, folder: str | Path, st: Study) -> list[dict]:
    """``model`` exported to ``folder`` (``deploy.export_all``) and every runtime checked against PyTorch's greedy
    answers on ``st.check_n`` requests (``deploy.export_check``'s rows)."""
    deploy.export_all(model, tokenizer, folder)
    return deploy.export_check(model, tokenizer, folder, requests(replace(st, n=st.check_n)))


# faithfulness: does compression change what the model looks at? --------------------------------------
def decision_step(gen) -> int:
    """The step that writes the first argument's name (after ``{"arguments":{``): where the router commits to
    a tool; the answer's first token otherwise ("{", the same for every request, explains nothing)."""
    at = gen.text.find('{"arguments":{')
    if at < 0:
        return gen.answer_step
    offset, written = at + len('{"arguments":{'), 0
    for step in range(gen.steps):
        written += len(gen.tokens[gen.prompt_len + step])
        if written > offset:
            return step
    return gen.answer_step


def faithful(dense, final, tokenizer, st: Study) -> list[dict]:
    """Integrated Gradients' faithfulness (deletion and insertion areas, and their margins over random order)
    on the dense specialist and on the final fp32 model, at each request's decision step. The int8 copy is left
    out: torch's dynamic int8 kernels have no gradient, and IG needs one."""
    questions = [e.input for e in requests(replace(st, n=st.faith_n))]
    rows = []
    for label, m in (("dense specialist", dense), ("final (pruned + recovered, fp32)", final)):
        res = faithfulness.measure(m, tokenizer, questions, methods=("integrated_gradients",),
                                   n_random=st.faith_random, n_steps=st.faith_steps, max_new_tokens=160,
                                   step=decision_step)
        for r in res.rows:
            rows.append({"model": label, "questions": res.examples, **r})
    return rows


# tables, the waterfall, the record --------------------------------------------------------------------
HIGHER_IS_BETTER = {"accuracy": True, "valid_call": True, "valid_json": True, "bytes": False, "p50_ms": False,
                    "params": False, "train_minutes": False}


def waterfall(rows: list[dict], metric: str) -> list[dict]:
    """Each stage's change in ``metric`` against the stage before it (the first stage: its own value, from 0),
    and whether the change is a gain (``better``: up for calls, down for bytes, params, latency, minutes)."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"metric {metric!r} has no waterfall; accepted: {', '.join(HIGHER_IS_BETTER)}")
    if not rows:
        raise ValueError("no stages to draw a waterfall of")
    out, prev = [], 0.0
    for r in rows:
        value = float(r[metric])
        delta = value - prev
        out.append({"stage": r["stage"], "start": prev, "end": value, "delta": delta,
                    "better": delta == 0 or (delta > 0) == HIGHER_IS_BETTER[metric]})
        prev = value
    return out


def table(rows: list[dict]) -> str:
    """The cumulative table: a row per stage."""
    return report.table(rows, {
        "stage": "{stage}", "requests": "{n}", "params": "{params:,}", "weights, bytes": "{bytes:,}",
        "p50 ms (batch 1)": "{p50_ms:.0f}", "exact calls": "{accuracy:.0%}", "valid calls": "{valid_call:.0%}",
        "training min (stage)": "{train_minutes:.1f}", "training min (cumulative)": "{train_minutes_total:.1f}"})


def delta_table(rows: list[dict]) -> str:
    """What each stage changed against the one before: exact calls (points), bytes and p50 (ratios)."""
    acc, size, p50 = (waterfall(rows, m) for m in ("accuracy", "bytes", "p50_ms"))
    lines = [{"stage": a["stage"], "exact": f"{100 * a['delta']:+.0f}" if i else f"{100 * a['end']:.0f}",
              "bytes": f"x{b['end'] / b['start']:.3g}" if i and b["start"] else f"{b['end']:,.0f}",
              "p50": f"x{p['end'] / p['start']:.3g}" if i and p["start"] else f"{p['end']:.0f} ms"}
             for i, (a, b, p) in enumerate(zip(acc, size, p50))]
    return report.table(lines, {"stage": "{stage}", "exact calls, points": "{exact}",
                                "bytes, against the stage before": "{bytes}", "p50, against the stage before": "{p50}"})


def faithfulness_table(rows: list[dict]) -> str:
    return report.table(rows, {
        "model": "{model}", "order": "{method}", "questions": "{questions}", "deletion AUC ↓": "{deletion_auc:.3f}",
        "insertion AUC ↑": "{insertion_auc:.3f}", "deletion gain over random": "{deletion_gain:+.3f}"})


def export_table(rows: list[dict]) -> str:
    return report.table(rows, {"runtime": "{runtime}", "greedy answers identical to PyTorch": "{identical}/{n}",
                               "closest top-1/top-2 margin": "{min_margin:.4f}", "bytes on disk": "{bytes:,}"})


def record(out: dict) -> dict:
    """The stage rows, the export check and the faithfulness margins, in ``report``'s results."""
    values = report.record_rows("capstone", out["rows"], label="stage", metrics={
        "accuracy": "exact_pct", "valid_call": "valid_call_pct", "p50_ms": "p50_ms", "bytes": "bytes",
        "params": "params", "train_minutes_total": "train_minutes_total"})
    values.update(report.record_rows("capstone/export", [{**c, "of": f"{c['identical']}/{c['n']}"}
                                                          for c in out["checks"]], label="runtime",
                                     metrics={"of": "identical"}))
    ig = [r for r in out["faithfulness"] if r["method"] != "random"]
    values.update(report.record_rows("capstone/faithfulness", ig, metrics={"deletion_gain": "ig_deletion_gain"}))
    return values
