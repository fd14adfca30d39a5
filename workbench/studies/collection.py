"""The study of notebook 10: a collection of small agents (a dispatcher, four reasoning specialists and the
tool_call router, each int8 where it holds its accuracy) against SmolLM2-135M-Instruct answering the same
mixed stream of plain-English requests alone.

    st = studies.collection.study()
    dispatcher = studies.collection.dispatcher(st)                 # naive Bayes on the training phrasings
    specs, fp32, checks = studies.collection.specialists(st)       # int8 where it scores as well as fp32
    coll = agent.collection.Collection(dispatcher, specs)
    rows = [studies.collection.serve("collection", coll.answer, st.requests(), coll.nbytes), ...]

Speed figures are measurements of one run on the machine named, never assertions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from workbench import quantize
from workbench.agent.collection import Dispatcher, Outcome, Request, Specialist, correct, stream
from workbench.core import env, report
from workbench.core.evaluate import EvalConfig, answer_budget, evaluate, generate
from workbench.core.measure import param_bytes
from workbench.tasks import NAMES, get
from workbench.tasks import splits as task_splits


@dataclass
class Study:
    """What notebook 10 measures, per profile (``study()``)."""

    per_task: int = 5  # test requests of each of the five tasks in the measured stream (held-out phrasings)
    seed: int = 0  # draws the stream's examples and phrasings
    train_per_task: int = 200  # training-split requests per task that the dispatcher learns from
    heldout_per_task: int = 100  # test-split requests per task (held-out phrasings) for its routing accuracy
    check_n: int = 8  # validation examples per task on which int8 must match fp32 to be kept
    int8_tolerance: float = 0.1  # int8 is kept when its accuracy is at most this far below fp32's
    max_new_tokens: int | None = None  # a specialist's budget (None: its longest training answer +25%)
    pretrained: str = "smollm2-135m-instruct"  # the general model that answers the stream alone
    pretrained_n: int = 5  # of the stream's requests, how many the general model answers (tasks in turn)
    pretrained_max_new_tokens: int = 100  # its budget per reply (one line: a JSON call or an answer)

    SIZES: ClassVar[dict] = {
        "smoke": dict(per_task=1, train_per_task=40, heldout_per_task=10, check_n=2, max_new_tokens=48,
                      pretrained_n=2, pretrained_max_new_tokens=16),
        "gpu": dict(per_task=40, heldout_per_task=100, check_n=50, pretrained_n=100)}

    def requests(self) -> list[Request]:
        """The measured stream: ``per_task`` test requests of each task, mixed, phrased with held-out templates."""
        return stream(self.per_task, self.seed, "test", "heldout")

    def general_requests(self) -> list[Request]:
        """``pretrained_n`` of the stream's requests, the tasks in turn (each task's first, then its second, ...)."""
        reqs = self.requests()
        rank = {id(r): sum(q.route == r.route for q in reqs[:i]) for i, r in enumerate(reqs)}
        return sorted(reqs, key=lambda r: (rank[id(r)], NAMES.index(r.route)))[:self.pretrained_n]


def study(profile: str | None = None, **overrides) -> Study:
    """The study sized for ``profile`` (smoke: seconds)."""
    return env.sized(Study, profile, **overrides)


# the dispatcher ----------------------------------------------------------------------------------------------
def dispatcher(st: Study) -> Dispatcher:
    """Fit on training-split requests phrased with the training templates (and the tool_call train split)."""
    return Dispatcher.fit(stream(st.train_per_task, st.seed, "train", "train"))


def routing(d: Dispatcher, st: Study) -> list[dict]:
    """Routing accuracy on fresh training-template requests and on held-out-template test requests."""
    rows = []
    for label, split, templates, per_task in (("training phrasings (train split)", "train", "train", st.train_per_task),
                                              ("held-out phrasings (test split)", "test", "heldout",
                                               st.heldout_per_task)):
        reqs = stream(per_task, st.seed + 1, split, templates)
        t0 = time.perf_counter()
        acc = d.accuracy(reqs)
        mistakes = ", ".join(f"{a} -> {b}: {n}" for (a, b), n in sorted(d.confusion(reqs).items())) or "none"
        rows.append({"requests": label, "n": len(reqs), "routed": acc, "mistakes": mistakes,
                     "us_per_request": 1e6 * (time.perf_counter() - t0) / len(reqs)})
    return rows


def routing_table(rows: list[dict]) -> str:
    return report.table(rows, {"requests": "{requests}", "n": "{n}", "routed correctly": "{routed:.1%}",
                               "µs / request": "{us_per_request:.0f}", "mistakes (expected -> routed)": "{mistakes}"})


# the specialists ---------------------------------------------------------------------------------------------
def budget(task_name: str, tokenizer, rationale: bool, fmt: str, cap: int | None = None) -> int:
    """New tokens for one answer: the longest of 100 training answers (rationale in the recipe's format) +25%."""
    task = get(task_name)
    examples = task_splits.load(task_name, "train", level=task.bbh_level, n=100)
    if rationale:
        examples = [task.reformat(ex, fmt) for ex in examples]
    return cap or answer_budget(tokenizer, examples, EvalConfig(rationale=rationale, format=fmt))


def specialists(st: Study, progress: bool = False) -> tuple[dict[str, Specialist], dict[str, Specialist], list]:
    """Each task's specialist (``recipes.specialist``) in fp32 and int8 (``quantize.dynamic_int8``), scored on
    ``check_n`` validation examples; the collection takes int8 where it stays within ``int8_tolerance``.
    Returns (chosen, fp32, check rows)."""
    from workbench.core import recipes

    chosen, fp32, rows = {}, {}, []
    for name in NAMES:
        model, tok, _ = recipes.specialist(name, progress=progress)
        _, cfg = recipes.recipe(name)
        n = budget(name, tok, cfg.rationale, cfg.format, st.max_new_tokens)
        int8 = quantize.dynamic_int8(model)
        full = param_bytes(model)
        small = quantize.linear_bytes(int8) + full - quantize.linear_bytes(model)
        fp32[name] = Specialist(model, tok, cfg.rationale, n, full, "fp32")
        q = Specialist(int8, tok, cfg.rationale, n, small, "int8")
        check = task_splits.load(name, "validation", level=get(name).bbh_level, n=st.check_n)
        ec = EvalConfig(rationale=cfg.rationale, format=cfg.format, batch_size=st.check_n, max_new_tokens=n)
        a32, a8 = (evaluate(m, tok, name, check, ec).accuracy for m in (model, int8))
        keep = a8 >= a32 - st.int8_tolerance
        chosen[name] = q if keep else fp32[name]
        rows.append({"task": name, "n": len(check), "fp32": a32, "int8": a8, "kept": "int8" if keep else "fp32",
                     "fp32_bytes": full, "int8_bytes": small, "budget": n})
    return chosen, fp32, rows


def check_table(rows: list[dict]) -> str:
    return report.table(rows, {"specialist": "{task}", "validation examples": "{n}", "fp32": "{fp32:.0%}",
                               "int8": "{int8:.0%}", "kept": "{kept}", "fp32 bytes": "{fp32_bytes:,}",
                               "int8 bytes": "{int8_bytes:,}", "token budget": "{budget}"})


# the general model alone -------------------------------------------------------------------------------------
def general_prompt(tokenizer, request: str, registry) -> str:
    """The router's tool list (``router.system_prompt``), told to answer itself when no tool serves."""
    from workbench.agent.router import system_prompt

    lines = system_prompt(registry.schemas()).split("\n")[:-1]  # its last line asks for the "none" call
    lines.append("If no tool serves the request, answer it yourself: reply with the final answer only, on one line.")
    messages = [{"role": "system", "content": "\n".join(lines)}, {"role": "user", "content": request}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def general(model, tokenizer, max_new_tokens: int = 100):
    """SmolLM2 (or any chat model) as the whole collection: a reply that is a JSON call goes to the registry
    and runs (route "tool_call"); anything else is its own answer (route "itself"). Returns ``answer(request)``."""
    from workbench.agent.router import Registry
    from workbench.tasks.tool_call import canonical, parse_call

    registry = Registry()

    def answer(request: str) -> Outcome:
        t0 = time.perf_counter()
        prompt = general_prompt(tokenizer, request, registry)
        text = generate(model, tokenizer, [prompt], max_new_tokens, 1, ("\n",), add_special_tokens=False)[0]
        text = text.strip().split("\n", 1)[0].strip()
        out = Outcome(request, "itself", text.removesuffix("."), completion=text)
        if text.startswith("{"):
            out.route = "tool_call"
            try:
                call = parse_call(text)
                ok, out.reason = registry.validate(call)
                out.answer = canonical(call) if ok else ""
                out.result = registry.execute(call) if ok else None
                out.refused = not ok
            except Exception as err:  # not JSON, or the tool's own error: refused, never raised
                out.answer, out.refused, out.reason = "", True, f"{type(err).__name__}: {err}"
        out.ms = 1000 * (time.perf_counter() - t0)
        return out

    return answer


# end to end --------------------------------------------------------------------------------------------------
def serve(label: str, answer, requests: list[Request], nbytes: int, alone: bool = False, warmup: bool = True) -> dict:
    """One row: every request through ``answer`` (a ``Collection.answer``), routed and answered, timed.
    ``alone``: one model answering everything, so a reasoning request is routed right when it answers it itself.
    ``warmup``: answer the first request once, untimed (thread pools, first-call work)."""
    if warmup:
        answer(requests[0].text)
    outcomes = [answer(r.text) for r in requests]
    routed = [(o.route == "tool_call") == (r.route == "tool_call") if alone else o.route == r.route
              for o, r in zip(outcomes, requests)]
    right = [ok and correct(Outcome(o.request, r.route, o.answer, o.refused), r)
             for ok, o, r in zip(routed, outcomes, requests)]
    ms = [o.ms for o in outcomes]
    p50, p95 = np.percentile(ms, [50, 95])
    row = {"system": label, "n": len(requests), "routed": sum(routed) / len(requests),
           "correct": sum(right) / len(requests), "p50_ms": float(p50), "p95_ms": float(p95), "bytes": nbytes,
           "outcomes": outcomes, "right": right}
    for name in NAMES:
        mine = [ok for ok, r in zip(right, requests) if r.route == name]
        row[name] = sum(mine) / len(mine) if mine else None
        row[f"{name}_n"] = len(mine)
    return row


def table(rows: list[dict]) -> str:
    def cell(r, name):
        return f"{r[name]:.0%} of {r[name + '_n']}" if r[name] is not None else "—"

    lines = ["| system | requests | routed correctly | answers correct | " + " | ".join(NAMES)
             + " | p50 ms | p95 ms | bytes |", "|---" * (len(NAMES) + 8) + "|"]
    for r in rows:
        lines.append(f"| {r['system']} | {r['n']} | {r['routed']:.0%} | {r['correct']:.0%} | "
                     + " | ".join(cell(r, n) for n in NAMES)
                     + f" | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['bytes']:,} |")
    return "\n".join(lines)


def outcomes_table(requests: list[Request], outcomes: list[Outcome], right: list[bool], k: int = 8) -> str:
    """The first ``k`` requests: where they went, what came back, whether it was right."""
    lines = ["| request | expected | routed | answer | right | ms |", "|---|---|---|---|---|---|"]
    for r, o, ok in list(zip(requests, outcomes, right))[:k]:
        text = r.text if len(r.text) <= 70 else r.text[:67] + "..."
        ans = (f"refused: {o.reason}" if o.refused else o.answer)[:70]
        cells = (x.replace("|", "\\|") for x in (text, r.route, o.route, ans))
        lines.append("| " + " | ".join(cells) + f" | {'yes' if ok else 'no'} | {o.ms:.0f} |")
    return "\n".join(lines)


def verdict(rows: list[dict]) -> dict:
    """The collection against the general model: correct answers, p50 speed-up, and how many times smaller."""
    coll, gen = rows[0], rows[-1]
    return {"routed_pct": coll["routed"], "correct_pct": coll["correct"], "general_correct_pct": gen["correct"],
            "p50_speedup": gen["p50_ms"] / coll["p50_ms"], "times_smaller": gen["bytes"] / coll["bytes"],
            "more_correct": coll["correct"] > gen["correct"]}


def sentences(v: dict, rows: list[dict]) -> list[str]:
    coll, gen = rows[0], rows[-1]
    return [f"The collection routed {v['routed_pct']:.0%} of {coll['n']} requests where they belong and answered "
            f"{v['correct_pct']:.0%} correctly; {gen['system']} answered {v['general_correct_pct']:.0%} of "
            f"its {gen['n']}.",
            f"p50 latency {coll['p50_ms']:.0f} ms against {gen['p50_ms']:.0f} ms ({v['p50_speedup']:.1f}x); "
            f"{coll['bytes']:,} bytes against {gen['bytes']:,} ({v['times_smaller']:.0f}x smaller)."]



# showing and explaining --------------------------------------------------------------------------------------
def stream_table(requests: list[Request], k: int = 8) -> str:
    """The first ``k`` requests of a stream with where they should go and the expected answer."""
    lines = ["| request | route | expected answer |", "|---|---|---|"]
    for r in requests[:k]:
        cells = (x if len(x) <= 80 else x[:77] + "..." for x in (r.text, r.route, r.target))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def evidence_table(d: Dispatcher, text: str, k: int = 8) -> str:
    """Why the dispatcher chose its route for ``text``: the n-grams that most favour it over the runner-up."""
    ranked = sorted(d.scores(text).items(), key=lambda kv: -kv[1])
    lines = [f"**{text}** → `{ranked[0][0]}` (runner-up `{ranked[1][0]}`, log-odds {ranked[0][1] - ranked[1][1]:.1f})",
             "", "| n-gram | count × log-likelihood ratio |", "|---|---|"]
    lines += [f"| `{g.replace(' ', '␣')}` | {w:+.2f} |" for g, w in d.evidence(text, k)]
    return "\n".join(lines)


def explain(spec: Specialist, task_input: str, method: str = "integrated_gradients", n_steps: int = 20):
    """The specialist's answer to ``task_input`` as an attribution heatmap (``explain.heatmap_html``) over the
    prompt and its rationale, at the step that writes the answer's first character; shown as HTML."""
    from IPython.display import HTML

    from workbench import explain as attribution

    gen = attribution.generation(spec.model, spec.tokenizer, task_input, max_new_tokens=spec.max_new_tokens)
    if gen.steps == 0:
        return HTML("<p>The specialist wrote nothing, so there is no step to explain.</p>")
    att = attribution.attribute(spec.model, spec.tokenizer, gen, gen.answer_step, method, n_steps=n_steps)
    return HTML(attribution.heatmap_html(gen, att))
