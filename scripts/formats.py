"""The format study of one task: a student per rationale format at equal training tokens (studies.formats).

    python scripts/formats.py dyck_languages --profile laptop              # every format of the task
    python scripts/formats.py multistep_arithmetic_two --tokens 3000000 --formats answer rewrite

Prints one JSON line per format as it finishes, then the table; every figure also goes to
reports/results.json under ``formats/<task>/<format>/`` (stamped with the profile and the machine).
"""

from __future__ import annotations

import argparse
import json
import sys

from workbench.core import env, report
from workbench.studies import formats


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("task")
    p.add_argument("--profile", default=None)
    p.add_argument("--tokens", type=int, help="training tokens per format (default: the profile's)")
    p.add_argument("--formats", nargs="*", default=(), help="answer and the task's formats (default: all)")
    p.add_argument("--evals", type=int, default=0, help="validation evaluations during training (a curve)")
    args = p.parse_args()
    prof = env.profile_name(args.profile)
    env.set_seed(0)
    env.set_threads()
    overrides = {"task": args.task, "formats": tuple(args.formats), "evals": args.evals}
    if args.tokens:
        overrides["tokens"] = args.tokens
    try:
        s = formats.study(prof, **overrides)
        for fmt in formats.formats_of(s):
            formats.config(s, fmt).check()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    def done(row):
        shown = {k: v for k, v in row.items() if k != "model"}
        print(json.dumps({"task": s.task, **shown}), flush=True)
        report.record_rows(f"formats/{s.task}", [{**shown, **{f"L{k}": v for k, v in row["by_level"].items()}}],
                           label="format", metrics={"accuracy": "accuracy_pct", "steps": "steps",
                                                    "train_tokens": "train_tokens", "train_seconds": "train_seconds",
                                                    **{f"L{k}": f"L{k}_pct" for k in row["by_level"]}},
                           profile=prof)

    rows = formats.run(s, callback=done)
    print(formats.table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
