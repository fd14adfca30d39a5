"""Benchmarks (``python -m workbench bench train``): measured speed, never a timed test.

Training throughput is counted the usual way, 6 x parameters x tokens per second (forward and
backward matmuls; Kaplan et al., 2020), and set beside this machine's fp32 matmul rate measured
in the same run, so the ratio says how much of the hardware the training loop uses.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch


def train_throughput(task: str = "boolean_expressions", profile: str | None = None, steps: int = 120,
                     batch_size: int | None = None) -> dict:
    """Tokens per second and model GFLOP/s of the profile's recipe for ``task`` (at ``batch_size``, default the
    recipe's), over ``steps`` steps, and the share of that time spent generating the examples (``data_share``)."""
    from workbench.core import env
    from workbench.core import train as tr
    from workbench.core.measure import count_params
    from workbench.core.models import student
    from workbench.core.recipes import recipe
    from workbench.core.tokenizer import CharTokenizer

    model_cfg, train_cfg = recipe(task, profile, batch_size=batch_size)
    bucket = train_cfg.bucket
    steps = max(bucket, steps // bucket * bucket)
    cfg = replace(train_cfg, steps=steps + 2 * bucket, eval_every=0, checkpoint_every=0, warmup=1, log_every=bucket)
    tok = CharTokenizer()
    env.set_seed(0)
    model = student(model_cfg, tok)
    params = count_params(model)
    times: list[float] = []
    marks = {"t": time.perf_counter()}

    def clock(rec):  # one record per bucket; the first two are warm-up (and compilation) and not counted
        if "loss" in rec:
            now = time.perf_counter()
            times.append(now - marks["t"])
            marks["t"] = now

    sampler = tr.sampler_for(cfg)
    draw, drawing = sampler.examples, []

    def timed_draw(*args):  # generating a bucket's examples: once per bucket, on the loop's critical path
        t = time.perf_counter()
        out = draw(*args)
        drawing.append(time.perf_counter() - t)
        return out

    sampler.examples = timed_draw
    res = tr.train(model, tok, cfg, sampler=sampler, callbacks=[clock], progress=False, validate_at_end=False)
    timed = sum(times[2:])
    tokens = res.tokens * steps / cfg.steps  # mean tokens per step x timed steps
    tok_s = tokens / timed
    return {"task": task, "profile": env.profile_name(profile), "params": params, "steps_timed": steps,
            "batch_size": cfg.batch_size, "seconds_per_step": timed / steps, "tokens_per_s": tok_s,
            "model_gflops": 6 * params * tok_s / 1e9,
            "data_share": sum(drawing[2:]) / timed}  # of step time, generating examples


def bench_train(task: str = "boolean_expressions", profile: str | None = None, steps: int = 120,
                batch_size: int | None = None) -> dict:
    from workbench.core.env import machine
    from workbench.core.measure import matmul_gflops

    peak = matmul_gflops()
    out = train_throughput(task, profile, steps, batch_size)
    out.update(matmul_gflops=peak, fraction_of_matmul=out["model_gflops"] / peak, machine=machine())
    return out


def bench_explain(task: str = "boolean_expressions", profile: str | None = None, context: int = 64,
                  n_steps: int = 50, repeats: int = 5) -> dict:
    """Integrated Gradients (``n_steps``) for one generated token of the task's specialist, over a
    ``context``-token context (prompt + rationale so far): median seconds over ``repeats`` after a warm-up."""
    import statistics

    from workbench import explain, tasks
    from workbench.core.env import machine
    from workbench.core.recipes import specialist
    from workbench.tasks import splits

    model, tok, card = specialist(task, profile, progress=False)
    task_ = tasks.get(task)
    examples = splits.load(task, "test", level=max(task_.levels))
    gen = next((g for g in (explain.generation(model, tok, e.input) for e in examples)
                if g.prompt_len <= context < len(g.ids)), None)
    if gen is None:
        raise ValueError(f"no {task} test question has a generation of at least {context} tokens")
    step = context - gen.prompt_len
    explain.attribute(model, tok, gen, step, "integrated_gradients", n_steps=n_steps)  # warm-up
    times, deltas = [], []
    for _ in range(repeats):
        att = explain.attribute(model, tok, gen, step, "integrated_gradients", n_steps=n_steps)
        times.append(att.seconds)
        deltas.append(att.delta)
    return {"task": task, "params": card["params"], "context_tokens": context, "n_steps": n_steps,
            "seconds": statistics.median(times), "ig_delta": statistics.median(deltas),
            "threads": torch.get_num_threads(), "machine": machine()}


def _tool_call_student(model: str | None, profile: str | None):
    """(model, tokenizer, card) of a tool_call student's folder, or of the profile's specialist when None."""
    from workbench.core.env import profile_name
    from workbench.core.models import load_pretrained
    from workbench.core.recipes import specialist

    if model is None:
        return specialist("tool_call", profile_name(profile), progress=False)
    from workbench.core.artifacts import read_card

    card = read_card(model) if (Path(model) / "workbench.json").exists() else {}
    return (*load_pretrained(model), card)


def bench_router(model: str | None = None, profile: str | None = None, level: int = 2, n: int = 50,
                 repeats: int = 3, max_new_tokens: int | None = None, onnx: bool = True) -> dict:
    """The router's decode paths, lean (``workbench.agent.lean``) and transformers (its forward per token,
    ``generate`` when free), on the same ``n`` tool_call test requests of ``level`` (2: the reference level).

    Requests go through the paths interleaved, one request to each path in turn (the order rotating), so
    a machine busy with other work slows every path alike; p50/p95 ms per request are medians over
    ``repeats`` passes. Also per path: the share of time in the model, the grammar and Python, tokens
    per second, and how many replies are identical to the transformers path's (the lean path must write
    the same tokens). ``model``: a tool_call student's folder (default: the profile's cached specialist);
    ``max_new_tokens``: its rationale budget (None: the router's default). ``onnx``: also the constrained path
    on onnxruntime with a KV cache (``export.to_onnx_kv``, fp32 and int8, exported to a temporary folder), decoded
    by the lean decoder (``runtimes.OnnxStep``). The lean paths feed the characters the grammar forces without a
    step each (jump-forward); "constrained, lean, no jump-forward" is the same path one step per token."""
    import statistics

    import numpy as np

    from workbench.agent.deploy import time_shares
    from workbench.agent.router import Router
    from workbench.core.env import machine, profile_name
    from workbench.tasks import splits

    lm, tok, card = _tool_call_student(model, profile)
    rationale = card.get("train", {}).get("rationale", True)
    requests = [e.input for e in splits.load("tool_call", "test", level=level, n=n)]
    paths = {f"{mode}, {dec}": Router(lm, tok, constrained=mode == "constrained", lean=dec == "lean",
                                       rationale=rationale, max_new_tokens=max_new_tokens)
             for mode in ("constrained", "free") for dec in ("lean", "transformers")}
    paths["constrained, lean, no jump-forward"] = Router(lm, tok, jump=False, rationale=rationale,
                                                         max_new_tokens=max_new_tokens)
    tmp = None
    if onnx:
        import tempfile

        from workbench.agent import export, runtimes

        tmp = tempfile.TemporaryDirectory(prefix="bench-router-")
        export.to_onnx_kv(lm, tmp.name, tokenizer=tok)
        export.quantize_onnx(export.onnx_file(tmp.name, kv=True))
        for int8 in (False, True):
            runner = runtimes.OnnxKVRunner(tmp.name, int8=int8, tokenizer=tok, threads=torch.get_num_threads())
            paths[f"constrained, {runner.runtime}"] = Router(runtimes.AsCausalLM(runner), tok, rationale=rationale,
                                                              max_new_tokens=max_new_tokens)
    for r in paths.values():
        r.route(requests[0])  # warm-up: thread pools, the lean step's tables
    runs = {p: [[] for _ in range(repeats)] for p in paths}
    for rep in range(repeats):
        for i, req in enumerate(requests):
            names = list(paths)
            k = (i + rep) % len(names)  # rotate who goes first
            for p in names[k:] + names[:k]:
                runs[p][rep].append(paths[p].route(req))
    rows = []
    for p, reps in runs.items():
        ms = [[d.latency_ms for d in ds] for ds in reps]
        ref = runs[("free" if p.startswith("free") else "constrained") + ", transformers"]
        rows.append({"path": p, "decoder": paths[p].decoder, "n": len(requests), "repeats": repeats,
                     "p50_ms": statistics.median(float(np.percentile(m, 50)) for m in ms),
                     "p95_ms": statistics.median(float(np.percentile(m, 95)) for m in ms),
                     "same_replies": sum(a.raw == b.raw for a, b in zip(reps[0], ref[0])),
                     **time_shares([d for ds in reps for d in ds])})
    if tmp is not None:
        tmp.cleanup()
    return {"model": model or f"tool_call specialist ({profile_name(profile)})", "level": level,
            "threads": torch.get_num_threads(), "machine": machine(), "rows": rows}


def router_table(rows: list[dict]) -> str:
    """``bench_router``'s rows as a markdown table."""
    from workbench.core.report import table

    rows = [{**r, "tokens": "—" if r.get("tokens_per_request") is None else f"{r['tokens_per_request']:.0f}",
             "jumped": "—" if r.get("jumped_share") is None else f"{r['jumped_share']:.0%}"} for r in rows]
    return table(rows, {"path": "{path}", "decoder": "{decoder}", "requests x repeats": "{n} x {repeats}",
                        "p50 ms": "{p50_ms:.1f}", "p95 ms": "{p95_ms:.1f}", "model / grammar / Python": "{time_split}",
                        "tokens / request": "{tokens}", "forced, no step": "{jumped}",
                        "replies = transformers": "{same_replies}/{n}"})


def bench_grammars(model: str | None = None, profile: str | None = None, levels: tuple[int, ...] = (2, 5),
                   n: int = 50, repeats: int = 1) -> dict:
    """Our grammar against the JSON Schema libraries installed (``workbench.agent.libgrammars.compare``) on the
    same ``n`` tool_call test requests of each of ``levels`` (2: the reference level, 5: held out), interleaved.
    ``model``: an answer-only tool_call student's folder (default: the profile's specialist)."""
    from workbench.agent import libgrammars
    from workbench.core.env import machine, profile_name
    from workbench.tasks import splits

    lm, tok, card = _tool_call_student(model, profile)
    rationale = card.get("train", {}).get("rationale", True)
    rows = []
    for level in levels:
        examples = splits.load("tool_call", "test", level=level, n=n)
        for row in libgrammars.compare(lm, tok, [e.input for e in examples], [e.target for e in examples],
                                       rationale=rationale, repeats=repeats):
            rows.append({**row, "level": level, "path": f"level {level}: {row['path']}"})
    return {"model": model or f"tool_call specialist ({profile_name(profile)})", "levels": list(levels),
            "threads": torch.get_num_threads(), "machine": machine(), "rows": rows}


def bench_agent(profile: str | None = None, out: str = "artifacts/tool_call_export", model: str | None = None) -> dict:
    """The tool_call specialist as an agent's router (fp32, int8, ONNX) against the pretrained instruct
    model, on the profile's requests; the exported models checked against PyTorch on the whole test split.
    ``model``: a folder with another tool_call student (``python -m workbench train --out``) instead of
    the profile's cached specialist.

    ``out`` follows the rules of training's ``--out``: absent, empty, or a folder an earlier export wrote (its
    exported files are replaced, nothing else there is touched), and one run at a time (``files.locked``)."""
    from workbench.core.artifacts import check_writable
    from workbench.core.env import machine, profile_name
    from workbench.core.files import check_export_folder, locked

    prof = profile_name(profile)
    check_export_folder(out)  # before a model loads
    with locked(check_writable(out)):
        check_export_folder(out)  # again, under the lock: another run may have just written there
        return _bench_agent(prof, out, model, machine())


def _bench_agent(prof: str, out: str, model: str | None, machine: str) -> dict:
    from workbench.agent import deploy
    from workbench.agent.lean import LeanLlama
    from workbench.core.models import load_pretrained
    from workbench.core.recipes import specialist
    from workbench.studies import deployment

    st = deployment.study(prof)
    if model is not None:
        from workbench.core.artifacts import read_card

        card = read_card(model) if (Path(model) / "workbench.json").exists() else {}
        model, tok = load_pretrained(model)
    else:
        model, tok, card = specialist("tool_call", prof, progress=False)
    folder = deploy.export_all(model, tok, out)
    rows = deployment.benchmark(model, tok, st, folder=folder, rationale=card.get("train", {}).get("rationale", True))
    checks = deploy.export_check(model, tok, folder)
    for r in rows:
        r.pop("answers")
    formats = []
    if LeanLlama.unsupported(model) is None:  # what each reply format costs to write, on the lean step
        formats = deployment.reply_formats(LeanLlama(model), tok, n=st.format_n, repeats=st.format_repeats)
    return {"profile": prof, "machine": machine, "rows": rows, "checks": checks, "formats": formats,
            "verdict": deployment.verdict(rows, checks), "table": deployment.table(rows),
            "export_table": deployment.export_table(checks),
            "format_table": deployment.format_table(formats) if formats else ""}
