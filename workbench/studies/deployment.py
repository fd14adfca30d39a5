"""The study of notebook 08 and ``bench agent``: the tool_call specialist as an agent's router, side by side
with its int8 and exported versions and a general pretrained model, on the same requests.

    st = studies.deployment.study()
    rows = studies.deployment.benchmark(model, tok, st, folder=deploy.export_all(model, tok, "exports"))
    print(studies.deployment.table(rows))
    studies.deployment.verdict(rows, checks)       # the issue's targets, computed

Speed figures are measurements of one run on the machine named, never assertions.
"""

from __future__ import annotations

import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from workbench import quantize
from workbench import tasks as task_suite
from workbench.agent import deploy, runtimes
from workbench.agent.grammar import P_NAME, CallGrammar
from workbench.agent.router import Router
from workbench.core import env, report
from workbench.core.evaluate import student_prompt
from workbench.core.measure import param_bytes
from workbench.core.models import load_pretrained


@dataclass
class Study:
    """What notebook 08 and ``bench agent`` measure, per profile (``study()``)."""

    n: int = 100  # tool_call test requests, spread evenly over the split (all levels)
    batch: int = 8  # requests generated together on the batched path
    runtime_n: int = 20  # requests through the slow paths: exported runtimes without a KV cache, transformers'
    # forward and generate (the lean path's answers, slower); the others answer n
    pretrained: str = "smollm2-135m-instruct"  # the general-purpose router it is compared with
    pretrained_n: int = 8
    check_n: int = 400  # test requests for the exported runtimes' greedy check (400: the whole split)
    max_new_tokens: int | None = None  # the specialist's rationale budget (None: the router's default)
    router_n: int = 30  # level-2 requests through every decode path (``bench.bench_router``)
    router_repeats: int = 2
    format_n: int = 30  # requests per level whose reference replies are replayed per format (``reply_formats``)
    format_repeats: int = 2

    SIZES: ClassVar[dict] = {"smoke": dict(n=4, batch=2, runtime_n=2, pretrained_n=1, check_n=4, max_new_tokens=48,
                                           router_n=3, router_repeats=1, format_n=2, format_repeats=1),
                             "gpu": dict(n=400, batch=32, runtime_n=100, pretrained_n=100, router_n=100,
                                         router_repeats=3, format_n=50, format_repeats=3)}


def study(profile: str | None = None, **overrides) -> Study:
    """The study sized for ``profile`` (smoke: seconds)."""
    return env.sized(Study, profile, **overrides)


def benchmark(model, tokenizer, st: Study | None = None, folder: str | Path | None = None, pretrained=None,
              callback=None, rationale: bool = True) -> list[dict]:
    """Every router on the same requests: the specialist (fp32 on the lean path and through transformers, int8,
    exported runtimes, with and without constrained decoding, batched) and the pretrained instruct model.
    ``folder``: ``deploy.export_all``'s output (None: the exported rows are left out). ``pretrained``: (model,
    tokenizer), loaded if None. ``rationale``: whether the specialist writes one (its card's ``train.rationale``)
    or the JSON alone."""
    st = st or study()
    examples = deploy.requests(st.n)
    fp32 = param_bytes(model)
    int8 = quantize.dynamic_int8(model)
    budget = st.max_new_tokens
    kw = dict(max_new_tokens=budget, rationale=rationale)
    # full-sequence forwards at every step (exported runtimes without a KV cache) and the transformers paths, which
    # give the lean path's answers at several times its latency: fewer requests, the same spread over the levels
    fewer = deploy.requests(st.runtime_n)
    int8_router = Router(int8, tokenizer, **kw)  # dynamic int8 linears: the lean path does not take them
    int8_lean = int8_router.decoder == "lean"
    specs = [  # the specialist's rows decode on the lean path where it applies (``decoder`` says), else transformers
        ("specialist fp32, constrained", Router(model, tokenizer, **kw), examples, 1, fp32),
        ("specialist fp32, constrained, transformers forward", Router(model, tokenizer, lean=False, **kw), fewer,
         1, fp32),
        ("specialist fp32, free", Router(model, tokenizer, constrained=False, **kw), examples, 1, fp32),
        ("specialist fp32, free, transformers generate", Router(model, tokenizer, constrained=False, lean=False, **kw),
         fewer, 1, fp32),
        (f"specialist fp32, free, batch {st.batch}", Router(model, tokenizer, constrained=False, **kw), examples,
         st.batch, fp32),
        ("specialist int8, constrained" + ("" if int8_lean else ", transformers forward"), int8_router,
         examples if int8_lean else fewer, 1, quantize.linear_bytes(int8) + fp32 - quantize.linear_bytes(model)),
    ]
    if folder is not None:
        for runner in (runtimes.OnnxRunner(folder, tokenizer=tokenizer),
                       runtimes.OnnxRunner(folder, int8=True, tokenizer=tokenizer),
                       runtimes.OnnxKVRunner(folder, tokenizer=tokenizer),
                       runtimes.OnnxKVRunner(folder, int8=True, tokenizer=tokenizer)):
            exs = examples if isinstance(runner, runtimes.OnnxKVRunner) else fewer
            specs.append((f"specialist {runner.runtime}, constrained",
                          Router(runtimes.AsCausalLM(runner), tokenizer, **kw), exs, 1, runner.bytes))
    pm, pt = pretrained or load_pretrained(st.pretrained)
    few = deploy.requests(st.pretrained_n)
    specs += [(f"{st.pretrained} (chat), constrained", Router(pm, pt, kind="chat"), few, 1, param_bytes(pm)),
              (f"{st.pretrained} (chat), free", Router(pm, pt, kind="chat", constrained=False), few, 1,
               param_bytes(pm))]
    rows = []
    for label, router, exs, batch, nbytes in specs:
        rows.append(deploy.serve(label, router, exs, batch, nbytes))
        if callback:
            callback(rows[-1])
    return rows


