"""The KV-cache ONNX export (export.to_onnx_kv, runtimes.OnnxKVRunner): written from the weights in well under
a second, so a small student's checks run in the fast loop; it decodes PyTorch's greedy tokens on the whole
tool_call test split, fused (onnxruntime's contrib ops) and with standard ops only."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from workbench.agent import deploy, export, runtimes  # noqa: E402
from workbench.agent.constrain import CallGrammar, constrained_generate  # noqa: E402
from workbench.core.evaluate import EvalConfig, answer_budget, generate, student_prompt  # noqa: E402
from workbench.tasks import splits  # noqa: E402


@pytest.fixture(scope="module")
def kv_folders(tmp_path_factory, varied_student):
    """(model, tokenizer, {fused: folder}) with model.kv.onnx of the 2-layer, 64-wide student, fused and not."""
    model, tok = varied_student
    folders = {}
    for fused in (True, False):
        folders[fused] = tmp_path_factory.mktemp(f"kv-{'fused' if fused else 'onnx'}")
        export.to_onnx_kv(model, folders[fused], tokenizer=tok, card={"name": "tiny", "history": [1]}, fused=fused)
    return model, tok, folders


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "standard ops"])
def test_prompt_then_chunk_then_step_match_torch(kv_folders, fused):
    model, tok, folders = kv_folders
    runner = runtimes.OnnxKVRunner(folders[fused])
    ids = torch.randint(4, tok.vocab_size, (1, 23), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(ids).logits.numpy()
    np.testing.assert_allclose(runner.forward(ids), want, atol=1e-4, rtol=1e-4)
    logits, past = runner.run(ids[:, :10])
    chunk, past = runner.run(ids[:, 10:22], past)  # several new tokens after cached ones: the causal mask
    step, past = runner.run(ids[:, 22:], past)
    np.testing.assert_allclose(np.concatenate([logits, chunk, step], axis=1), want, atol=1e-4, rtol=1e-4)
    assert past[0].shape() == [1, model.config.num_attention_heads, 23, 64 // model.config.num_attention_heads]


@pytest.mark.parametrize("fused,every", [pytest.param(True, 1, marks=pytest.mark.slow), (False, 10)],
                         ids=["fused", "standard ops"])  # the whole split with the slow tests; every 10th in make check
def test_greedy_tokens_identical_on_the_test_split(kv_folders, fused, every):
    """The first 12 greedy tokens of every test prompt (fused: the graph ``to_onnx_kv`` writes by default) or
    every 10th (standard ops), budget cut for the fast loop; the shipped specialist's whole answers are checked
    in the slow test below."""
    model, tok, folders = kv_folders
    prompts = [student_prompt(e.input) for e in splits.load("tool_call", "test")][::every]
    reference = generate(model, tok, prompts, 12, batch_size=100, ids=True)
    agree = deploy.greedy_agreement(runtimes.OnnxKVRunner(folders[fused]), tok, prompts, reference)
    assert sum(a["identical"] for a in agree) == len(prompts) == 500 // every
    texts = runtimes.OnnxKVRunner(folders[fused]).generate(prompts[:5], 12)  # the runner's own decoding loop
    assert texts == [tok.decode(r, skip_special_tokens=True) for r in reference[:5]]


def test_stop_strings_and_constrained_decoding(kv_folders):
    model, tok, folders = kv_folders
    runner, torch_runner = runtimes.OnnxKVRunner(folders[True]), runtimes.TorchRunner(model, tok)
    prompts = [student_prompt(q) for q in ("Remind me to call Ana at 5pm", "Weather in Oslo?")]
    full = torch_runner.generate(prompts, 12)
    stop = full[0][5]
    assert runner.generate(prompts, 12, (stop,)) == torch_runner.generate(prompts, 12, (stop,)) != full
    grammar = CallGrammar()
    direct = constrained_generate(model, tok, prompts[0], grammar, 16)
    shim = constrained_generate(runtimes.AsCausalLM(runner), tok, prompts[0], grammar, 16)
    assert shim.text == direct.text and grammar.complete(shim.json)


@pytest.mark.slow  # routes 10 requests twice: `make unit` and CI run it, the fast loop keeps the checks above
def test_the_router_decodes_the_kv_graph_on_the_lean_path(kv_folders):
    """``Router`` over ``AsCausalLM(OnnxKVRunner)`` takes the lean decoder (``OnnxStep``: the grammar's tables and
    jump-forward) and routes every request as the PyTorch transformers path does; a graph without a cache cannot."""
    from workbench.agent.router import Router

    model, tok, folders = kv_folders
    onnx = Router(runtimes.AsCausalLM(runtimes.OnnxKVRunner(folders[True], tokenizer=tok)), tok, max_new_tokens=12)
    torch_path = Router(model, tok, lean=False, max_new_tokens=12)
    assert onnx.decoder == "lean" and torch_path.decoder == "transformers"
    requests = [e.input for e in splits.load("tool_call", "test")[::50]]
    assert [d.raw for d in onnx.route_many(requests)] == [d.raw for d in torch_path.route_many(requests)]
    step = onnx._lean()
    assert isinstance(step, runtimes.OnnxStep) and step.vocab == model.config.vocab_size and not step.stale()
    assert step.model.config.max_position_embeddings == model.config.max_position_embeddings


def test_int8_spec_and_compare(kv_folders):
    model, tok, folders = kv_folders
    folder = folders[True]
    int8 = export.quantize_onnx(folder / export.ONNX_KV_FILE)
    assert int8.name == export.ONNX_KV_INT8_FILE
    spec = json.loads((folder / export.SPEC).read_text())
    assert set(spec["artifacts"]) == {export.ONNX_KV_FILE, export.ONNX_KV_INT8_FILE}
    assert spec["artifacts"][export.ONNX_KV_FILE]["kv_cache"] is True and spec["card"] == {"name": "tiny"}
    assert not list(folder.glob(".*"))  # no temporary files left behind
    fp32, q8 = runtimes.OnnxKVRunner(folder), runtimes.OnnxKVRunner(folder, int8=True)
    assert (fp32.runtime, q8.runtime) == ("onnxruntime fp32, KV cache", "onnxruntime int8, KV cache")
    assert q8.bytes < 0.6 * fp32.bytes
    examples = splits.load("tool_call", "test", n=3)
    rows = runtimes.compare(model, tok, examples, [runtimes.TorchRunner(model, tok), runtimes.LeanRunner(model, tok),
                                                   fp32, q8], max_new_tokens=8)
    assert all(r["same_completions"] == 3 for r in rows[:3]) and all(r["tokens_per_s"] > 0 for r in rows)
    with pytest.raises(FileNotFoundError, match="to_onnx_kv"):
        runtimes.OnnxKVRunner(folders[False], int8=True)
    with pytest.raises(ValueError, match="to_onnx_kv"):
        runtimes.OnnxKVRunner(folder / export.ONNX_KV_FILE, tokenizer=tok).__class__(
            _plain_onnx(model, folder.parent / "plain"), tokenizer=tok)


def _plain_onnx(model, out):
    """A graph with the wrong inputs for OnnxKVRunner (input_ids only), built as the KV one is, without the cache."""
    import onnx
    from onnx import TensorProto, helper

    out.mkdir(exist_ok=True)
    graph = helper.make_graph([helper.make_node("Identity", ["input_ids"], ["logits"])], "g",
                              [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])],
                              [helper.make_tensor_value_info("logits", TensorProto.INT64, ["b", "s"])])
    path = out / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8), path)
    return path


@pytest.mark.slow  # the shipped specialist's whole answers: 100 prompts
def test_shipped_tool_call_specialist_greedy_identical_at_level_2(tmp_path):
    from workbench.core import recipes

    model, tok, card = recipes.specialist("tool_call", "laptop")
    examples = splits.load("tool_call", "test", level=2)
    prompts = [student_prompt(e.input) for e in examples]
    reference = generate(model, tok, prompts, answer_budget(tok, examples, EvalConfig(rationale=True)), 50, ids=True)
    for fused in (True, False):
        export.to_onnx_kv(model, tmp_path / str(fused), tokenizer=tok, fused=fused)
        agree = deploy.greedy_agreement(runtimes.OnnxKVRunner(tmp_path / str(fused)), tok, prompts, reference)
        assert sum(a["identical"] for a in agree) == len(prompts) == 100, fused


def test_fused_attention_needs_a_head_size_onnxruntime_takes(tiny_student, tmp_path):
    """onnxruntime's GroupQueryAttention takes head sizes in multiples of 16: asked for it with another, the export
    says so in one line; by default it writes the standard-ops graph instead."""
    model, tok, _ = tiny_student
    head = model.config.hidden_size // model.config.num_attention_heads
    assert head % 16, "the tiny student's head size was meant to be one GroupQueryAttention refuses"
    with pytest.raises(ValueError, match=f"fused=True needs a head size that is a multiple of 16.*is {head}"):
        export.to_onnx_kv(model, tmp_path / "a", fused=True)
    path = export.to_onnx_kv(model, tmp_path / "b", tokenizer=tok)
    assert json.loads((tmp_path / "b" / "export.json").read_text())["artifacts"][export.ONNX_KV_FILE]["ops"] == "onnx"
    assert path.exists()
