"""Train (or load from the cache) the specialist of every task in a profile and record its card.

    python scripts/specialists.py --profile laptop [TASK ...]      # also: make specialists

Each specialist is `workbench.recipes.specialist(task, profile)`: trained once, cached under
~/.cache/workbench/specialists, loaded afterwards. Its test accuracy at the BBH level, accuracy by
level, parameters, bytes on disk, training time and latency go to reports/results.json.
"""

from __future__ import annotations

import argparse
import json
import sys

from workbench import tasks
from workbench.core import env, report
from workbench.core.recipes import specialist


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default=None)
    p.add_argument("tasks", nargs="*", default=list(tasks.NAMES))
    args = p.parse_args()
    prof = env.profile_name(args.profile)
    env.set_threads()
    for name in args.tasks:
        _, _, card = specialist(name, prof)  # headless: one log line per record
        ev = card["eval"]
        key = f"specialists/{name}"
        report.record(f"{key}/accuracy", ev["accuracy"], profile=prof)
        for level, acc in ev["by_level"].items():
            report.record(f"{key}/accuracy_L{level}", acc, profile=prof)
        report.record(f"{key}/params", card["params"], profile=prof)
        report.record(f"{key}/bytes", card.get("bytes", 0), profile=prof)
        report.record(f"{key}/train_seconds", round(card["train_seconds"]), profile=prof)
        report.record(f"{key}/latency_ms", round(ev["latency_ms"], 1), profile=prof)
        print(json.dumps({"task": name, "profile": prof, "accuracy": ev["accuracy"], "by_level": ev["by_level"],
                          "params": card["params"], "train_seconds": round(card["train_seconds"])}), flush=True)
    print(report.write_markdown(prof))
    return 0


if __name__ == "__main__":
    sys.exit(main())