def by_level(model, tokenizer, levels=(2, 4, 5), n: int = 100, rationale: bool = True) -> list[dict]:
    """Exact and valid calls per tool_call test level (5: the held-out vocabularies and phrasings), constrained
    (grounded) and free: where the grammar's copying rule helps, level by level."""
    from workbench.agent.router import score
    from workbench.tasks import splits

    rows = []
    for level in levels:
        exs = splits.load("tool_call", "test", level=level, n=n)
        for constrained in (True, False):
            router = Router(model, tokenizer, constrained=constrained, rationale=rationale)
            sc = score(router.route_many([e.input for e in exs]), [e.target for e in exs])
            rows.append({"level": level, "decoding": "constrained" if constrained else "free", **sc})
    return rows


def reply_formats(lm, tokenizer, levels=(2, 4), n: int = 50, formats=("answer", "full", "tool", "rules"),
                  repeats: int = 3) -> list[dict]:
    """What each reply format costs to write, on the same model and decoder: each format's reference reply to ``n``
    tool_call test requests per level, replayed through ``lm`` (a lean step: ``lean.LeanLlama``,
    ``runtimes.OnnxStep``) as the constrained lean decoder would run it: the prompt in one pass, a pass per
    rationale token, then in the call one pass per character the model chooses, the characters the grammar
    forces (``CallGrammar.forced``) going in with it. One row per format and level: tokens and model passes
    per request, the call's tool-name characters the model had to choose (a functional token, as in Octopus v2,
    would be one), and the median milliseconds per request (median of ``repeats`` passes over the requests).

    A request whose reply in some format would not fit ``lm``'s context (its ``context`` attribute, where it has
    one) is left out of every format's row, so the formats compare on the same requests; ``past_context`` counts
    them.

    A format's accuracy is the trained model's, not the replay's: ``studies.formats`` trains one student per
    format at equal compute."""
    import statistics

    from workbench.tasks import splits

    context = getattr(lm, "context", None)
    rows = []
    for level in levels:
        loaded = splits.load("tool_call", "test", level=level, n=n)
        examples = [ex for ex in loaded
                    if context is None or max(_positions(tokenizer, ex, fmt) for fmt in formats) <= context]
        if not examples:
            raise ValueError(f"no level-{level} request's reply fits this model's {context} positions")
        _replay(lm, tokenizer, examples[0], "full")  # warm-up
        for fmt in formats:
            passes, tokens, name_steps, ms = [], [], [], [[] for _ in range(repeats)]
            for rep in range(repeats):
                for ex in examples:
                    t0 = time.perf_counter()
                    p, w, k = _replay(lm, tokenizer, ex, fmt)
                    ms[rep].append(1000 * (time.perf_counter() - t0))
                    if rep == 0:
                        passes.append(p), tokens.append(w), name_steps.append(k)
            rows.append({"format": "the JSON alone" if fmt == "answer" else f"{fmt} rationale, then the JSON",
                         "level": level, "n": len(examples), "past_context": len(loaded) - len(examples),
                         "tokens": statistics.mean(tokens),
                         "passes": statistics.mean(passes), "name_steps": statistics.mean(name_steps),
                         "p50_ms": statistics.median(statistics.median(m) for m in ms)})
    return rows


