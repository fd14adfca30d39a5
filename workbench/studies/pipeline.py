"""The agent pipeline the pattern notebooks build together, one stage each, on the agent's task (tool_call):
notebook 04 prunes the shipped specialist and recovers it, 05 quantizes the pruned model, 07 explains the dense
and the compressed model side by side, 08 exports the compressed one and routes requests with it. Each starts
from the model the stage before saved (``~/.cache/workbench/stages/tool_call-PROFILE/``) and adds its row to one
running table kept by ``report`` (``report.add_row("pipeline", ...)``). The stages are the capstone's
(``studies.capstone``: notebook 09 runs them all in one call), so the two tables measure the same pipeline.

    st = pipeline.study()
    model, tok, card = pipeline.specialist()                      # the shipped tool_call specialist
    pipeline.add("specialist", model, tok, card, st)              # its row
    small, seconds = pipeline.pruned(model, tok, card, st)        # notebook 04 makes it; 05, 07, 08 load it
    pipeline.exported(small, tok, card, st, "exports/pruned")     # notebook 08: exported, checked, routed
    report.show(pipeline.table())                                 # every stage so far, in pipeline order
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from workbench import quantize
from workbench.agent import runtimes
from workbench.agent.router import Router
from workbench.core import env, recipes, report
from workbench.core.artifacts import is_model_folder, read_card, save_model
from workbench.core.measure import count_params, param_bytes
from workbench.core.models import cache_dir, load_pretrained
from workbench.studies import capstone

Study = capstone.Study  # the stages are the capstone's, sized the same way per profile
TASK = "tool_call"
TABLE = "pipeline"
# stage: (the notebook that adds it, its row's label)
STAGES = {
    "specialist": ("04", "specialist (dense, shipped), constrained"),
    "pruned": ("04", "pruned + recovery (distilled), constrained"),
    "int8": ("05", "+ int8 (torch dynamic), constrained"),
    "exported": ("08", "exported: ONNX Runtime int8 KV cache, constrained"),
}
# what the pruned stage was made from and how: a saved one made otherwise is made again
PRUNING = ("heads", "neurons", "layers", "calib_n", "recovery", "recovery_steps", "recovery_lr", "temperature",
           "alpha")


def study(profile: str | None = None, **overrides) -> Study:
    """The capstone's sizes for ``profile``: the pipeline's stages are the capstone's, on the same requests."""
    return capstone.study(profile, **overrides)


def specialist(profile: str | None = None):
    """(model, tokenizer, card) of the tool_call specialist the pipeline starts from (the shipped one in laptop)."""
    return recipes.specialist(TASK, profile)


def stage_folder(stage: str, profile: str | None = None) -> Path:
    """Where ``stage``'s model is kept between notebooks."""
    return cache_dir() / "stages" / f"{TASK}-{env.profile_name(profile)}" / stage


def pruned(model, tokenizer, card: dict, st: capstone.Study, profile: str | None = None):
    """(pruned and recovered model, the recovery's training seconds): loaded from the stage folder when it was
    made from this specialist (its card's recipe key) with ``st``'s pruning, else made here
    (``capstone.compress``: structured pruning, then recovery distilled from ``model``) and saved there."""
    folder = stage_folder("pruned", profile)
    made_from = {"specialist": card.get("recipe_key"), **{k: asdict(st)[k] for k in PRUNING}}
    if is_model_folder(folder):
        saved = read_card(folder)
        if saved.get("made_from") == made_from:
            small, _ = load_pretrained(str(folder))
            return small, saved["recovery_seconds"]
        print(f"{folder} was made from another specialist or pruning; pruning again", flush=True)
    out = capstone.compress(model, tokenizer, st)
    small = out["recovered"]
    save_model(folder, small, tokenizer, {
        "name": f"{TASK} specialist, pruned and recovered (pipeline stage)", "tasks": [TASK],
        "profile": env.profile_name(profile), "made_from": made_from, "recovery_seconds": out["seconds"],
        "params": count_params(small), "machine": env.machine()})
    return small, out["seconds"]


