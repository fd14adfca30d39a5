"""Runtimes: run an exported specialist and compare it with PyTorch (bytes, latency, same answers).

    runners = [runtimes.TorchRunner(model, tok), runtimes.OnnxRunner(folder),
               runtimes.OnnxRunner(folder, int8=True), runtimes.OnnxKVRunner(folder), runtimes.ExportedRunner(folder)]
    print(runtimes.table(runtimes.compare(model, tok, examples, runners)))

``folder`` is what ``workbench.agent.export`` wrote (model.onnx, model.int8.onnx, model.kv.onnx,
model.kv.int8.onnx, model.pt2, the tokenizer); ``GgufRunner(folder)`` runs its model.gguf (or
model.q8_0.gguf) as transformers loads it (``gguf_file=``). Every runner decodes the same way
(``Runner.generate``): argmax, stop at eos or a stop string, one prompt at a time (the graphs have no
attention mask, so padding a batch would change the answers). Most run the whole sequence through the
forward each step; ``OnnxKVRunner`` (the KV-cache graph) and ``LeanRunner`` (``lean.LeanLlama``) run the
prompt once and then one token per step (``Runner.next_logits``). So answers compare apples to apples across
runtimes; ``GenerateRunner`` adds transformers' own ``generate`` (KV cache) to the comparison.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from workbench.agent.export import (
    PT2_FILE,
    check_onnx,
    gguf_file,
    load_exported,
    load_gguf,
    onnx_file,
    require_packages,
)
from workbench.core.artifacts import compression


def _tokenizer_beside(path: Path, tokenizer):
    if tokenizer is not None:
        return tokenizer
    from workbench.core.tokenizer import load_tokenizer

    if not (path.parent / "tokenizer_config.json").exists():
        raise ValueError(f"no tokenizer beside {str(path)!r}; pass tokenizer=, or export with tokenizer=")
    return load_tokenizer(str(path.parent))

# runners: one decoding loop, several runtimes ---------------------------------------------------
class Runner:
    """Greedy decoding over ``forward``; subclasses give ``runtime``, ``bytes`` and ``forward``."""

    runtime: str = ""
    tokenizer = None

    @property
    def bytes(self) -> int:
        raise NotImplementedError

    def forward(self, ids):
        """logits [B, T, V] (numpy or torch) for ids [B, T] int64."""
        raise NotImplementedError

    def generate(self, prompts: list[str], max_new_tokens: int, stops: tuple[str, ...] = ()) -> list[str]:
        """Greedy completions, one prompt at a time; each stops at eos or once its text holds a stop string."""
        return [self._greedy(p, max_new_tokens, stops) for p in prompts]

    def next_logits(self, ids: list[int], new: int):
        """The last position's logits [V] for ``ids``, whose last ``new`` tokens are new since the previous call
        (all of them: a new prompt). Here the whole sequence goes through ``forward``; a cached runner
        runs only the new tokens."""
        return self.forward(np.asarray([ids], dtype=np.int64))[0, -1]

    def _greedy(self, prompt: str, max_new_tokens: int, stops: tuple[str, ...]) -> str:
        tok = self.tokenizer
        ids = tok(prompt).input_ids
        start, eos = len(ids), tok.eos_token_id
        for step in range(max_new_tokens):
            nxt = int(self.next_logits(ids, 1 if step else start).argmax())  # first maximum on ties, as generate
            ids.append(nxt)
            if nxt == eos or (stops and any(s in tok.decode(ids[start:], skip_special_tokens=True) for s in stops)):
                break
        return tok.decode(ids[start:], skip_special_tokens=True)

    def completion_logits(self, prompt_ids: list[int], completion: list[int]):
        """Logits [len(completion), V]: row i is what chose ``completion[i]`` after the prompt and the ones before
        (``deploy.greedy_agreement``); one forward over the whole sequence here."""
        ids = list(prompt_ids) + list(completion)
        return np.asarray(self.forward(np.asarray([ids[:-1]], dtype=np.int64)))[0, len(prompt_ids) - 1:]


class TorchRunner(Runner):
    """The PyTorch model itself (fp32, or ``quantize.dynamic_int8``'s copy) in the shared decoding loop."""

    def __init__(self, model, tokenizer, runtime: str | None = None):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.runtime = runtime or ("torch int8 dynamic" if compression(model, "dynamic_int8") else "torch fp32")
        self._bytes = None

    @property
    def bytes(self) -> int:
        """Weight bytes as saved (``save_pretrained``, or ``quantize.save`` for a quantized model)."""
        if self._bytes is None:
            from workbench import quantize
            from workbench.core.measure import saved_bytes

            save = quantize.save if quantize.is_quantized(self.model) else None  # None: save_pretrained
            self._bytes = saved_bytes(self.model, self.tokenizer, save)
        return self._bytes

    @torch.inference_mode()
    def forward(self, ids):
        device = next(self.model.parameters()).device
        return self.model(input_ids=torch.as_tensor(ids, device=device), use_cache=False).logits


class GenerateRunner(TorchRunner):
    """``workbench.core.evaluate.generate``: transformers' greedy ``generate`` with the KV cache,
    ``batch_size`` at once."""

    def __init__(self, model, tokenizer, batch_size: int = 1, runtime: str | None = None):
        super().__init__(model, tokenizer, runtime or f"torch fp32, HF generate + KV cache (batch {batch_size})")
        self.batch_size = batch_size

    def generate(self, prompts: list[str], max_new_tokens: int, stops: tuple[str, ...] = ()) -> list[str]:
        from workbench.core.evaluate import generate

        return generate(self.model, self.tokenizer, prompts, max_new_tokens, self.batch_size, stops)


class LeanRunner(TorchRunner):
    """The model on ``lean.LeanLlama``'s decode path (static KV cache, plain torch ops) in the shared loop."""

    def __init__(self, model, tokenizer, runtime: str = "torch fp32, lean path + KV cache"):
        from workbench.agent.lean import LeanLlama

        super().__init__(model, tokenizer, runtime)
        self.lm = LeanLlama(model)

    def next_logits(self, ids: list[int], new: int):
        return self.lm(ids[-new:], first=new == len(ids))


class OnnxRunner(Runner):
    """An .onnx file (or ``to_onnx``'s folder; ``int8`` picks model.int8.onnx) on onnxruntime's CPU provider.

    ``threads`` defaults to torch's thread count, so the runtimes compete on equal terms.
    """

    def __init__(self, path: str | Path, int8: bool = False, tokenizer=None, threads: int | None = None):
        require_packages("onnx", "onnxruntime")
        self.path = onnx_file(path, int8)
        check_onnx(self.path)
        self.tokenizer = _tokenizer_beside(self.path, tokenizer)
        self.session = _session(self.path, threads)
        names = [i.name for i in self.session.get_inputs()]
        if names != ["input_ids"]:
            raise ValueError(f"{str(self.path)!r} takes inputs {names}; a runner needs one, input_ids "
                             "(export with to_onnx)")
        int8_graph = any(n.op_type == "MatMulInteger" for n in _graph_nodes(self.path))
        self.runtime = "onnxruntime int8" if int8_graph else "onnxruntime fp32"

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size

    def forward(self, ids):
        return self.session.run(["logits"], {"input_ids": np.asarray(ids, dtype=np.int64)})[0]


class OnnxKVRunner(Runner):
    """``to_onnx_kv``'s model.kv.onnx (or its folder; ``int8`` picks model.kv.int8.onnx) on onnxruntime's CPU
    provider, decoding with its KV cache: the prompt once, then one token per step.

    The cache stays in onnxruntime's buffers between steps (I/O binding: each step's ``present_*`` outputs are
    bound as the next step's ``past_*`` inputs, never copied to numpy). ``threads`` as ``OnnxRunner``.
    """

    def __init__(self, path: str | Path, int8: bool = False, tokenizer=None, threads: int | None = None):
        require_packages("onnx", "onnxruntime")
        self.path = onnx_file(path, int8, kv=True)
        check_onnx(self.path)
        self.tokenizer = _tokenizer_beside(self.path, tokenizer)
        self.session = _session(self.path, threads)
        names = [i.name for i in self.session.get_inputs()]
        if names[:2] != ["input_ids", "past_key.0"]:
            raise ValueError(f"{str(self.path)!r} takes inputs {names}; this runner needs input_ids and the past "
                             "keys and values (export with to_onnx_kv)")
        meta = self.session.get_modelmeta().custom_metadata_map
        self.context, heads, head_dim = (int(meta[k]) for k in ("context", "heads", "head_dim"))
        self.cache_names = names[1:]  # past_key.0, past_value.0, past_key.1, ...
        self.outputs = [o.name for o in self.session.get_outputs()]  # logits, present_key.0, ...
        self.empty = np.zeros((1, heads, 0, head_dim), dtype=np.float32)
        self.binding, self.past = self.session.io_binding(), None
        int8_graph = any(n.op_type == "MatMulInteger" for n in _graph_nodes(self.path))
        self.runtime = "onnxruntime int8, KV cache" if int8_graph else "onnxruntime fp32, KV cache"

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size

    def run(self, ids, past=None):
        """(logits [1, T, V] as numpy, the cache after them) for new tokens ``ids`` [1, T] after ``past`` (a cache
        this returned; None: a new sequence)."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.shape[0] != 1:
            raise ValueError(f"one sequence at a time (the cache is per sequence); got a batch of {ids.shape[0]}")
        n = ids.shape[1] + (0 if past is None else past[0].shape()[2])
        if n > self.context:
            raise ValueError(f"{n} positions; this model reads at most {self.context}")
        b = self.binding
        b.bind_cpu_input("input_ids", ids)
        for j, name in enumerate(self.cache_names):
            if past is None:
                b.bind_cpu_input(name, self.empty)
            else:
                b.bind_ortvalue_input(name, past[j])
        for name in self.outputs:
            b.bind_output(name, "cpu")
        self.session.run_with_iobinding(b)
        out = b.get_outputs()
        return out[0].numpy(), out[1:]

    def forward(self, ids):
        """The plain forward (logits for every position) as an empty cache plus all of ``ids``."""
        return self.run(ids)[0]

    def next_logits(self, ids: list[int], new: int):
        logits, self.past = self.run([ids[-new:]], None if new == len(ids) else self.past)
        return logits[0, -1]

    def completion_logits(self, prompt_ids: list[int], completion: list[int]):
        """As decoding runs: the prompt in one step, then the completion one token at a time through the cache."""
        ids = list(prompt_ids)
        rows = [self.next_logits(ids, len(ids))]
        for tok in completion[:-1]:
            ids.append(tok)
            rows.append(self.next_logits(ids, 1))
        return np.stack(rows)


def _session(path: Path, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _graph_nodes(path: Path):
    import onnx

    return onnx.load(str(path), load_external_data=False).graph.node


class ExportedRunner(Runner):
    """A .pt2 file from ``to_torch_export`` (or its folder), run as the module torch.export rebuilds."""

    runtime = "torch.export"

    def __init__(self, path: str | Path, tokenizer=None):
        self.program = load_exported(path)
        self.path = Path(path) / PT2_FILE if Path(path).is_dir() else Path(path)
        self.module = self.program.module()
        self.tokenizer = _tokenizer_beside(self.path, tokenizer)

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size

    @torch.inference_mode()
    def forward(self, ids):
        return self.module(torch.as_tensor(ids))


class GgufRunner(TorchRunner):
    """A GGUF file (``export.to_gguf``'s) as transformers loads it: de-quantized to fp32, in PyTorch. Its
    answers are the file's weights' answers; llama.cpp's kernels would round differently."""

    def __init__(self, path: str | Path, quant: str = "f32", tokenizer=None):
        self.path = gguf_file(path, quant)
        super().__init__(load_gguf(self.path), _tokenizer_beside(self.path, tokenizer),
                         runtime=f"gguf {quant} (transformers)")

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size


class OnnxStep:
    """An ``OnnxKVRunner`` as the lean decoder's step (``lean.LeanLlama``'s interface): ``step(ids, first=True)``
    runs a prompt, ``step(ids)`` continues it through the runner's cache; each returns the last position's
    logits [vocab]. ``Router`` takes it for a model that is ``AsCausalLM(OnnxKVRunner(...))``, so the
    exported graph decodes with the lean path's grammar work and jump-forward."""

    def __init__(self, runner: OnnxKVRunner):
        self.runner, self.model, self.past = runner, AsCausalLM(runner), None
        shape = runner.session.get_outputs()[0].shape  # logits [batch, seq, vocab]
        self.vocab = shape[-1] if isinstance(shape[-1], int) else len(runner.tokenizer)
        eos = runner.tokenizer.eos_token_id
        self.eos = set() if eos is None else {eos}

    def __call__(self, ids: list[int], first: bool = False) -> torch.Tensor:
        logits, self.past = self.runner.run([ids], None if first else self.past)
        return torch.from_numpy(logits[0, -1])

    @staticmethod
    def stale() -> bool:
        return False  # the graph's weights never change under it


class AsCausalLM:
    """A runner behind the slice of a transformers model that ``constrain.constrained_generate`` uses:
    ``model(input_ids=..., use_cache=True, past_key_values=...)`` -> ``.logits`` and ``.past_key_values``.

    For an ``OnnxKVRunner`` the cache is its own (only the new ids run); for the others the "cache" is the
    ids so far: every call runs the whole sequence (their graphs have none), so constrained decoding works
    on every runtime, at the runtime's full-sequence cost.
    """

    def __init__(self, runner: Runner):
        from types import SimpleNamespace

        self.runner = runner
        context = getattr(runner, "context", None)  # what the router and the decoders check a prompt against
        self.config = SimpleNamespace(max_position_embeddings=context) if context else None

    def parameters(self):
        return iter(())

    def lean_step(self):
        """The lean decoder's step over this runtime (``OnnxStep``) where it keeps a KV cache, else None."""
        return OnnxStep(self.runner) if isinstance(self.runner, OnnxKVRunner) else None

    def forward(self, input_ids, use_cache: bool = True, past_key_values=None):
        from types import SimpleNamespace

        if isinstance(self.runner, OnnxKVRunner):
            logits, past = self.runner.run(np.asarray(input_ids), past_key_values)
            return SimpleNamespace(logits=torch.from_numpy(logits), past_key_values=past)
        new = input_ids[0].tolist()
        ids = (past_key_values or []) + new
        logits = torch.as_tensor(np.asarray(self.runner.forward(np.asarray([ids], dtype=np.int64))))
        return SimpleNamespace(logits=logits[:, -len(new):].float(), past_key_values=ids)

    __call__ = forward


# the comparison ------------------------------------------------------------------------------------
def _timed(runner: Runner, prompts: list[str], budget: int) -> tuple[list[str], list[float]]:
    runner.generate(prompts[:1], min(budget, 4))  # warm-up: thread pools, allocations, first-run graph work
    completions, ms = [], []
    for p in prompts:
        t0 = time.perf_counter()
        completions.append(runner.generate([p], budget)[0])
        ms.append(1000 * (time.perf_counter() - t0))
    return completions, ms


def compare(model, tokenizer, examples, runners: list[Runner], max_new_tokens: int | None = None) -> list[dict]:
    """One row per runner: bytes on disk, p50/p95 latency of single requests (batch 1, whole greedy
    answers), tokens written per second (the eos not counted), answers and completions identical to
    PyTorch fp32's, and accuracy on ``examples``.

    PyTorch's answers come from a ``TorchRunner`` over ``model`` in ``runners`` if there is one, else
    from one run here (untimed, no row).
    """
    from workbench import tasks
    from workbench.core.evaluate import EvalConfig, answer_budget, answer_of, student_prompt

    if not examples:
        raise ValueError("no examples to compare on")
    if not runners:
        raise ValueError("no runners to compare; pass e.g. [TorchRunner(model, tok), OnnxRunner(folder)]")
    task = tasks.get(examples[0].task)
    cfg = EvalConfig(rationale=True)
    prompts = [student_prompt(ex.input) for ex in examples]
    budget = max_new_tokens or answer_budget(tokenizer, examples, cfg)
    runs = [(r, *_timed(r, prompts, budget)) for r in runners]
    n_tokens = [sum(len(tokenizer(c, add_special_tokens=False).input_ids) for c in comps) for _, comps, _ in runs]
    ref = next((c for r, c, _ in runs if type(r) is TorchRunner and r.model is model), None)
    if ref is None:
        ref = TorchRunner(model, tokenizer).generate(prompts, budget)
    ref_answers = [answer_of(c, cfg) for c in ref]
    rows = []
    for (r, comps, ms), tokens in zip(runs, n_tokens):
        answers = [answer_of(c, cfg) for c in comps]
        same = [a == b for a, b in zip(answers, ref_answers)]
        p50, p95 = np.percentile(ms, [50, 95])
        rows.append({"runtime": r.runtime, "bytes": r.bytes, "p50_ms": float(p50), "p95_ms": float(p95),
                     "tokens_per_s": 1000 * tokens / sum(ms),
                     "same_answers": sum(same), "same_answers_frac": sum(same) / len(same),
                     "same_completions": sum(a == b for a, b in zip(comps, ref)),
                     "differing": [i for i, s in enumerate(same) if not s], "n": len(examples),
                     "accuracy": sum(task.score(a, ex.target) for a, ex in zip(answers, examples)) / len(examples)})
    return rows


def table(rows: list[dict]) -> str:
    """``compare``'s rows as a markdown table."""
    from workbench.core.report import table as markdown

    return markdown(rows, {
        "runtime": "{runtime}", "bytes on disk": "{bytes:,}", "p50 ms / request": "{p50_ms:.0f}",
        "p95 ms / request": "{p95_ms:.0f}", "tokens/s": "{tokens_per_s:.0f}",
        "answers = PyTorch": "{same_answers}/{n} ({same_answers_frac:.0%})",
        "completions = PyTorch": "{same_completions}/{n}", "accuracy": "{accuracy:.1%}"})