def _head(ex, fmt: str) -> str:
    """``ex``'s reference reply in ``fmt`` up to the answer prefix ("" for the JSON alone)."""
    rationale = "" if fmt == "answer" else task_suite.get("tool_call").reformat(ex, fmt).rationale
    return rationale[:rationale.rindex(task_suite.ANSWER_PREFIX) + len(task_suite.ANSWER_PREFIX)] if rationale else ""


def _positions(tokenizer, ex, fmt: str) -> int:
    """Positions the replay of ``ex`` in ``fmt`` fills at most: the prompt, the rationale, the call."""
    return (len(tokenizer(student_prompt(ex.input)).input_ids)
            + sum(len(tokenizer(text, add_special_tokens=False).input_ids) for text in (_head(ex, fmt), ex.target)))


def _replay(lm, tokenizer, ex, fmt: str) -> tuple[int, int, int]:
    """(model passes, tokens written, tool-name characters the model chose) for ``ex``'s reference reply in
    ``fmt``, run through ``lm`` as the lean decoder would: the rationale a pass a token; the call a pass per
    character the model chooses, with the characters the grammar then forces."""
    grammar, target = CallGrammar(request=ex.input, ground=True), ex.target
    head = _head(ex, fmt)
    head_ids = tokenizer(head, add_special_tokens=False).input_ids
    state = grammar.state()
    jump = grammar.forced(state, string.printable)  # the call's fixed opening
    state, at = grammar.advance(state, jump), len(jump)
    opening = tokenizer(jump, add_special_tokens=False).input_ids
    prompt_ids = tokenizer(student_prompt(ex.input)).input_ids
    if not head_ids:  # the JSON alone: the opening goes in with the prompt
        lm(prompt_ids + opening, first=True)
        passes = 1
    else:  # the rationale a pass a token; its last (the answer prefix's end) goes in with the opening
        lm(prompt_ids, first=True)
        for tok in head_ids[:-1]:
            lm([tok])
        lm(head_ids[-1:] + opening)
        passes = 1 + len(head_ids)
    name_chosen = 0
    while at < len(target):
        chosen = target[at]  # the model's choice: the reference's character
        name_chosen += state.phase == P_NAME
        state = grammar.advance(state, chosen)
        jump = "" if grammar.done(state) else grammar.forced(state, string.printable)
        state, at = grammar.advance(state, jump), at + 1 + len(jump)
        if at < len(target):
            lm(tokenizer(chosen + jump, add_special_tokens=False).input_ids)
            passes += 1
    return passes, len(head_ids) + len(target), name_chosen


def format_table(rows: list[dict]) -> str:
    """``reply_formats``' rows as a markdown table."""
    return report.table(rows, {"reply format": "{format}", "level": "{level}", "requests": "{n}",
                               "tokens / request": "{tokens:.0f}", "model passes / request": "{passes:.1f}",
                               "tool-name characters chosen": "{name_steps:.2f}", "p50 ms": "{p50_ms:.1f}"})


def level_table(rows: list[dict]) -> str:
    return report.table(rows, {"level": "{level}", "decoding": "{decoding}", "requests": "{n}",
                               "exact calls": "{accuracy:.0%}", "valid calls": "{valid:.0%}",
                               "ms / request": "{ms_per_request:.0f}"})


def table(rows: list[dict]) -> str:
    rows = [{**r, "tok_s": "—" if r.get("tokens_per_s") is None else f"{r['tokens_per_s']:,.0f}"} for r in rows]
    return report.table(rows, {
        "router": "{router}", "requests": "{n}", "exact calls": "{accuracy:.0%}", "valid JSON": "{valid_json:.0%}",
        "valid calls": "{valid_call:.0%}", "p50 ms": "{p50_ms:.0f}", "p95 ms": "{p95_ms:.0f}",
        "requests/s": "{requests_per_s:.2f}", "tokens/s": "{tok_s}", "model / grammar / Python": "{time_split}",
        "peak MB added": "{peak_mb:.0f}", "weights, bytes": "{bytes:,}"})


def export_table(rows: list[dict]) -> str:
    return report.table(rows, {
        "runtime": "{runtime}", "greedy completions identical to PyTorch": "{identical}/{n}",
        "closest top-1/top-2 logit margin": "{min_margin:.4f}", "bytes on disk": "{bytes:,}"})


