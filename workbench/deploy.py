"""Deployment measurements: the tool_call specialist as an agent's router, against a general model.

    study = deploy.study()                          # sizes per profile
    rows = deploy.benchmark(model, tok, study)      # `python -m workbench bench agent` runs this
    print(deploy.table(rows))
    checks = deploy.export_check(model, tok, deploy.export_all(model, tok, "artifacts/tool_call_export"))

Each row sends the same requests (the tool_call test split, every level) end to end through
``agent.Router``: input checks, the model, parsing, the registry's schema and allow-list check,
execution. It reports exact-call accuracy, the share of replies that parse as JSON and that are
valid calls, p50/p95 latency per request, requests per second (batched where the path allows it)
and the peak memory the serving added. Speed figures are measurements of one run on the machine
named, never assertions.

``export_check`` answers "are the exported models' greedy answers identical to PyTorch's?" on the
whole test split at the cost of one forward per request: greedy decoding is decided by the argmax
at every prefix, so a runtime that, fed PyTorch's greedy sequence, picks the same token at every
position (and the same end) decodes exactly that sequence itself. The smallest top-1/top-2 logit
margin says how far any position was from a tie.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Study:
    """What notebook 08 and ``bench agent`` measure, per profile (``study()``)."""

    n: int = 100  # tool_call test requests, spread evenly over the split (all levels)
    batch: int = 8  # requests generated together on the batched path
    runtime_n: int = 20  # requests through the exported runtimes (no KV cache there: slower)
    pretrained: str = "smollm2-135m-instruct"  # the general-purpose router it is compared with
    pretrained_n: int = 8
    check_n: int = 400  # test requests for the exported runtimes' greedy check (400: the whole split)
    max_new_tokens: int | None = None  # the specialist's rationale budget (None: the router's default)


def study(profile: str | None = None) -> Study:
    from .env import profile_name

    prof = profile_name(profile)
    if prof == "smoke":
        return Study(n=4, batch=2, runtime_n=2, pretrained_n=1, check_n=4, max_new_tokens=48)
    if prof == "gpu":
        return Study(n=400, batch=32, runtime_n=100, pretrained_n=100)
    return Study()


def requests(n: int):
    """``n`` tool_call test examples spread evenly over the split (so every level is in)."""
    from .tasks import splits

    examples = splits.load("tool_call", "test")
    if not 1 <= n <= len(examples):
        raise ValueError(f"n must be between 1 and {len(examples)} (the test split), got {n}")
    return [examples[int(i * len(examples) / n)] for i in range(n)]


class PeakRSS:
    """Peak resident memory of this process while the block runs, above what it was at the start (MB)."""

    def __init__(self, every: float = 0.005):
        self.every, self.peak_mb, self._stop = every, 0.0, threading.Event()

    @staticmethod
    def rss_mb() -> float:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except OSError:  # not Linux: the lifetime peak is the best there is
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def _watch(self):
        while not self._stop.is_set():
            self.top = max(self.top, self.rss_mb())
            time.sleep(self.every)

    def __enter__(self):
        self.start = self.top = self.rss_mb()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.top, self.rss_mb()) - self.start


def serve(label: str, router, examples, batch: int = 1, model_bytes: int | None = None) -> dict:
    """One benchmark row: ``examples`` routed end to end (``batch`` at a time where the path batches)."""
    from .agent import canonical

    router.route_many([examples[0].input], batch_size=1)  # warm-up: thread pools, first-call work
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        decisions = router.route_many([e.input for e in examples], batch_size=batch)
        seconds = time.perf_counter() - t0
    ms = [d.latency_ms for d in decisions]
    p50, p95 = np.percentile(ms, [50, 95])
    n = len(examples)
    return {"router": label, "n": n, "batch": batch,
            "accuracy": sum(d.call is not None and canonical(d.call) == e.target
                            for d, e in zip(decisions, examples)) / n,
            "valid_json": sum(d.call is not None for d in decisions) / n,
            "valid_call": sum(d.valid or d.no_tool for d in decisions) / n,
            "p50_ms": float(p50), "p95_ms": float(p95), "requests_per_s": n / seconds,
            "peak_mb": mem.peak_mb, "bytes": model_bytes,
            "answers": [canonical(d.call) if d.call is not None else None for d in decisions]}


def export_all(model, tokenizer, out: str | Path) -> Path:
    """ONNX fp32 and int8 and torch.export versions of ``model`` in folder ``out``."""
    from . import export

    onnx = export.to_onnx(model, out, tokenizer)
    export.quantize_onnx(onnx)
    export.to_torch_export(model, out, tokenizer)
    return Path(out)


def benchmark(model, tokenizer, st: Study | None = None, folder: str | Path | None = None, pretrained=None,
              callback=None) -> list[dict]:
    """Every router on the same requests: the specialist (fp32, int8, exported runtimes, with and without
    constrained decoding, batched) and the pretrained instruct model. ``folder``: ``export_all``'s output
    (None: the exported rows are left out). ``pretrained``: (model, tokenizer), loaded if None."""
    from . import quantize, runtimes
    from .agent import Router
    from .models import load_pretrained, param_bytes

    st = st or study()
    examples = requests(st.n)
    fp32 = param_bytes(model)
    int8 = quantize.dynamic_int8(model)
    budget = st.max_new_tokens
    specs = [
        ("specialist fp32, constrained", Router(model, tokenizer, max_new_tokens=budget), examples, 1, fp32),
        ("specialist fp32, free", Router(model, tokenizer, constrained=False, max_new_tokens=budget), examples, 1,
         fp32),
        (f"specialist fp32, free, batch {st.batch}", Router(model, tokenizer, constrained=False,
                                                            max_new_tokens=budget), examples, st.batch, fp32),
        ("specialist int8, constrained", Router(int8, tokenizer, max_new_tokens=budget), examples, 1,
         quantize.linear_bytes(int8) + fp32 - quantize.linear_bytes(model)),
    ]
    if folder is not None:
        fewer = requests(st.runtime_n)  # full-sequence forwards at every step: fewer requests, same spread
        for runner in (runtimes.OnnxRunner(folder, tokenizer=tokenizer),
                       runtimes.OnnxRunner(folder, int8=True, tokenizer=tokenizer)):
            specs.append((f"specialist {runner.runtime}, constrained",
                          Router(runtimes.AsCausalLM(runner), tokenizer, max_new_tokens=budget), fewer, 1,
                          runner.bytes))
    pm, pt = pretrained or load_pretrained(st.pretrained)
    few = requests(st.pretrained_n)
    specs += [(f"{st.pretrained} (chat), constrained", Router(pm, pt, kind="chat"), few, 1, param_bytes(pm)),
              (f"{st.pretrained} (chat), free", Router(pm, pt, kind="chat", constrained=False), few, 1,
               param_bytes(pm))]
    rows = []
    for label, router, exs, batch, nbytes in specs:
        rows.append(serve(label, router, exs, batch, nbytes))
        if callback:
            callback(rows[-1])
    return rows


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


def table(rows: list[dict]) -> str:
    lines = ["| router | requests | exact calls | valid JSON | valid calls | p50 ms | p95 ms | requests/s | "
             "peak MB added | weights, bytes |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['router']} | {r['n']} | {r['accuracy']:.0%} | {r['valid_json']:.0%} | "
                     f"{r['valid_call']:.0%} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['requests_per_s']:.2f} | "
                     f"{r['peak_mb']:.0f} | {r['bytes']:,} |")
    return "\n".join(lines)


# exported runtimes: identical greedy answers --------------------------------------------------------
def greedy_agreement(runner, tokenizer, prompts: list[str], completions: list[list[int]]) -> list[dict]:
    """For each prompt: does ``runner`` pick every token of the reference greedy completion (its ids,
    ending with eos if it stopped there)? One forward over prompt + completion per example; ``margin``
    is the smallest top-1 minus top-2 logit over the completion's positions."""
    out = []
    for prompt, c in zip(prompts, completions):
        p = tokenizer(prompt).input_ids
        ids = p + list(c)
        logits = np.asarray(runner.forward(np.asarray([ids[:-1]], dtype=np.int64)), dtype=np.float64)[0]
        at = logits[len(p) - 1:]  # [len(c), vocab]: the logits that chose each completion token
        top2 = np.sort(at, axis=-1)[:, -2:]
        chosen = at[np.arange(len(c)), c] >= at.max(-1)  # the reference token is a maximum (a tie counts)
        out.append({"identical": bool(chosen.all()), "mismatches": int((~chosen).sum()),
                    "margin": float((top2[:, 1] - top2[:, 0]).min())})
    return out


