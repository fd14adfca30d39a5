"""The command line: ``python -m workbench {eval,train,bench,export,data,report} ...``.

    python -m workbench eval --model smollm2-135m-instruct --task boolean_expressions --n 20 --shots 3
    python -m workbench eval --model artifacts/bool --task boolean_expressions --data my_eval.jsonl
    python -m workbench train --task boolean_expressions --profile laptop --out artifacts/bool
    python -m workbench bench train --profile laptop   # training throughput vs matmul speed
    python -m workbench bench explain                  # Integrated Gradients time for one generated token
    python -m workbench bench agent                    # the tool_call specialist as a router vs SmolLM2
    python -m workbench bench router --model DIR       # its lean decode path against transformers', interleaved
    python -m workbench bench grammars --n 50          # our grammar against xgrammar, outlines, lm-format-enforcer
    python -m workbench export --model data/specialists/tool_call --out artifacts/tool_call-gguf --gguf f32,q8_0
    python -m workbench data      # regenerate data/ (the fixed splits; --force replaces files that differ)
    python -m workbench report    # reports/results.md from reports/results.json

Bad input (an unknown task, a missing or malformed file, a model that does not exist, an --out that
holds something else) prints one line on stderr and exits with status 2, never a traceback, and
changes no file: every argument and file is checked first (``workbench.core.validate``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workbench.core.validate import BadInput


class UsageError(BadInput):
    """Bad input from the user: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (``error: ...``, status 2) instead of the usage and then the error."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}")


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