def int8(model):
    """(dynamic int8 copy of ``model``, its weight bytes): linear layers in int8, embeddings and norms as they were."""
    q = quantize.dynamic_int8(model)
    return q, capstone.int8_bytes(q, model)


def add(stage: str, model, tokenizer, card: dict, st: capstone.Study, nbytes: int | None = None,
        params: int | None = None, train_minutes: float = 0.0, profile: str | None = None) -> dict:
    """Route ``st``'s requests with ``model`` (constrained, the specialist's reply format from ``card``) and put
    the stage's row in the running table; ``nbytes`` and ``params`` default to the model's own."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r} is not a pipeline stage; accepted: {', '.join(STAGES)}")
    router = Router(model, tokenizer, rationale=card["train"]["rationale"])
    examples = capstone.requests(st)
    row = capstone.stage(STAGES[stage][1], router, examples, param_bytes(model) if nbytes is None else nbytes,
                         count_params(model) if params is None else params, train_minutes)
    keep = {k: row[k] for k in ("n", "params", "bytes", "p50_ms", "accuracy", "valid_call", "train_minutes")}
    report.add_row(TABLE, {"stage": stage, "notebook": STAGES[stage][0], "label": STAGES[stage][1], **keep},
                   profile=profile)
    return row


def exported(model, tokenizer, card: dict, st: capstone.Study, folder: str | Path,
             profile: str | None = None) -> list[dict]:
    """Notebook 08's stage: ``model`` exported to ``folder`` (``deploy.export_all``), checked against PyTorch's
    greedy answers on ``st.n`` requests (``deploy.export_check``), then routing through ONNX Runtime's int8
    KV-cache graph as the stage's row. Returns the check's rows."""
    checks = capstone.export_checked(model, tokenizer, folder, st)
    runner = runtimes.OnnxKVRunner(folder, int8=True, tokenizer=tokenizer)
    add("exported", runtimes.AsCausalLM(runner), tokenizer, card, st, nbytes=runner.bytes, params=count_params(model),
        profile=profile)
    return checks


def add_faithfulness(rows: list[dict], profile: str | None = None) -> list[dict]:
    """Notebook 07's column: Integrated Gradients' deletion gain over random order (``capstone.faithful``'s
    rows) on the dense specialist and on the compressed model, beside their rows."""
    gains = {r["model"]: r["deletion_gain"] for r in rows if r["method"] != "random"}
    out = []
    for model_label, stage in (("dense specialist", "specialist"), ("final (pruned + recovered, fp32)", "pruned")):
        if model_label in gains:
            out = report.add_row(TABLE, {"stage": stage, "ig_deletion_gain": gains[model_label]}, profile=profile)
    return out


def rows(profile: str | None = None) -> list[dict]:
    """The running table's rows in pipeline order, with cumulative training minutes."""
    got = sorted(report.rows(TABLE, profile), key=lambda r: list(STAGES).index(r["stage"]))
    total, out = 0.0, []
    for r in got:
        total += r.get("train_minutes") or 0.0
        out.append({**r, "train_minutes_total": total})
    return out


def table(profile: str | None = None) -> str:
    """The running table as markdown: a row per stage the notebooks have measured so far ("—": no IG column yet)."""
    lines = [{**r, "gain": "—" if r.get("ig_deletion_gain") is None else f"{r['ig_deletion_gain']:+.3f}"}
             for r in rows(profile) if "params" in r]  # a row 07 annotated before its stage was measured waits
    return report.table(lines, {
        "notebook": "{notebook}", "stage": "{label}", "requests": "{n}", "params": "{params:,}",
        "weights, bytes": "{bytes:,}", "p50 ms (batch 1)": "{p50_ms:.0f}", "exact calls": "{accuracy:.0%}",
        "valid calls": "{valid_call:.0%}", "IG deletion gain": "{gain}",
        "training min (cumulative)": "{train_minutes_total:.1f}"})