def export_check(model, tokenizer, folder: str | Path, examples=None, batch_size: int = 32) -> list[dict]:
    """Per runtime (PyTorch's own full-sequence forward, ONNX fp32/int8, torch.export): how many of the
    test split's greedy completions it reproduces exactly, the closest call to a tie, bytes on disk."""
    from . import runtimes
    from .evaluate import EvalConfig, _budget, generate, student_prompt
    from .tasks import splits

    examples = examples or splits.load("tool_call", "test")
    prompts = [student_prompt(e.input) for e in examples]
    budget = _budget(tokenizer, examples, EvalConfig(rationale=True))
    reference = generate(model, tokenizer, prompts, budget, batch_size, ids=True)  # transformers, KV cache
    rows = []
    for runner in (runtimes.TorchRunner(model, tokenizer), runtimes.OnnxRunner(folder, tokenizer=tokenizer),
                   runtimes.OnnxRunner(folder, int8=True, tokenizer=tokenizer),
                   runtimes.ExportedRunner(folder, tokenizer=tokenizer)):
        t0 = time.perf_counter()
        agree = greedy_agreement(runner, tokenizer, prompts, reference)
        rows.append({"runtime": runner.runtime, "n": len(agree), "identical": sum(a["identical"] for a in agree),
                     "min_margin": min(a["margin"] for a in agree), "bytes": runner.bytes,
                     "seconds": time.perf_counter() - t0})
    return rows


