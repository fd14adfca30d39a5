"""Deployment measurements: request sampling, the one-forward greedy check, the runner shim for constrained
decoding, benchmark rows, verdict, and the agent console widget, on a tiny random student."""

import numpy as np
import pytest

from workbench.agent import deploy, runtimes
from workbench.agent.constrain import CallGrammar, constrained_generate
from workbench.agent.router import Router
from workbench.core.evaluate import generate, student_prompt
from workbench.core.measure import PeakRSS
from workbench.studies import deployment

PROMPTS = [student_prompt(q) for q in ("Remind me to call Ana at 5pm", "What is 3 + 4?", "Weather in Oslo?")]


@pytest.fixture(scope="module")
def student(varied_student):
    return varied_student


def test_requests_cover_every_level():
    exs = deploy.requests(10)
    assert len(exs) == 10 and {e.level for e in exs} == {1, 2, 3, 4, 5}  # 5: the held-out level
    with pytest.raises(ValueError, match="n must be between 1 and 500"):
        deploy.requests(0)


def test_greedy_agreement_accepts_the_reference_and_catches_one_changed_token(student):
    model, tok = student
    reference = generate(model, tok, PROMPTS, 24, batch_size=3, ids=True)
    assert [tok.decode(r, skip_special_tokens=True) for r in reference] == generate(model, tok, PROMPTS, 24, 3)
    runner = runtimes.TorchRunner(model, tok)
    agree = deploy.greedy_agreement(runner, tok, PROMPTS, reference)
    assert all(a["identical"] and a["mismatches"] == 0 and a["margin"] >= 0 for a in agree)
    changed = [r[:3] + [r[3] + 1] + r[4:] for r in reference]
    assert not any(a["identical"] for a in deploy.greedy_agreement(runner, tok, PROMPTS, changed))


def test_constrained_decoding_through_the_runner_shim_matches_the_model(student):
    model, tok = student
    grammar = CallGrammar()
    direct = constrained_generate(model, tok, PROMPTS[0], grammar, 16)
    shim = constrained_generate(runtimes.AsCausalLM(runtimes.TorchRunner(model, tok)), tok, PROMPTS[0], grammar, 16)
    assert shim.text == direct.text and grammar.complete(shim.json)


def test_serve_rows_and_table(student):
    model, tok = student
    exs = deploy.requests(3)
    row = deploy.serve("tiny, constrained", Router(model, tok, max_new_tokens=16), exs, model_bytes=123)
    assert row["n"] == 3 and row["valid_json"] == 1.0 and row["valid_call"] == 1.0  # the grammar's promise
    assert row["p50_ms"] > 0 and row["requests_per_s"] > 0 and len(row["answers"]) == 3
    assert "| tiny, constrained | 3 |" in deployment.table([row])


def test_verdict_reads_the_targets():
    def row(router, accuracy, p50, valid=1.0):
        return {"router": router, "accuracy": accuracy, "valid_json": 1.0, "valid_call": valid, "p50_ms": p50}

    rows = [row("specialist fp32, constrained", 0.96, 50.0), row("general (chat), constrained", 0.2, 400.0)]
    checks = [{"runtime": "onnxruntime fp32", "identical": 400, "n": 400},
              {"runtime": "torch.export", "identical": 399, "n": 400}]
    v = deployment.verdict(rows, checks)
    assert v["exact_calls_met"] and v["valid_json_met"] and not v["speedup_met"]
    assert v["p50_speedup_vs_pretrained"] == pytest.approx(8.0) and not v["exports_identical"]
    assert not v["p50_met"] and "exported_no_slower" not in v and "exact_not_below_free" not in v
    # issue 20's: the fastest constrained path (the KV graph here) under 25 ms and 100x, no slower than PyTorch
    rows += [row("specialist onnxruntime fp32, KV cache, constrained", 0.96, 3.5),
             row("specialist fp32, free", 0.97, 30.0)]
    v = deployment.verdict(rows, checks)
    assert v["fastest"] == "specialist onnxruntime fp32, KV cache, constrained" and v["p50_met"]
    assert v["fastest_speedup"] == pytest.approx(400 / 3.5) and v["fastest_speedup_met"] and v["every_reply_valid"]
    assert v["exported_no_slower"] and not v["exact_not_below_free"]  # free wrote more exact calls
    text = " ".join(deployment.sentences(v))
    assert "p50 3.5 ms (target 25 ms: met), 114x lower" in text and "constrained 96% against free 97%: NOT met" in text
    rows[2]["valid_call"] = 0.99
    assert not deployment.verdict(rows, checks)["every_reply_valid"]