def verdict(rows: list[dict], checks: list[dict] | None = None) -> dict:
    """The deployment targets, computed. Issue 10's: >= 95% exact calls, 100% valid JSON constrained, >= 10x lower
    p50 than the pretrained model, exported fp32 runtimes identical to PyTorch on every example. Issue 20's: the
    fastest constrained specialist path at p50 <= 25 ms and >= 100x lower than the pretrained router, the ONNX
    graph with a KV cache no slower than PyTorch, every constrained reply a valid call, exact calls constrained
    no lower than free."""
    spec = next(r for r in rows if r["router"] == "specialist fp32, constrained")
    general = next((r for r in rows if "(chat), constrained" in r["router"]), None)
    out = {"exact_calls": spec["accuracy"], "exact_calls_met": spec["accuracy"] >= 0.95,
           "valid_json_constrained": min(r["valid_json"] for r in rows if ", constrained" in r["router"]),
           "p50_speedup_vs_pretrained": general["p50_ms"] / spec["p50_ms"] if general else None}
    out["valid_json_met"] = out["valid_json_constrained"] == 1.0
    out["speedup_met"] = bool(general) and out["p50_speedup_vs_pretrained"] >= 10
    if checks:
        fp32 = [c for c in checks if c["runtime"] in ("onnxruntime fp32", "onnxruntime fp32, KV cache", "torch.export")]
        out["exports_identical"] = all(c["identical"] == c["n"] for c in fp32)
    # issue 20's: the fastest constrained specialist path <= 25 ms p50 and >= 100x below the pretrained router, the
    # exported runtime with a KV cache no slower than PyTorch, every constrained reply a valid call, and exact calls
    # no lower than the free PyTorch path of the same model
    mine = [r for r in rows if r["router"].startswith("specialist") and ", constrained" in r["router"]]
    fastest = min(mine, key=lambda r: r["p50_ms"])
    kv = next((r for r in rows if r["router"] == "specialist onnxruntime fp32, KV cache, constrained"), None)
    free = next((r for r in rows if r["router"] == "specialist fp32, free"), None)
    out.update(fastest=fastest["router"], fastest_p50_ms=fastest["p50_ms"], p50_met=fastest["p50_ms"] <= 25,
               fastest_speedup=general["p50_ms"] / fastest["p50_ms"] if general else None,
               every_reply_valid=all(r["valid_call"] == 1.0 for r in mine))
    out["fastest_speedup_met"] = bool(general) and out["fastest_speedup"] >= 100
    if kv is not None:
        out["exported_p50_ms"], out["exported_no_slower"] = kv["p50_ms"], kv["p50_ms"] <= spec["p50_ms"]
    if free is not None:
        out["exact_vs_free"] = (spec["accuracy"], free["accuracy"])
        out["exact_not_below_free"] = spec["accuracy"] >= free["accuracy"]
    return out


def sentences(verdict: dict) -> list[str]:
    """What the verdict says, as the sentences notebook 08 prints."""
    speed = verdict["p50_speedup_vs_pretrained"]
    met = {True: "met", False: "NOT met"}
    lines = [f"Exact calls: {verdict['exact_calls']:.0%} (target 95%: {met[verdict['exact_calls_met']]}).",
             f"Valid JSON on every constrained path: {verdict['valid_json_constrained']:.0%} "
             f"({'met' if verdict['valid_json_met'] else 'NOT met'}).",
             ("No pretrained router measured." if speed is None else
              f"p50 {speed:.0f}x lower than the pretrained router (target 10x: "
              f"{'met' if verdict['speedup_met'] else 'NOT met'}).")]
    if "exports_identical" in verdict:
        lines.append("Exported fp32 runtimes reproduce PyTorch's greedy answers on every request: "
                     + ("yes." if verdict["exports_identical"] else "NO."))
    if "fastest" in verdict:
        lines.append(f"Fastest routed request: {verdict['fastest']}, p50 {verdict['fastest_p50_ms']:.1f} ms "
                     f"(target 25 ms: {met[verdict['p50_met']]})"
                     + ("." if verdict["fastest_speedup"] is None else
                        f", {verdict['fastest_speedup']:.0f}x lower than the pretrained router (target 100x: "
                        f"{met[verdict['fastest_speedup_met']]})."))
        lines.append("Every constrained reply a valid call: " + ("yes." if verdict["every_reply_valid"] else "NO."))
    if "exported_no_slower" in verdict:
        lines.append(f"ONNX Runtime with a KV cache no slower than PyTorch: {met[verdict['exported_no_slower']]} "
                     f"(p50 {verdict['exported_p50_ms']:.1f} ms).")
    if "exact_not_below_free" in verdict:
        spec, free = verdict["exact_vs_free"]
        lines.append(f"Exact calls constrained {spec:.0%} against free {free:.0%}: "
                     f"{met[verdict['exact_not_below_free']]} (no lower).")
    return lines
