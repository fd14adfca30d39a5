"""Benchmarks (``python -m workbench bench train``): measured speed, never a timed test.

Training throughput is counted the usual way, 6 x parameters x tokens per second (forward and
backward matmuls; Kaplan et al., 2020), and set beside this machine's fp32 matmul rate measured
in the same run, so the ratio says how much of the hardware the training loop uses.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 GFLOP/s of an n x n x n matmul on the current device (best of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


@torch.no_grad()
def forward_latency(model, batch: int, length: int = 128, repeats: int = 9, warmup: int = 3) -> float:
    """Median milliseconds of one forward pass over ``batch`` x ``length`` tokens, after ``warmup`` passes
    (the first passes pay for thread start-up and memory allocation, and would flatter what comes next)."""
    import statistics

    was = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(4, model.config.vocab_size, (batch, length), generator=gen).to(device)
    for _ in range(warmup):
        model(input_ids=x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(input_ids=x)
        times.append(time.perf_counter() - t0)
    model.train(was)
    return 1000 * statistics.median(times)


def train_throughput(task: str = "boolean_expressions", profile: str | None = None, steps: int = 120) -> dict:
    """Tokens per second and model GFLOP/s of the profile's recipe for ``task``, over ``steps`` steps."""
    from . import env
    from . import train as tr
    from .models import count_params, student
    from .recipes import recipe
    from .tokenizer import CharTokenizer

    model_cfg, train_cfg = recipe(task, profile)
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

    res = tr.train(model, tok, cfg, callbacks=[clock], progress=False, validate_at_end=False)
    timed = sum(times[2:])
    tokens = res.tokens * steps / cfg.steps  # mean tokens per step x timed steps
    tok_s = tokens / timed
    return {"task": task, "profile": env.profile_name(profile), "params": params, "steps_timed": steps,
            "tokens_per_s": tok_s, "model_gflops": 6 * params * tok_s / 1e9}


def bench_train(task: str = "boolean_expressions", profile: str | None = None, steps: int = 120) -> dict:
    from .env import machine

    peak = matmul_gflops()
    out = train_throughput(task, profile, steps)
    out.update(matmul_gflops=peak, fraction_of_matmul=out["model_gflops"] / peak, machine=machine())
    return out


def bench_explain(task: str = "boolean_expressions", profile: str | None = None, context: int = 64,
                  n_steps: int = 50, repeats: int = 5) -> dict:
    """Integrated Gradients (``n_steps``) for one generated token of the task's specialist, over a
    ``context``-token context (prompt + rationale so far): median seconds over ``repeats`` after a warm-up."""
    import statistics

    from . import explain, tasks
    from .env import machine
    from .recipes import specialist
    from .tasks import splits

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


def bench_agent(profile: str | None = None, out: str = "artifacts/tool_call_export", model: str | None = None) -> dict:
    """The tool_call specialist as an agent's router (fp32, int8, ONNX) against the pretrained instruct
    model, on the profile's requests; the exported models checked against PyTorch on the whole test split.
    ``model``: a folder with another tool_call student (``python -m workbench train --out``) instead of
    the profile's cached specialist."""
    from . import deploy
    from .env import machine, profile_name
    from .models import load_pretrained
    from .recipes import specialist

    prof = profile_name(profile)
    st = deploy.study(prof)
    if model is not None:
        model, tok = load_pretrained(model)
    else:
        model, tok, _ = specialist("tool_call", prof, progress=False)
    folder = deploy.export_all(model, tok, out)
    rows = deploy.benchmark(model, tok, st, folder=folder)
    checks = deploy.export_check(model, tok, folder)
    for r in rows:
        r.pop("answers")
    return {"profile": prof, "machine": machine(), "rows": rows, "checks": checks,
            "verdict": deploy.verdict(rows, checks), "table": deploy.table(rows),
            "export_table": deploy.export_table(checks)}
