"""Refresh the shipped specialists (laptop) or train the cached ones (other profiles), and record their cards.

    python scripts/specialists.py --profile laptop [TASK ...]      # also: make specialists
    python scripts/specialists.py --profile laptop --retrain TASK  # train it again even if the shipped one is current
    python scripts/specialists.py --quick [TASK ...]              # the 15-minute laptop runs (recipes.QUICK_STEPS)

In the laptop profile each task's specialist ships in data/specialists/TASK: one made by the task's current
recipe is kept as it is; a missing or stale one (its card's recipe key is not the recipe's) is trained by the
recipe (`recipes.specialist(task, fresh=True)`, cached under ~/.cache/workbench/specialists) and shipped
(`recipes.ship`: float16 weights where they score as float32 did). Other profiles train and cache only. Each
card's test accuracy at the BBH level, accuracy by level, parameters, bytes on disk, training time and latency
go to reports/results.json. The laptop profile also ships notebook 03's SmolLM2 + LoRA teacher in data/teachers
(`studies.distillation.ship_teacher`: float16 adapters) when the one there was made by another recipe.
"""

from __future__ import annotations

import argparse
import json
import sys

from workbench import tasks
from workbench.core import env, recipes, report
from workbench.studies import distillation


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default=None)
    p.add_argument("--retrain", action="store_true",
                   help="ship the recipe's own run (cached, or trained now) even over a current shipped one")
    p.add_argument("--quick", action="store_true",
                   help="train (cached) each task's laptop recipe cut to the 15-minute budget (recipes.QUICK_STEPS) "
                        "and record it under specialists_quick/; nothing is shipped")
    p.add_argument("tasks", nargs="*", default=list(tasks.NAMES))
    args = p.parse_args()
    prof = recipes.SHIPPED_PROFILE if args.quick else env.profile_name(args.profile)
    if args.quick and args.profile not in (None, recipes.SHIPPED_PROFILE):
        p.error(f"--quick runs the {recipes.SHIPPED_PROFILE} recipes; drop --profile {args.profile}")
    try:
        names = [tasks.get(t).name for t in args.tasks]  # an unknown task is refused before anything trains
    except ValueError as err:
        p.error(str(err))
    env.set_threads()
    for name in names:
        if args.quick:
            card = recipes.quick(name)
        elif prof == recipes.SHIPPED_PROFILE and (args.retrain or recipes.shipped(name, prof) is None):
            recipes.specialist(name, prof, fresh=True)  # the recipe's own run; headless: one log line per record
            card = recipes.ship(name, recipes.cached_folder(name, prof))
            print(f"shipped {recipes.shipped_folder(name)} ({card['stored_dtype']})", flush=True)
        else:
            _, _, card = recipes.specialist(name, prof, fresh=args.retrain)
        ev = card["eval"]
        key = f"specialists{'_quick' if args.quick else ''}/{name}"
        report.record(f"{key}/accuracy", ev["accuracy"], profile=prof)
        for level, acc in ev["by_level"].items():
            report.record(f"{key}/accuracy_L{level}", acc, profile=prof)
        report.record(f"{key}/params", card["params"], profile=prof)
        report.record(f"{key}/bytes", card.get("bytes", 0), profile=prof)
        report.record(f"{key}/train_seconds", round(card["train_seconds"]), profile=prof)
        report.record(f"{key}/steps", card["train"]["steps"], profile=prof)
        report.record(f"{key}/latency_ms", round(ev["latency_ms"], 1), profile=prof)
        print(json.dumps({"task": name, "profile": prof, "accuracy": ev["accuracy"], "by_level": ev["by_level"],
                          "params": card["params"], "train_seconds": round(card["train_seconds"])}), flush=True)
    kd = distillation.study(prof)
    if prof == recipes.SHIPPED_PROFILE and not args.quick and kd.task in names:
        cfg = distillation.lora_teacher_config(prof)
        if args.retrain or not (distillation.SHIPPED_TEACHERS / distillation.teacher_id(kd.task, cfg)).is_dir():
            card = distillation.ship_teacher(kd.task, cfg)
            print(f"shipped {distillation.SHIPPED_TEACHERS / card['id']}: {card['eval']['accuracy']:.0%} "
                  f"(as trained {card['trained_eval']['accuracy']:.0%})", flush=True)
    print(report.write_markdown(prof))
    return 0


if __name__ == "__main__":
    sys.exit(main())
