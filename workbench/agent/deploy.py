"""Deployment measurements: the tool_call specialist as an agent's router, against a general model.

    row = deploy.serve("specialist", Router(model, tok), deploy.requests(100))   # one router, end to end
    checks = deploy.export_check(model, tok, deploy.export_all(model, tok, "artifacts/tool_call_export"))

``studies.deployment.benchmark`` runs ``serve`` for every router side by side (``bench agent`` and notebook 08).

Each row sends the same requests (the tool_call test split, every level) end to end through
``agent.Router``: input checks, the model, parsing, the registry's schema and allow-list check,
execution. It reports exact-call accuracy, the share of replies that parse as JSON and that are
valid calls, p50/p95 latency per request, requests per second (batched where the path allows it),
the peak memory the serving added, which decoder ran (``Router.decoder``: lean or transformers) and
the share of the requests' time in the model's forward passes, in the grammar's choice of tokens
and in the rest (Python: checks, prompt, decoding loop, parsing, the tool). Inside transformers'
``generate`` the model's share cannot be told apart, so those rows leave it out. Speed figures
are measurements of one run on the machine named, never assertions.

``export_check`` answers "are the exported models' greedy answers identical to PyTorch's?" on the
whole test split at the cost of one forward per request: greedy decoding is decided by the argmax
at every prefix, so a runtime that, fed PyTorch's greedy sequence, picks the same token at every
position (and the same end) decodes exactly that sequence itself. The smallest top-1/top-2 logit
margin says how far any position was from a tie.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from workbench.core.measure import PeakRSS


def requests(n: int):
    """``n`` tool_call test examples spread evenly over the split (so every level is in)."""
    from workbench.tasks import splits

    examples = splits.load("tool_call", "test")
    if not 1 <= n <= len(examples):
        raise ValueError(f"n must be between 1 and {len(examples)} (the test split), got {n}")
    return [examples[int(i * len(examples) / n)] for i in range(n)]


def serve(label: str, router, examples, batch: int = 1, model_bytes: int | None = None) -> dict:
    """One benchmark row: ``examples`` routed end to end (``batch`` at a time where the path batches)."""
    from workbench.agent.router import canonical

    router.route_many([examples[0].input], batch_size=1)  # warm-up: thread pools, first-call work
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        decisions = router.route_many([e.input for e in examples], batch_size=batch)
        seconds = time.perf_counter() - t0
    ms = [d.latency_ms for d in decisions]
    p50, p95 = np.percentile(ms, [50, 95])
    n = len(examples)
    return {"router": label, "n": n, "batch": batch, "decoder": router.decoder, **time_shares(decisions),
            "accuracy": sum(d.call is not None and canonical(d.call) == e.target
                            for d, e in zip(decisions, examples)) / n,
            "valid_json": sum(d.call is not None for d in decisions) / n,
            "valid_call": sum(d.valid or d.no_tool for d in decisions) / n,
            "p50_ms": float(p50), "p95_ms": float(p95), "requests_per_s": n / seconds,
            "peak_mb": mem.peak_mb, "bytes": model_bytes,
            "answers": [canonical(d.call) if d.call is not None else None for d in decisions]}


def time_shares(decisions) -> dict:
    """Shares of the decisions' total time in the model, the grammar and the rest (None where ``generate``
    hid the model's part), tokens per second of that time, tokens per request and the share of them the grammar
    forced (fed without a model step: jump-forward), and the split as a table cell."""
    total = sum(d.latency_ms for d in decisions) or 1e-9
    if any(d.model_ms is None for d in decisions):
        return {"model_share": None, "grammar_share": None, "python_share": None, "tokens_per_s": None,
                "tokens_per_request": None, "jumped_share": None, "time_split": "— (generate)"}
    model, grammar = sum(d.model_ms for d in decisions) / total, sum(d.grammar_ms for d in decisions) / total
    tokens = sum(d.tokens for d in decisions)
    return {"model_share": model, "grammar_share": grammar, "python_share": 1 - model - grammar,
            "tokens_per_s": 1000 * tokens / total,
            "tokens_per_request": tokens / len(decisions),  # written, and of them forced (jump-forward)
            "jumped_share": sum(d.jumped for d in decisions) / tokens if tokens else 0.0,
            "time_split": f"{model:.0%} / {grammar:.0%} / {1 - model - grammar:.0%}"}


def export_all(model, tokenizer, out: str | Path) -> Path:
    """ONNX fp32 and int8 (without and with a KV cache) and torch.export versions of ``model`` in folder ``out``."""
    from workbench.agent import export

    export.quantize_onnx(export.to_onnx(model, out, tokenizer))
    export.quantize_onnx(export.to_onnx_kv(model, out, tokenizer))
    export.to_torch_export(model, out, tokenizer)
    return Path(out)


def decisions_table(decisions) -> str:
    """What the router did with each request: the call, or the refusal and why."""
    import json

    lines = ["| request | call | outcome |", "|---|---|---|"]
    for d in decisions:
        req = d.request if len(d.request) <= 60 else f"{d.request[:57]}... ({len(d.request):,} chars)"
        call = json.dumps(d.call, sort_keys=True) if d.call is not None else "—"
        outcome = f"refused: {d.reason}" if d.refused else f"executed: {json.dumps(d.result, default=str)[:80]}"
        cells = (x.replace("|", "\\|").replace("\n", " ") for x in (req or "(empty)", call, outcome))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# exported runtimes: identical greedy answers --------------------------------------------------------
def greedy_agreement(runner, tokenizer, prompts: list[str], completions: list[list[int]]) -> list[dict]:
    """For each prompt: does ``runner`` pick every token of the reference greedy completion (its ids,
    ending with eos if it stopped there)? ``Runner.completion_logits``: one forward over prompt + completion
    per example (a KV-cache runner: the prompt, then one cached step per token, as it decodes); ``margin``
    is the smallest top-1 minus top-2 logit over the completion's positions."""
    out = []
    for prompt, c in zip(prompts, completions):
        c = list(c)
        at = np.asarray(runner.completion_logits(tokenizer(prompt).input_ids, c), dtype=np.float64)  # [len(c), V]
        top2 = np.sort(at, axis=-1)[:, -2:]
        chosen = at[np.arange(len(c)), c] >= at.max(-1)  # the reference token is a maximum (a tie counts)
        out.append({"identical": bool(chosen.all()), "mismatches": int((~chosen).sum()),
                    "margin": float((top2[:, 1] - top2[:, 0]).min())})
    return out