def quiet_transformers() -> None:
    """No progress bars or load reports from transformers: the CLI's streams hold its results and errors only."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def cmd_eval(args) -> int:
    from workbench import tasks
    from workbench.core import env, validate
    from workbench.core.evaluate import EvalConfig, evaluate
    from workbench.core.files import check_new_file
    from workbench.core.models import PRETRAINED, load_pretrained, resolve
    from workbench.tasks import splits

    try:
        task = tasks.get(args.task)
        if args.data is not None and args.level is not None:
            raise UsageError("--level selects a level of the task's test split; with --data, put a \"level\" "
                             "field on the lines instead")
        if args.predictions is not None:
            check_new_file(args.predictions, "--predictions", args.force)
        if args.data is not None:
            lines = validate.read_examples(args.data, task)[: args.n]
            labels, examples = [f"{args.data}:{n}" for n, _ in lines], [ex for _, ex in lines]
        else:
            labels, examples = None, splits.load(task.name, "test", level=args.level, n=args.n)
        where = resolve(args.model)
        if Path(where).is_dir():
            validate.check_model_folder(where, args.allow_pickle)
    except (ValueError, ModuleNotFoundError) as err:
        raise UsageError(str(err)) from None
    env.set_seed(0)
    env.set_threads()
    quiet_transformers()  # stdout holds the one JSON line, stderr only an error
    try:
        model, tok = load_pretrained(args.model, device=env.device(), allow_download=args.allow_download,
                                     allow_pickle=args.allow_pickle)
    except (OSError, ValueError) as err:
        raise UsageError(f"could not load model {args.model!r}: {str(err).splitlines()[0]}") from None
    student = type(tok).__name__ == "CharTokenizer"
    shots = args.shots if args.shots is not None else (0 if student else 3)
    chat = args.chat and tok.chat_template is not None
    if args.chat and not chat:
        raise UsageError(f"model {args.model!r} has no chat template; drop --chat")
    from workbench.core.artifacts import is_model_folder, read_card

    trained = read_card(where).get("train", {}) if is_model_folder(where) else {}  # how a student was trained
    rationale = args.rationale if args.rationale is not None else bool(trained.get("rationale"))
    fmt = trained.get("format", "full")  # sizes the budget; another task's format does not apply here
    cfg = EvalConfig(shots=shots, chat=chat, rationale=rationale, format=fmt if fmt in task.formats else "full",
                     batch_size=args.batch_size)
    local = args.model not in PRETRAINED and where != args.model
    res = evaluate(model, tok, task.name, examples, cfg, model_name=args.model,
                   model_path=where if local or args.model in PRETRAINED else None, labels=labels)
    if args.predictions is not None:
        from workbench.core.files import write_atomic

        write_atomic(args.predictions, "".join(json.dumps(p) + "\n" for p in res.predictions))
    print(json.dumps(res.summary()))
    return 0


def cmd_train(args) -> int:
    from workbench import tasks
    from workbench.core import env
    from workbench.core.recipes import train_specialist

    names = [t for t in args.task.split(",") if t] or [args.task]  # "" is an unknown task, not zero tasks
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
    from workbench.bench import bench_agent, bench_explain, bench_router, bench_train

    try:
        tasks.get(args.task)
        from workbench.core.env import profile_name

        profile_name(args.profile)
        if args.what == "router":
            tasks.get("tool_call").check_level(args.level)
        if args.what in ("agent", "router", "grammars") and args.model:
            from workbench.core.models import resolve
            from workbench.core.validate import check_model_folder

            check_model_folder(resolve(args.model))
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.what == "agent":
        out = bench_agent(args.profile, args.out, args.model)
        print(out["table"])
        print(out["export_table"])
        print(out["format_table"])
        print(json.dumps({k: v for k, v in out.items() if not k.endswith("table")}, default=str))
        return 0
    if args.what == "router":
        from workbench.bench import router_table

        out = bench_router(args.model, args.profile, args.level, args.n, args.repeats)
        print(router_table(out["rows"]))
        print(f"{out['model']}, level {out['level']}, {out['threads']} threads, {out['machine']}")
        print(json.dumps(out, default=str))
        return 0
    if args.what == "grammars":
        from workbench.agent.libgrammars import table
        from workbench.bench import bench_grammars

        out = bench_grammars(args.model, args.profile, n=args.n, repeats=args.repeats)
        print(table(out["rows"]))
        print(f"{out['model']}, levels {out['levels']}, {out['threads']} threads, {out['machine']}")
        print(json.dumps({**out, "rows": [{k: v for k, v in r.items() if k != "calls"} for r in out["rows"]]}))
        return 0
    if args.what == "explain":
        out = bench_explain(args.task, args.profile)
        print(f"Integrated Gradients, {out['n_steps']} steps, {out['context_tokens']}-token context, "
              f"{out['params']:,}-param {out['task']} specialist: {out['seconds']:.2f} s "
              f"(convergence delta {out['ig_delta']:.3f}; {out['machine']})")
        print(json.dumps(out))
        return 0
    out = bench_train(args.task, args.profile, args.steps, args.batch_size)
    print(f"training  {out['tokens_per_s']:,.0f} tokens/s x 6 x {out['params']:,} params = "
          f"{out['model_gflops']:.1f} GFLOP/s; {out['seconds_per_step']:.3f} s a step at batch {out['batch_size']}")
    print(f"matmul    {out['matmul_gflops']:.1f} GFLOP/s (fp32, 2048^3)")
    print(f"ratio     {100 * out['fraction_of_matmul']:.0f}% of the matmul rate  ({out['machine']})")
    print(f"data      {100 * out['data_share']:.1f}% of step time generating examples")
    print(json.dumps(out))
    return 0


def cmd_export(args) -> int:
    from workbench.agent import export
    from workbench.core.artifacts import check_writable, read_card
    from workbench.core.files import check_export_folder, locked
    from workbench.core.validate import check_model_folder

    try:
        quants = [q for q in args.gguf.split(",") if q] or [args.gguf]
        for q in quants:
            if q not in export.GGUF_FILES:
                raise ValueError(f"--gguf {q!r} is not a GGUF type this export writes: choose from "
                                 f"{', '.join(export.GGUF_FILES)} (comma-separated)")
        check_model_folder(args.model)
        check_export_folder(args.out)
        export.require_packages("gguf", hint=export.GGUF_HINT)
    except (ValueError, ModuleNotFoundError) as err:
        raise UsageError(str(err)) from None
    quiet_transformers()
    from workbench.core.models import load_pretrained

    try:
        model, tok = load_pretrained(args.model)
    except (OSError, ValueError) as err:
        raise UsageError(f"could not load model {args.model!r}: {str(err).splitlines()[0]}") from None
    try:
        export.check_gguf(model, tok)  # a llama student with a character vocabulary, before --out is made
    except ValueError as err:
        raise UsageError(f"cannot export {args.model!r} as GGUF: {err}") from None
    card = read_card(args.model) if (Path(args.model) / "workbench.json").exists() else None
    with locked(check_writable(args.out)):
        check_export_folder(args.out)  # again, under the lock: another run may have just written there
        files = [export.to_gguf(model, args.out, tok, quant=q, card=card) for q in quants]
    print(json.dumps({"out": args.out, "files": {f.name: f.stat().st_size for f in files}}))
    return 0


def cmd_data(args) -> int:
    from workbench import tasks
    from workbench.core.artifacts import check_writable
    from workbench.core.files import check_folder, needs_writing, write_atomic
    from workbench.tasks import splits

    try:
        names = list(tasks.TASKS) if args.task is None else [tasks.get(args.task).name]
        folder = splits.DATA_DIR if args.dir is None else check_folder(args.dir, "--dir", "a folder")
    except ValueError as err:
        raise UsageError(str(err)) from None
    files = {p: text for name in names for p, text in splits.texts(name, folder).items()}
    todo = [p for p, text in files.items() if needs_writing(p, text, args.force)]  # all checked first
    if todo:
        check_writable(folder, "--dir")
    for p in todo:
        write_atomic(p, files[p])
    print(json.dumps({"written": [str(p) for p in todo], "unchanged": len(files) - len(todo)}))
    return 0


def cmd_report(args) -> int:
    from workbench.core import report

    print(report.write_markdown(args.profile))
    return 0


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m workbench", description=__doc__.split("\n")[0])
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
    e.add_argument("--predictions", help="also write every prediction to this JSONL file (a new file)")
    e.add_argument("--force", action="store_true", help="let --predictions replace an existing file")
    e.add_argument("--allow-download", action="store_true", help="let a hub id download (off by default)")
    e.add_argument("--allow-pickle", action="store_true",
                   help="UNSAFE: load pickle weights (pytorch_model.bin); unpickling can run arbitrary code, so "
                        "use it only for files you trust (default: safetensors only)")
    e.set_defaults(func=cmd_eval)

    t = sub.add_parser("train", help="train a specialist from scratch and save it to --out")
    t.add_argument("--task", required=True, help="the task to train on")
    t.add_argument("--profile", help="smoke, laptop or gpu (default: WORKBENCH_PROFILE, else by hardware)")
    t.add_argument("--out", required=True, help="folder for the model, its card and checkpoints: absent, empty, "
                   "or an unfinished run of the same task (with --resume); a finished model is never rewritten")
    t.add_argument("--steps", type=int, help="optimizer steps (default: the profile's recipe)")
    t.add_argument("--rationale", action=argparse.BooleanOptionalAction, default=None,
                   help="learn a rationale, or the answer only (default: as the task's recipe says)")
    t.add_argument("--resume", action="store_true", help="continue the unfinished run in --out from its last "
                   "checkpoint (same task and arguments)")
    t.set_defaults(func=cmd_train)

    b = sub.add_parser("bench", help="benchmarks: `bench train` sets training throughput beside matmul speed; "
                       "`bench explain` times Integrated Gradients for one generated token; `bench agent` runs "
                       "the tool_call specialist as an agent's router against the pretrained model; `bench router` "
                       "times its lean decode path against transformers', request by request; `bench grammars` sets "
                       "our constrained decoding against xgrammar, outlines and lm-format-enforcer (levels 2 and 5)")
    b.add_argument("what", choices=("train", "explain", "agent", "router", "grammars"))
    b.add_argument("--task", default="boolean_expressions")
    b.add_argument("--profile", help="whose recipe to time (default: WORKBENCH_PROFILE, else by hardware)")
    b.add_argument("--steps", type=_positive, default=120, help="steps timed (after two warm-up buckets)")
    b.add_argument("--batch-size", type=_positive, help="bench train: examples a step (default: the recipe's)")
    b.add_argument("--out", default="artifacts/tool_call_export",
                   help="bench agent: folder for the exported ONNX / torch.export models: absent, empty, or one an "
                   "earlier export wrote (its exported files are replaced; nothing else is touched)")
    b.add_argument("--model", help="bench agent, router, grammars: a folder with a trained tool_call student (default: "
                   "the profile's cached specialist)")
    b.add_argument("--level", type=_positive, default=2, help="bench router: the tool_call test level (2: reference)")
    b.add_argument("--n", type=_positive, default=50, help="bench router, grammars: requests (per level)")
    b.add_argument("--repeats", type=_positive, default=3, help="bench router, grammars: passes over the requests")
    b.set_defaults(func=cmd_bench)

    x = sub.add_parser("export", help="write a trained specialist as a GGUF file (llama.cpp, Ollama, LM Studio) with "
                       "its tokenizer; prints one JSON line")
    x.add_argument("--model", required=True, help="a folder with a trained student (`train --out`, or "
                   "data/specialists/TASK)")
    x.add_argument("--out", required=True, help="folder for the files: absent, empty, or one an earlier export "
                   "wrote (its exported files of the same names are replaced; nothing else is touched)")
    x.add_argument("--gguf", default="f32", help="which GGUF files, comma-separated: f32 (model.gguf), q8_0 "
                   "(model.q8_0.gguf; matrices whose rows are not a multiple of 32 stay f32)")
    x.set_defaults(func=cmd_export)

    d = sub.add_parser("data", help="regenerate the fixed splits in data/: writes the files that are missing; a "
                       "file that differs from what the generators make is replaced only with --force")
    d.add_argument("--task", help="only this task's splits (default: every task)")
    d.add_argument("--dir", help="the folder of the splits (default: the repository's data/)")
    d.add_argument("--force", action="store_true", help="replace split files that differ (your edits are lost)")
    d.set_defaults(func=cmd_data)

    r = sub.add_parser("report", help="write results.md from results.json")
    r.add_argument("--profile", help="smoke, laptop or gpu (default: WORKBENCH_PROFILE)")
    r.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        return args.func(args)
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
