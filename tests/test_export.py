"""Export and runtimes: ONNX (fp32, int8) and torch.export files, run by workbench.runtimes, agree with PyTorch
on a tiny random student; bad input fails clearly."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from workbench.agent import export, runtimes  # noqa: E402

pytestmark = pytest.mark.slow  # ONNX and torch.export

PROMPTS = ["(True and not False) or False\n", "Remind me to call mum at 9:15\n", "3 + 4 * 2 =\n"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, varied_student):
    """(model, tokenizer, folder) with model.onnx, model.int8.onnx and model.pt2 of a 2-layer, 64-wide student."""
    model, tok = varied_student
    folder = tmp_path_factory.mktemp("export")
    export.to_onnx(model, folder, tokenizer=tok, card={"name": "tiny", "history": [1, 2, 3]})
    export.quantize_onnx(folder)
    export.to_torch_export(model, folder)
    return model, tok, folder


@pytest.mark.parametrize("shape", [(2, 5), (2, 23)])
def test_onnx_logits_match_torch(exported, shape):
    model, tok, folder = exported
    ids = torch.randint(4, tok.vocab_size, shape)
    want = runtimes.TorchRunner(model, tok).forward(ids).numpy()
    for runner in (runtimes.OnnxRunner(folder), runtimes.ExportedRunner(folder)):
        got = np.asarray(runner.forward(ids))
        assert got.shape == (*shape, tok.vocab_size)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4, err_msg=runner.runtime)
    int8 = runtimes.OnnxRunner(folder, int8=True).forward(ids)
    assert int8.shape == want.shape and np.isfinite(int8).all()


RUNNERS = {
    "onnx fp32": lambda model, tok, folder: runtimes.OnnxRunner(folder / export.ONNX_FILE),
    "torch.export": lambda model, tok, folder: runtimes.ExportedRunner(folder / export.PT2_FILE),
    "hf generate": lambda model, tok, folder: runtimes.GenerateRunner(model, tok),
}


@pytest.mark.parametrize("kind", RUNNERS)
def test_greedy_generations_identical(exported, kind):
    model, tok, folder = exported
    torch_runner, runner = runtimes.TorchRunner(model, tok), RUNNERS[kind](model, tok, folder)
    full = torch_runner.generate(PROMPTS, 12)
    assert len(set(full)) == len(PROMPTS) and all(len(set(t)) > 3 for t in full)  # varied text, not one repeat
    assert runner.generate(PROMPTS, 12) == full
    stop = full[0][5]
    stopped = torch_runner.generate(PROMPTS, 12, (stop,))
    assert stopped[0] == full[0][:full[0].index(stop) + 1]  # ends at the token that completes the stop string
    assert runner.generate(PROMPTS, 12, (stop,)) == stopped


def test_int8_onnx_runs_and_is_smaller(exported):
    model, tok, folder = exported
    fp32, int8 = runtimes.OnnxRunner(folder), runtimes.OnnxRunner(folder, int8=True)
    assert (fp32.runtime, int8.runtime) == ("onnxruntime fp32", "onnxruntime int8")
    assert int8.bytes < 0.6 * fp32.bytes
    outs = int8.generate(PROMPTS, 6)
    assert len(outs) == len(PROMPTS) and all(isinstance(o, str) for o in outs)


def test_folder_reloads_with_its_spec_and_tokenizer(exported):
    model, tok, folder = exported
    spec = json.loads((folder / export.SPEC).read_text())
    assert spec["vocab"] == tok.vocab_size and spec["max_len"] == 512
    assert spec["artifacts"][export.ONNX_FILE]["opset"] == export.DEFAULT_OPSET
    assert set(spec["artifacts"]) == {export.ONNX_FILE, export.ONNX_INT8_FILE, export.PT2_FILE}
    assert spec["card"] == {"name": "tiny"}  # the card's summary, not its training history
    runner = runtimes.OnnxRunner(folder)  # the tokenizer comes from the folder
    assert runner.tokenizer.get_vocab() == tok.get_vocab()
    program = export.load_exported(folder)
    assert isinstance(program, torch.export.ExportedProgram)
    assert not list(folder.glob(".*"))  # no temporary files left behind


def test_compare_rows(exported):
    from workbench.tasks import splits

    model, tok, folder = exported
    examples = splits.load("tool_call", "test", n=3)
    runners = [runtimes.TorchRunner(model, tok), runtimes.OnnxRunner(folder), runtimes.OnnxRunner(folder, int8=True)]
    rows = runtimes.compare(model, tok, examples, runners, max_new_tokens=8)
    assert [r["runtime"] for r in rows] == ["torch fp32", "onnxruntime fp32", "onnxruntime int8"]
    assert rows[0]["same_answers"] == rows[1]["same_answers"] == 3 and rows[1]["same_completions"] == 3
    assert all(0 <= r["accuracy"] <= 1 and r["p95_ms"] >= r["p50_ms"] > 0 for r in rows)
    assert runtimes.table(rows).count("\n") == 4


# bad input ------------------------------------------------------------------------------------------
def _garbage(folder, name, data):
    path = folder / name
    path.write_bytes(data)
    return path


BAD_FILES = [
    ("missing onnx", lambda d, good: runtimes.OnnxRunner(d / "nope.onnx"), FileNotFoundError, "does not exist"),
    ("missing int8", lambda d, good: runtimes.OnnxRunner(d, int8=True), FileNotFoundError, "quantize_onnx"),
    ("garbage onnx", lambda d, good: runtimes.OnnxRunner(_garbage(d, "bad.onnx", b"\x00not onnx" * 50)),
     ValueError, "not a valid ONNX model"),
    ("truncated onnx", lambda d, good: export.quantize_onnx(_garbage(d, "cut.onnx", good[:len(good) // 2])),
     ValueError, "not a valid ONNX model"),
    ("missing pt2", lambda d, good: export.load_exported(d), FileNotFoundError, "to_torch_export"),
    ("garbage pt2", lambda d, good: runtimes.ExportedRunner(_garbage(d, "bad.pt2", b"PK junk")), ValueError,
     "not a torch.export"),
]


@pytest.mark.parametrize("name,call,error,match", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_raise_clearly(exported, tmp_path, name, call, error, match):
    good = (exported[2] / export.ONNX_FILE).read_bytes()
    with pytest.raises(error, match=match):
        call(tmp_path, good)


@pytest.mark.parametrize("opset", [17, 23, "20", True])
def test_unsupported_opset(exported, tmp_path, opset):
    with pytest.raises(ValueError, match=f"opset {opset!r} is not supported: choose 18 to 22"):
        export.to_onnx(exported[0], tmp_path, opset=opset)
    assert not list(tmp_path.iterdir())


def _base_model(model):
    return model.model  # LlamaModel: hidden states, no LM head


def _int8(model):
    from workbench.quantize import dynamic_int8

    return dynamic_int8(model)


@pytest.mark.parametrize("make,match", [(lambda m: torch.nn.Linear(4, 4), "Linear is not a causal language model"),
                                        (_base_model, "LlamaModel is not a causal language model"),
                                        (_int8, "already quantized")])
@pytest.mark.parametrize("to", [export.to_onnx, export.to_torch_export])
def test_not_an_exportable_causal_lm(exported, tmp_path, make, match, to):
    with pytest.raises(ValueError, match=match):
        to(make(exported[0]), tmp_path)