def export_check(model, tokenizer, folder: str | Path, examples=None, batch_size: int = 32) -> list[dict]:
    """Per runtime (PyTorch's own full-sequence forward, ONNX fp32/int8 without and with a KV cache,
    torch.export): how many of the
    test split's greedy completions it reproduces exactly, the closest call to a tie, bytes on disk."""
    from workbench.agent import runtimes
    from workbench.core.evaluate import EvalConfig, answer_budget, generate, student_prompt
    from workbench.tasks import splits

    examples = examples or splits.load("tool_call", "test")
    prompts = [student_prompt(e.input) for e in examples]
    budget = answer_budget(tokenizer, examples, EvalConfig(rationale=True))
    reference = generate(model, tokenizer, prompts, budget, batch_size, ids=True)  # transformers, KV cache
    rows = []
    for runner in (runtimes.TorchRunner(model, tokenizer), runtimes.OnnxRunner(folder, tokenizer=tokenizer),
                   runtimes.OnnxRunner(folder, int8=True, tokenizer=tokenizer),
                   runtimes.OnnxKVRunner(folder, tokenizer=tokenizer),
                   runtimes.OnnxKVRunner(folder, int8=True, tokenizer=tokenizer),
                   runtimes.ExportedRunner(folder, tokenizer=tokenizer)):
        t0 = time.perf_counter()
        agree = greedy_agreement(runner, tokenizer, prompts, reference)
        rows.append({"runtime": runner.runtime, "n": len(agree), "identical": sum(a["identical"] for a in agree),
                     "min_margin": min(a["margin"] for a in agree), "bytes": runner.bytes,
                     "seconds": time.perf_counter() - t0})
    return rows
