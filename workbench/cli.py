"""The command line: ``python -m workbench {eval,train,bench,data,report} ...``.

    python -m workbench eval --model smollm2-135m-instruct --task boolean_expressions --n 20 --shots 3
    python -m workbench eval --model artifacts/bool --task boolean_expressions --data my_eval.jsonl
    python -m workbench train --task boolean_expressions --profile laptop --out artifacts/bool
    python -m workbench bench train --profile laptop   # training throughput vs matmul speed
    python -m workbench bench explain                  # Integrated Gradients time for one generated token
    python -m workbench bench agent                    # the tool_call specialist as a router vs SmolLM2
    python -m workbench data      # regenerate data/ (the fixed splits)
    python -m workbench report    # reports/results.md from reports/results.json

Bad input (an unknown task, a missing or malformed file, a model that does not exist) prints one
line on stderr and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def _int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``, else a message naming the value."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value
    return parse


_positive, _non_negative = _int_at_least(1), _int_at_least(0)


def cmd_eval(args) -> int:
    from workbench import tasks
    from workbench.core import env
    from workbench.core.evaluate import EvalConfig, evaluate, read_jsonl
    from workbench.core.models import PRETRAINED, load_pretrained, resolve
    from workbench.tasks import splits

    try:
        task = tasks.get(args.task)
        if args.data:
            examples = read_jsonl(args.data, task.name)[: args.n]
        else:
            examples = splits.load(task.name, "test", level=args.level, n=args.n)
        where = resolve(args.model)
    except (ValueError, FileNotFoundError, ModuleNotFoundError) as err:
        raise UsageError(str(err)) from None
    env.set_seed(0)
    env.set_threads()
    try:
        model, tok = load_pretrained(args.model, device=env.device(), allow_download=args.allow_download)
    except (OSError, ValueError) as err:
        raise UsageError(f"could not load model {args.model!r}: {str(err).splitlines()[0]}") from None
    student = type(tok).__name__ == "CharTokenizer"
    shots = args.shots if args.shots is not None else (0 if student else 3)
    chat = args.chat and tok.chat_template is not None
    if args.chat and not chat:
        raise UsageError(f"model {args.model!r} has no chat template; drop --chat")
    from workbench.core.artifacts import is_model_folder, read_card

    trained = read_card(where)["train"] if is_model_folder(where) else {}  # a student's card says how it was trained
    rationale = args.rationale if args.rationale is not None else bool(trained.get("rationale"))
    fmt = trained.get("format", "full")  # sizes the budget; another task's format does not apply here
    cfg = EvalConfig(shots=shots, chat=chat, rationale=rationale, format=fmt if fmt in task.formats else "full",
                     batch_size=args.batch_size)
    local = args.model not in PRETRAINED and where != args.model
    res = evaluate(model, tok, task.name, examples, cfg, model_name=args.model,
                   model_path=where if local or args.model in PRETRAINED else None)
    print(json.dumps(res.summary()))
    if args.predictions:
        with open(args.predictions, "w") as f:
            for p in res.predictions:
                f.write(json.dumps(p) + "\n")
    return 0


def cmd_train(args) -> int:
    from workbench import tasks
    from workbench.core import env
    from workbench.core.recipes import train_specialist

    names = [t for t in args.task.split(",") if t]
    try:
        for name in names:
            tasks.get(name)
        if len(names) != 1:
            raise ValueError(f"train takes one task for now, got {args.task!r} (multi-task training: notebook 06)")
        env.profile_name(args.profile)
        if args.steps is not None and args.steps < 1:
            raise ValueError(f"--steps must be a positive integer, got {args.steps}")
        card = train_specialist(names[0], args.profile, out=args.out, steps=args.steps,
                                rationale=args.rationale, resume=args.resume)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not card:  # not the main process of a data-parallel run
        return 0
    ev = card["eval"]
    print(json.dumps({"out": args.out, "task": names[0], "params": card["params"], "steps": card["train"]["steps"],
                      "processes": card["processes"],
                      "train_seconds": round(card["train_seconds"], 1), "accuracy": ev["accuracy"],
                      "by_level": ev["by_level"]}))
    return 0


def cmd_bench(args) -> int:
    from workbench import tasks
    from workbench.bench import bench_agent, bench_explain, bench_train

    try:
        tasks.get(args.task)
        from workbench.core.env import profile_name

        profile_name(args.profile)
        if args.what == "agent" and args.model:
            from workbench.core.models import resolve

            resolve(args.model)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.what == "agent":
        out = bench_agent(args.profile, args.out, args.model)
        print(out["table"])
        print(out["export_table"])
        print(json.dumps({k: v for k, v in out.items() if not k.endswith("table")}, default=str))
        return 0
    if args.what == "explain":
        out = bench_explain(args.task, args.profile)
        print(f"Integrated Gradients, {out['n_steps']} steps, {out['context_tokens']}-token context, "
              f"{out['params']:,}-param {out['task']} specialist: {out['seconds']:.2f} s "
              f"(convergence delta {out['ig_delta']:.3f}; {out['machine']})")
        print(json.dumps(out))
        return 0
    out = bench_train(args.task, args.profile, args.steps)
    print(f"training  {out['tokens_per_s']:,.0f} tokens/s x 6 x {out['params']:,} params = "
          f"{out['model_gflops']:.1f} GFLOP/s")
    print(f"matmul    {out['matmul_gflops']:.1f} GFLOP/s (fp32, 2048^3)")
    print(f"ratio     {100 * out['fraction_of_matmul']:.0f}% of the matmul rate  ({out['machine']})")
    print(f"data      {100 * out['data_share']:.1f}% of step time generating examples")
    print(json.dumps(out))
    return 0


def cmd_data(args) -> int:
    from workbench.tasks import splits

    print(json.dumps(splits.write_all()))
    return 0


def cmd_report(args) -> int:
    from workbench.core import report

    print(report.write_markdown(args.profile))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m workbench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("eval", help="score a model on a task; prints one JSON line")
    e.add_argument("--model", required=True, help="a known name (smollm2-135m-instruct, gemma-3-270m), "
                   "a folder written by save_pretrained, or a hub id")
    e.add_argument("--task", required=True, help="one of the five task names")
    e.add_argument("--data", help="a JSONL file of {\"input\", \"target\"} objects; default: the task's test split")
    e.add_argument("--n", type=_positive, help="score only the first N examples")
    e.add_argument("--level", type=int, help="only this level of the test split")
    e.add_argument("--shots", type=_non_negative, help="few-shot examples (default: 0 for students, 3 otherwise)")
    e.add_argument("--chat", action="store_true", help="use the model's chat template")
    e.add_argument("--rationale", action=argparse.BooleanOptionalAction, default=None,
                   help="the model writes a rationale before its answer (default: as its card says)")
    e.add_argument("--batch-size", type=_positive, default=8)
    e.add_argument("--predictions", help="also write every prediction to this JSONL file")
    e.add_argument("--allow-download", action="store_true", help="let a hub id download (off by default)")
    e.set_defaults(func=cmd_eval)

    t = sub.add_parser("train", help="train a specialist from scratch and save it to --out")
    t.add_argument("--task", required=True, help="the task to train on")
    t.add_argument("--profile", help="smoke, laptop or gpu (default: WORKBENCH_PROFILE, else by hardware)")
    t.add_argument("--out", required=True, help="folder for the model, its card and checkpoints")
    t.add_argument("--steps", type=int, help="optimizer steps (default: the profile's recipe)")
    t.add_argument("--rationale", action=argparse.BooleanOptionalAction, default=None,
                   help="learn a rationale, or the answer only (default: as the task's recipe says)")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    t.set_defaults(func=cmd_train)

    b = sub.add_parser("bench", help="benchmarks: `bench train` sets training throughput beside matmul speed; "
                       "`bench explain` times Integrated Gradients for one generated token; `bench agent` runs "
                       "the tool_call specialist as an agent's router against the pretrained model")
    b.add_argument("what", choices=("train", "explain", "agent"))
    b.add_argument("--task", default="boolean_expressions")
    b.add_argument("--profile", help="whose recipe to time (default: WORKBENCH_PROFILE, else by hardware)")
    b.add_argument("--steps", type=_positive, default=120, help="steps timed (after two warm-up buckets)")
    b.add_argument("--out", default="artifacts/tool_call_export",
                   help="bench agent: folder for the exported ONNX / torch.export models")
    b.add_argument("--model", help="bench agent: a folder with a trained tool_call student (default: the "
                   "profile's cached specialist)")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("data", help="regenerate the fixed splits in data/")
    d.set_defaults(func=cmd_data)

    r = sub.add_parser("report", help="write results.md from results.json")
    r.add_argument("--profile", help="smoke, laptop or gpu (default: WORKBENCH_PROFILE)")
    r.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
