"""The one training loop: schedule, batches, masking, learning, checkpoints and exact resume."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from workbench.core import train as tr
from workbench.core.measure import count_params
from workbench.core.models import StudentConfig, load_pretrained, student
from workbench.core.tokenizer import CharTokenizer
from workbench.tasks import splits


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    cfg = tr.TrainConfig(steps=100, warmup=10, min_lr_ratio=0.1)
    f = tr.lr_lambda(cfg)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.55) and f(100) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(10, 100))


def test_encode_learns_only_the_completion():
    tok = CharTokenizer()
    ex = splits.load("boolean_expressions", "train", n=1)[0]
    batch = tr.encode(tok, [ex, ex], rationale=False, max_len=512)
    prompt_len = len(ex.input) + 1  # the question and its newline
    labels = batch["labels"][0].tolist()
    assert labels[:prompt_len] == [-100] * prompt_len
    assert tok.decode(labels[prompt_len:-1]) == ex.target and labels[-1] == tok.eos_token_id


@pytest.mark.parametrize("rationale", [False, True])
def test_encode_gives_the_same_batch_on_the_character_fast_path(rationale):
    class Plain(CharTokenizer):  # no fast path: every text through transformers' __call__
        char_ids = None

    names = ("boolean_expressions", "dyck_languages", "tool_call")
    exs = [e for name in names for e in splits.load(name, "train", n=3)]
    fast, plain = tr.encode(CharTokenizer(), exs, rationale, 512), tr.encode(Plain(), exs, rationale, 512)
    assert all(torch.equal(fast[k], plain[k]) for k in ("input_ids", "attention_mask", "labels"))


def test_buckets_are_deterministic_sorted_and_cover_the_pool():
    cfg = tr.TrainConfig(batch_size=4, bucket=4)
    sampler = tr.TaskSampler(["dyck_languages"], seed=1)
    batches = [tr.bucketed(sampler, s, 0, cfg) for s in range(4)]
    assert batches == [tr.bucketed(sampler, s, 0, cfg) for s in range(4)]
    lengths = [[len(e.input) + len(e.rationale) for e in b] for b in batches]
    spans = sorted((min(x), max(x)) for x in lengths)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # buckets do not overlap: little padding
    assert tr.bucketed(sampler, 0, 1, cfg) != batches[0]  # another rank draws other data


def test_sampler_never_yields_held_out_inputs():
    sampler = tr.TaskSampler(["boolean_expressions"], levels=(1, 2), seed=0)
    held = {e.input for e in splits.load("boolean_expressions", "test")}
    drawn = [e for s in range(30) for e in sampler.examples(s, 0, 16)]
    assert drawn and not {e.input for e in drawn} & held


@pytest.mark.parametrize("changes, message", [
    ({"steps": 0}, "steps must be a positive integer"),
    ({"lr": 0.0}, "lr must be positive"),
    ({"checkpoint_every": 12, "bucket": 8}, "multiples of bucket"),
    ({"tasks": ("chess",)}, "unknown task 'chess'"),
    ({"levels": (9,)}, "has no level 9"),
    ({"format": "stack"}, "task 'boolean_expressions' has no rationale format 'stack'"),
])
def test_bad_config_is_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        tr.TrainConfig(**changes).check()


def test_student_factory_and_errors():
    tok = CharTokenizer()
    m = student(StudentConfig(layers=2, width=64, heads=4), tok)
    assert m.config.vocab_size == tok.vocab_size and count_params(m) > 0
    with pytest.raises(ValueError, match="divisible by heads"):
        student(StudentConfig(width=65, heads=4), tok)


def test_a_short_run_learns():
    tok = CharTokenizer()
    torch.manual_seed(0)
    model = student(StudentConfig(layers=2, width=64, heads=4, max_len=256), tok)
    cfg = tr.TrainConfig(steps=48, batch_size=16, lr=3e-3, warmup=4, log_every=8, eval_every=0, eval_n=4,
                         rationale=False)
    result = tr.train(model, tok, cfg, progress=False)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert losses[-1] < 0.6 * losses[0]
    assert result.tokens > 0 and "val_accuracy" in result.final_eval


def _train_cmd(out, steps=48):
    return [sys.executable, "-m", "workbench", "train", "--task", "boolean_expressions", "--profile", "smoke",
            "--out", str(out), "--steps", str(steps)]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", WORKBENCH_PROFILE="smoke")


@pytest.mark.slow  # subprocesses
def test_killed_run_resumes_to_the_same_model(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    p = subprocess.run(_train_cmd(full), capture_output=True, text=True, env=_env(), timeout=600)
    assert p.returncode == 0, p.stderr

    proc = subprocess.Popen(_train_cmd(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    pointer = killed / "checkpoints" / "latest.json"
    deadline = time.time() + 300
    while not pointer.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "model.safetensors").exists()
    step = json.loads(pointer.read_text())["step"]
    assert 0 < step < 48

    q = subprocess.run(_train_cmd(killed), capture_output=True, text=True, env=_env(), timeout=600)
    assert q.returncode == 2 and "holds checkpoints of an unfinished run; pass --resume" in q.stderr

    p = subprocess.run(_train_cmd(killed) + ["--resume"], capture_output=True, text=True, env=_env(), timeout=600)
    assert p.returncode == 0, p.stderr
    a, b = load_file(full / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    card_a = json.loads((full / "workbench.json").read_text())
    card_b = json.loads((killed / "workbench.json").read_text())
    assert card_a["eval"]["accuracy"] == card_b["eval"]["accuracy"]
    loss = [h["loss"] for h in card_a["history"] if "loss" in h]
    assert loss == [h["loss"] for h in card_b["history"] if "loss" in h]

    # the saved specialist is a transformers model with its tokenizer and card
    model, tok = load_pretrained(str(full))
    assert type(tok).__name__ == "CharTokenizer" and (full / "README.md").read_text().startswith("# ")


def _files(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # subprocesses
def test_bad_train_input_leaves_artifacts_alone(tmp_path):
    out = tmp_path / "run"
    p = subprocess.run(_train_cmd(out, steps=16), capture_output=True, text=True, env=_env(), timeout=600)
    assert p.returncode == 0, p.stderr
    before = _files(out)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases = [
        (["--task", "chess"], "unknown task 'chess'"),
        (["--steps", "0"], "--steps must be a positive integer"),
        (["--out", str(blocker)], "exists and is not a folder"),
        (["--out", str(blocker / "sub")], "is not writable"),
        ([], "already holds a trained model"),
        (["--profile", "huge"], "unknown profile 'huge'"),
    ]
    for extra, message in cases:
        args = _train_cmd(out, steps=16)
        for flag, value in zip(extra[::2], extra[1::2]):
            args[args.index(flag) + 1] = value
        q = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=600)
        assert q.returncode == 2 and message in q.stderr and "Traceback" not in q.stderr, (extra, q.stderr)
    assert _files(out) == before

    # --resume never rewrites a finished model
    q = subprocess.run(_train_cmd(out, steps=16) + ["--resume"], capture_output=True, text=True, env=_env(),
                       timeout=600)
    assert q.returncode == 2 and "a finished model is never rewritten" in q.stderr and _files(out) == before

    # a corrupted checkpoint of an unfinished run (no card yet): one clear line, nothing else changes
    (out / "workbench.json").unlink()
    ckpt = out / "checkpoints" / json.loads((out / "checkpoints" / "latest.json").read_text())["path"]
    (ckpt / "optimizer.pt").write_bytes(b"not a checkpoint")
    before = _files(out)
    q = subprocess.run(_train_cmd(out, steps=16) + ["--resume"], capture_output=True, text=True, env=_env(),
                       timeout=600)
    assert q.returncode == 2 and "is corrupted or incomplete" in q.stderr and "Traceback" not in q.stderr
    assert _files(out) == before


@pytest.mark.slow  # two processes
def test_two_processes_train_data_parallel(tmp_path):
    out = tmp_path / "ddp"
    launcher = Path(sys.executable).parent / "accelerate"
    # accelerate 1.x starts several CPU processes through torchrun with --multi_gpu (its --cpu launcher
    # starts one process unless MPI is installed); the workbench's Accelerator keeps them on the CPU (gloo)
    cmd = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "workbench", "train",
           "--task", "boolean_expressions", "--profile", "smoke", "--steps", "16", "--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1 and lines[0]["processes"] == 2  # one report, from the main process
    assert (out / "model.safetensors").exists()


def test_a_compact_format_is_what_the_loop_trains_on():
    cfg = tr.TrainConfig(tasks=("dyck_languages",), format="stack", steps=8, batch_size=4, bucket=2)
    batch = tr.bucketed(tr.TaskSampler(cfg.tasks, seed=0), 0, 0, cfg)
    assert all(ex.rationale.startswith("stack: ") and ex.rationale.count("\n") == 1 for ex in batch)
    full = tr.bucketed(tr.TaskSampler(cfg.tasks, seed=0), 0, 0, replace(cfg, format="full"))
    assert {e.input for e in full} == {e.input for e in batch}  # the same examples, written differently


def _scripted_validation(accuracies):
    """A validate_fn that reports ``accuracies`` in turn and keeps a copy of the weights it was shown."""
    seen = []

    def validate_fn(model, tok, cfg):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"val_accuracy": accuracies[len(seen) - 1]}

    return validate_fn, seen


@pytest.mark.parametrize(("accuracies", "kept"), [((0.2, 0.9, 0.5), 1), ((0.2, 0.5, 0.5), 2)])
def test_keep_best_ends_with_the_best_validation(accuracies, kept, tmp_path):
    tok = CharTokenizer()
    torch.manual_seed(0)
    model = student(StudentConfig(layers=1, width=32, heads=2, max_len=256), tok)
    cfg = tr.TrainConfig(steps=24, batch_size=4, lr=3e-3, warmup=2, log_every=8, eval_every=8, checkpoint_every=8,
                         rationale=False, keep_best=True)
    validate_fn, seen = _scripted_validation(accuracies)
    result = tr.train(model, tok, cfg, out=tmp_path, progress=False, validate_fn=validate_fn)
    final = model.state_dict()
    assert all(torch.equal(final[k], seen[kept][k]) for k in final)  # ties keep the later weights
    restored = [h for h in result.history if "restored_step" in h]
    assert restored == ([] if kept == 2 else [{"step": 24, "restored_step": 16, "restored_val_accuracy": 0.9}])
    # the checkpoint at step 16 carries the best so far, so a resumed run keeps it
    acc, step, weights = tr.load_best(tr.latest_checkpoint(tmp_path))
    assert (acc, step) == ((0.9, 16) if kept == 1 else (0.5, 16))
    assert all(torch.equal(weights[k], seen[1][k]) for k in weights)


def test_pool_sampler_draws_every_batch_from_one_fixed_pool():
    cfg = tr.TrainConfig(tasks=("boolean_expressions",), pool=20, steps=16, batch_size=8, bucket=2)
    sampler = tr.sampler_for(cfg)
    assert isinstance(sampler, tr.PoolSampler) and len(sampler.pool) == 20
    pool = {e.input for e in sampler.pool}
    drawn = [e.input for step in range(16) for e in tr.bucketed(sampler, step, 0, cfg)]
    assert set(drawn) <= pool and len(set(drawn)) > 10  # the pool, seen again and again
    assert not pool & tr.held_out_inputs(cfg.tasks)
    assert [e.input for e in tr.sampler_for(cfg).pool] == [e.input for e in sampler.pool]  # seeded
    fresh = tr.sampler_for(replace(cfg, pool=0))
    assert type(fresh) is tr.TaskSampler and len({e.input for e in fresh.examples(0, 0, 64)} - pool) > 40
