"""The study of notebook 07: attributions of a specialist and of a real pretrained model, how faithful each
method is against random order, and whether the answer follows the rationale.

    s = studies.interpretability.study()
    res = faithfulness.measure(model, tok, questions, n_steps=s.n_steps)
    studies.interpretability.table(res)
    studies.interpretability.findings(res, dependence)["lines"]    # the sentences the notebook prints
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from workbench import explain
from workbench.core import env
from workbench.faithfulness import Faithfulness


@dataclass
class Study:
    """What notebook 07 measures, per profile (``study()``)."""

    task: str = "boolean_expressions"  # the specialist to inspect
    n: int = 12  # BBH-level questions for the faithfulness table and the rationale test
    n_steps: int = 200  # Integrated Gradients steps for the table (50 leave a large completeness gap here)
    explorer_steps: int = 50  # ... and in the explorers, which should answer within a second or two
    n_samples: int = 3  # Shapley value sampling permutations
    n_random: int = 5  # random orders per question: the floor every method is compared with
    max_new_tokens: int = 400  # the specialist's rationale budget (its longest BBH-level rationale fits)
    pretrained: str = "smollm2-135m-instruct"  # the real pretrained model inspected the same way
    pretrained_n: int = 4  # its questions (answer-only, through the chat template)
    # Shapley sampling left out: one forward of a 135M model costs a few hundred of the specialist's
    pretrained_methods: tuple[str, ...] = ("integrated_gradients", "feature_ablation", "attention")
    pretrained_steps: int = 50
    pretrained_random: int = 2

    SIZES: ClassVar[dict] = {
        "smoke": dict(n=2, n_steps=8, explorer_steps=8, n_samples=1, n_random=2, max_new_tokens=48, pretrained_n=1,
                      pretrained_methods=("attention",), pretrained_steps=8, pretrained_random=1),
        "gpu": dict(n=100, n_samples=10, n_random=10, pretrained_n=50, pretrained_steps=200, pretrained_random=5,
                    pretrained_methods=tuple(explain.METHODS)),
    }


def study(profile: str | None = None, **overrides) -> Study:
    """The study sized for ``profile`` (smoke: seconds)."""
    return env.sized(Study, profile, **overrides)


def table(res: Faithfulness) -> str:
    head = ("| method | deletion AUC ↓ | insertion AUC ↑ | comprehensiveness ↑ | sufficiency ↓ | "
            "better than random (del / ins / comp) | on rationale | s / attribution |\n"
            "|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in res.rows:
        share = res.shares.get(r["method"])
        lines.append(f"| {r['method']} | {r['deletion_auc']:.3f} | {r['insertion_auc']:.3f} | "
                     f"{r['comprehensiveness']:.3f} | {r['sufficiency']:.3f} | "
                     f"{r['deletion_gain']:+.3f} / {r['insertion_gain']:+.3f} / {r['comprehensiveness_gain']:+.3f} | "
                     f"{'' if share is None else f'{share:.0%}'} | {r['seconds']:.2f} |")
    return "\n".join(lines)


def findings(res: Faithfulness, dependence: dict | None = None, pretrained: Faithfulness | None = None) -> dict:
    """Sentences and figures to record, computed from ``measure`` and ``rationale_dependence`` results."""
    rows = [r for r in res.rows if r["method"] != "random"]
    lines, record = [], {}
    for r in rows:
        m = r["method"]
        better = r["deletion_gain"] > 0 and r["insertion_gain"] > 0 and r["comprehensiveness_gain"] > 0
        lines.append(f"{m}: {'better than random on all three' if better else 'NOT better than random on all'} "
                     f"(deletion {r['deletion_gain']:+.3f}, insertion {r['insertion_gain']:+.3f}, "
                     f"comprehensiveness {r['comprehensiveness_gain']:+.3f}); "
                     f"{res.shares.get(m, 0):.0%} of its attribution on the rationale; {r['seconds']:.2f} s each")
        for key in ("deletion_gain", "insertion_gain", "comprehensiveness_gain", "sufficiency", "seconds"):
            record[f"{m}/{key}"] = round(r[key], 3)
        record[f"{m}/rationale_share_pct"] = round(100 * res.shares.get(m, 0), 1)
    if rows:
        best = max(rows, key=lambda r: r["deletion_gain"])
        lines.append(f"Most faithful by deletion: {best['method']}.")
        record["most_faithful_by_deletion"] = best["method"]
    if dependence:
        lines.append(f"Last rationale step flipped: the answer followed it in {dependence['follows_last']:.0%} of "
                     f"{dependence['n']} questions. First step flipped: the final answer changed in "
                     f"{dependence['changed_first']:.0%}.")
        record["follows_last_step_pct"] = round(100 * dependence["follows_last"], 1)
        record["changed_after_first_step_pct"] = round(100 * dependence["changed_first"], 1)
    if pretrained is not None:
        prow = [r for r in pretrained.rows if r["method"] != "random"]
        if prow:
            pbest = max(prow, key=lambda r: r["deletion_gain"])
            lines.append(f"Pretrained model: most faithful by deletion {pbest['method']} "
                         f"({pbest['deletion_gain']:+.3f} over random).")
            for r in prow:
                record[f"pretrained/{r['method']}/deletion_gain"] = round(r["deletion_gain"], 3)
    return {"lines": lines, "record": record}