def test_decisions_table_shows_refusals_and_escapes(student):
    model, tok = student
    decisions = Router(model, tok, max_new_tokens=8).route_many(["", "x" * 3000], batch_size=1)
    text = deploy.decisions_table(decisions)
    assert "refused: request is empty" in text and "(3,000 chars)" in text and "limit is 2,000" in text


def test_peak_rss_sees_an_allocation():
    with PeakRSS() as mem:
        block = np.ones(64 * 2**20 // 8)  # 64 MB, touched
        block.sum()
    assert mem.peak_mb > 40


def test_agent_console_routes_what_is_typed(student):
    from workbench.widgets import AgentConsole

    model, tok = student
    console = AgentConsole(Router(model, tok, max_new_tokens=8), ["What is 2 + 2?"])
    assert len(console.decisions) == 1 and "<table>" in console.output.value
    console.text.value = "Remind me at 5pm\n\nWeather in Oslo"
    console.button.click()
    assert [d.request for d in console.decisions] == ["Remind me at 5pm", "Weather in Oslo"]
    console.text.value = "  \n"
    assert console.run() == [] and "at least one request" in console.output.value


def test_by_level_scores_each_level_constrained_and_free(student):
    from workbench.studies import deployment

    model, tok = student
    rows = deployment.by_level(model, tok, levels=(2, 5), n=2, rationale=False)
    assert [(r["level"], r["decoding"]) for r in rows] == [(2, "constrained"), (2, "free"), (5, "constrained"),
                                                           (5, "free")]
    assert all(r["n"] == 2 and 0 <= r["accuracy"] <= 1 for r in rows)
    assert rows[0]["valid"] == 1.0  # constrained: always a valid call
    assert "| 5 | free | 2 |" in deployment.level_table(rows)


def test_reply_formats_count_a_pass_per_rationale_token_and_per_chosen_call_character():
    """The replay's model passes: the JSON alone costs fewer passes than tokens (the grammar forces most of the
    call), and a rationale format costs exactly one more pass per rationale token; sorted keys leave the tool
    name to the grammar once the arguments are written."""
    from workbench.core.tokenizer import CharTokenizer

    class Counting:  # a lean step that only counts its passes and the tokens fed
        def __init__(self):
            self.passes = self.fed = 0

        def __call__(self, ids, first=False):
            self.passes, self.fed = self.passes + 1, self.fed + len(ids)

    lm = Counting()
    rows = deployment.reply_formats(lm, CharTokenizer(), levels=(2,), n=6, repeats=1)
    by = {r["format"]: r for r in rows}
    assert set(by) == {"the JSON alone", "full rationale, then the JSON", "tool rationale, then the JSON",
                       "rules rationale, then the JSON"}
    alone = by["the JSON alone"]
    assert 1 <= alone["passes"] < alone["tokens"] / 2 and alone["name_steps"] < 1
    for fmt, r in by.items():
        assert r["passes"] - alone["passes"] == pytest.approx(r["tokens"] - alone["tokens"]), fmt
        assert r["n"] == 6 and r["p50_ms"] > 0
    assert by["full rationale, then the JSON"]["tokens"] > by["tool rationale, then the JSON"]["tokens"]
    assert "| the JSON alone | 2 | 6 |" in deployment.format_table(rows)


def test_reply_formats_leave_out_requests_past_the_context():
    from workbench.core.tokenizer import CharTokenizer
    from workbench.studies import deployment
    from workbench.tasks import splits

    tok = CharTokenizer()
    exs = splits.load("tool_call", "test", level=4, n=12)
    longest = [max(deployment._positions(tok, ex, f) for f in ("answer", "full", "tool", "rules")) for ex in exs]
    context = sorted(longest)[len(longest) // 2]  # about half of them fit

    class Bounded:  # a lean step with a context, refusing past it as LeanLlama does
        def __init__(self):
            self.context, self.at = context, 0

        def __call__(self, ids, first=False):
            self.at = (0 if first else self.at) + len(ids)
            if self.at > self.context:
                raise ValueError(f"{self.at} positions; this model reads at most {self.context}")

    rows = deployment.reply_formats(Bounded(), tok, levels=(4,), n=12, repeats=1)
    fit = sum(n <= context for n in longest)
    assert 0 < fit < 12 and all(r["n"] == fit and r["past_context"] == 12 - fit for r in rows)