def export_table(rows: list[dict]) -> str:
    lines = ["| runtime | greedy completions identical to PyTorch | closest top-1/top-2 logit margin | "
             "bytes on disk |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['runtime']} | {r['identical']}/{r['n']} | {r['min_margin']:.4f} | {r['bytes']:,} |")
    return "\n".join(lines)


def verdict(rows: list[dict], checks: list[dict] | None = None) -> dict:
    """Issue 10's targets, computed: >= 95% exact calls, 100% valid JSON constrained, >= 10x lower p50
    than the pretrained model, exported fp32 runtimes identical to PyTorch on every example."""
    spec = next(r for r in rows if r["router"] == "specialist fp32, constrained")
    general = next((r for r in rows if "(chat), constrained" in r["router"]), None)
    out = {"exact_calls": spec["accuracy"], "exact_calls_met": spec["accuracy"] >= 0.95,
           "valid_json_constrained": min(r["valid_json"] for r in rows if r["router"].endswith("constrained")),
           "p50_speedup_vs_pretrained": general["p50_ms"] / spec["p50_ms"] if general else None}
    out["valid_json_met"] = out["valid_json_constrained"] == 1.0
    out["speedup_met"] = bool(general) and out["p50_speedup_vs_pretrained"] >= 10
    if checks:
        fp32 = [c for c in checks if c["runtime"] in ("onnxruntime fp32", "torch.export")]
        out["exports_identical"] = all(c["identical"] == c["n"] for c in fp32)
    return out
