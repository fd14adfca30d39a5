"""GGUF export: a tiny random student written as model.gguf (fp32) and model.q8_0.gguf, loaded back through
transformers' ``gguf_file=``, decodes the tool_call test prompts as the original does; the file holds what
llama.cpp reads (llama hyper-parameters, a one-token-per-character vocabulary); bad input fails clearly."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("gguf")

from workbench.agent import export, runtimes  # noqa: E402
from workbench.core.evaluate import generate, student_prompt  # noqa: E402
from workbench.tasks import splits  # noqa: E402

N, NEW_TOKENS = 16, 24  # tool_call level-2 test prompts, greedy tokens each


@pytest.fixture(scope="module")
def gguf_folder(tmp_path_factory, varied_student):
    """(model, tokenizer, folder) with model.gguf and model.q8_0.gguf of the 2-layer, 64-wide random student."""
    model, tok = varied_student
    folder = tmp_path_factory.mktemp("gguf")
    export.to_gguf(model, folder, tokenizer=tok, card={"name": "tiny", "history": [1]})
    export.to_gguf(model, folder, tokenizer=tok, quant="q8_0")
    return model, tok, folder


@pytest.fixture(scope="module")
def prompts():
    return [student_prompt(e.input) for e in splits.load("tool_call", "test", level=2, n=N)]


def _greedy(model, tok, prompts):
    return generate(model, tok, prompts, NEW_TOKENS, batch_size=8, ids=True)


def test_fp32_gguf_loads_with_the_same_weights_and_greedy_outputs(gguf_folder, prompts):
    from transformers import AutoModelForCausalLM

    model, tok, folder = gguf_folder
    loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=export.GGUF_FILES["f32"]).eval()
    assert type(loaded).__name__ == "LlamaForCausalLM" and loaded.config.tie_word_embeddings
    ids = torch.randint(4, tok.vocab_size, (2, 30))
    with torch.inference_mode():
        np.testing.assert_array_equal(loaded(ids).logits.numpy(), model(ids).logits.numpy())  # q, k un-permuted
    want = _greedy(model, tok, prompts)
    assert len({tuple(w) for w in want}) > N // 2  # varied completions, not one repeat
    assert _greedy(loaded, tok, prompts) == want


def test_tokenizer_rebuilt_from_the_gguf_encodes_as_char_tokenizer(gguf_folder, prompts):
    from transformers import AutoTokenizer

    model, tok, folder = gguf_folder
    rebuilt = AutoTokenizer.from_pretrained(str(folder), gguf_file=export.GGUF_FILES["f32"])
    for p in prompts[:4] + ['{"tool": "x", "args": {"n": 1}}\n']:
        ids = tok(p).input_ids
        assert rebuilt(p).input_ids == ids and rebuilt.decode(ids) == p
    assert (rebuilt.bos_token, rebuilt.eos_token, rebuilt.pad_token) == ("<bos>", "<eos>", "<pad>")


def test_q8_0_gguf_quantizes_the_matrices_it_can(gguf_folder, prompts):
    model, tok, folder = gguf_folder
    fp32, q8 = runtimes.GgufRunner(folder), runtimes.GgufRunner(folder, quant="q8_0")
    assert (fp32.runtime, q8.runtime) == ("gguf f32 (transformers)", "gguf q8_0 (transformers)")
    assert q8.bytes < 0.6 * fp32.bytes
    entry = json.loads((folder / export.SPEC).read_text())["artifacts"][export.GGUF_FILES["q8_0"]]
    # ffn_down's rows are 176 long, not a multiple of Q8_0's 32-wide blocks: those stay F32
    assert entry["f32_matrices"] == ["blk.0.ffn_down.weight", "blk.1.ffn_down.weight"]
    assert entry["tensors"] == {"Q8_0": 13, "F32": 7}  # 2 x 6 matrices + the embedding; 2 x 3 + 1 norms
    for name, w in model.state_dict().items():  # each weight within half a Q8_0 step (+ the fp16 scale)
        q = q8.model.state_dict()[name]
        if w.ndim == 2 and w.shape[1] % 32 == 0:
            step = w.reshape(w.shape[0], -1, 32).abs().amax(-1, keepdim=True) / 127
            assert ((q - w).reshape(step.shape[0], -1, 32).abs() <= 0.6 * step).all(), name
        else:
            assert torch.equal(q, w), name  # norms and ffn_down: F32
    ids = torch.randint(4, tok.vocab_size, (2, 30))
    same_top = (q8.forward(ids).argmax(-1) == fp32.forward(ids).argmax(-1)).float().mean()
    print(f"random student, q8_0 GGUF: the same argmax as fp32 at {same_top:.0%} of positions")
    assert same_top > 0.8
    # a random model's top two logits are often closer than Q8_0's rounding, so its whole greedy
    # completions may differ; the trained specialist's agreement is the next test's


@pytest.mark.slow  # the shipped specialist's full greedy answers, twice
def test_q8_0_gguf_of_the_shipped_specialist_agrees_on_most_answers(tmp_path, prompts):
    from workbench.core import recipes
    from workbench.core.evaluate import EvalConfig, answer_budget
    from workbench.core.models import load_pretrained

    model, tok = load_pretrained(str(recipes.shipped_folder("tool_call")))
    export.to_gguf(model, tmp_path, tokenizer=tok, quant="q8_0")
    loaded = export.load_gguf(tmp_path, quant="q8_0")
    examples = splits.load("tool_call", "test", level=2, n=N)
    budget = answer_budget(tok, examples, EvalConfig(rationale=True))
    want = generate(model, tok, prompts, budget, batch_size=8, ids=True)
    got = generate(loaded, tok, prompts, budget, batch_size=8, ids=True)
    same = sum(w == g for w, g in zip(want, got))
    print(f"q8_0 GGUF of the shipped tool_call specialist: {same}/{N} greedy completions identical")
    assert same >= 0.75 * N


def test_gguf_holds_what_llama_cpp_reads(gguf_folder):
    from gguf import GGUFReader

    model, tok, folder = gguf_folder
    r = GGUFReader(str(folder / export.GGUF_FILES["f32"]))
    value = {name: f.contents() for name, f in r.fields.items()}
    c = model.config
    assert value["general.architecture"] == "llama" and value["general.name"] == "tiny"
    assert (value["llama.context_length"], value["llama.embedding_length"], value["llama.block_count"],
            value["llama.feed_forward_length"], value["llama.attention.head_count"],
            value["llama.attention.head_count_kv"], value["llama.vocab_size"]) == (
        c.max_position_embeddings, c.hidden_size, c.num_hidden_layers, c.intermediate_size,
        c.num_attention_heads, c.num_key_value_heads, c.vocab_size)
    assert value["tokenizer.ggml.model"] == "gpt2" and value["tokenizer.ggml.merges"] == []  # the key is there
    tokens = value["tokenizer.ggml.tokens"]
    assert len(tokens) == tok.vocab_size and tokens[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert tokens[tok.convert_tokens_to_ids(" ")] == "Ġ" and tokens[tok.convert_tokens_to_ids("\n")] == "Ċ"
    assert value["tokenizer.ggml.token_type"][:5] == [3, 3, 3, 3, 1]  # control, then normal
    assert value["tokenizer.ggml.add_bos_token"] is False
    assert {t.name for t in r.tensors} >= {"token_embd.weight", "output_norm.weight", "blk.1.attn_q.weight"}
    assert "output.weight" not in {t.name for t in r.tensors}  # tied: llama.cpp reuses token_embd


def test_bad_input_fails_in_one_line(gguf_folder, tmp_path):
    model, tok, folder = gguf_folder
    with pytest.raises(ValueError, match=r"^quant 'q4_k' is not supported: choose one of 'f32', 'q8_0'$"):
        export.to_gguf(model, tmp_path, tokenizer=tok, quant="q4_k")
    with pytest.raises(ValueError, match="pass tokenizer="):
        export.to_gguf(model, tmp_path, quant="f32")
    with pytest.raises(FileNotFoundError, match="write one with to_gguf"):
        runtimes.GgufRunner(tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written


# the command line: python -m workbench export ------------------------------------------------------
def test_cli_export_writes_the_gguf_files(tiny_student, tmp_path, capsys):
    from workbench import cli

    model, tok, folder = tiny_student
    out = tmp_path / "out"
    assert cli.main(["export", "--model", str(folder), "--out", str(out), "--gguf", "f32,q8_0"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["files"]) == {"model.gguf", "model.q8_0.gguf"}
    assert printed["files"]["model.gguf"] == (out / "model.gguf").stat().st_size
    assert set(json.loads((out / export.SPEC).read_text())["artifacts"]) == set(printed["files"])
    assert (out / "vocab.json").is_file()  # CharTokenizer beside the files
    loaded = export.load_gguf(out)  # this student's lm_head is its own: output.weight
    assert not loaded.config.tie_word_embeddings
    ids = torch.randint(4, tok.vocab_size, (1, 12))
    with torch.inference_mode():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


@pytest.mark.parametrize("args, message", [
    (["--gguf", "q4_k"], "--gguf 'q4_k' is not a GGUF type this export writes: choose from f32, q8_0"),
    (["--model", "nowhere"], "'nowhere' is not a folder"),
    (["--out", "{file}"], "holds files that are not an export"),
])
def test_cli_export_bad_input_is_one_line(tiny_student, tmp_path, capsys, args, message):
    from workbench import cli

    _, _, folder = tiny_student
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    base = {"--model": str(folder), "--out": str(tmp_path / "out"), "--gguf": "f32"}
    base.update(dict(zip(args[::2], args[1::2])))
    base["--out"] = base["--out"].replace("{file}", str(tmp_path / "mine"))
    assert cli.main(["export", *[x for kv in base.items() for x in kv]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists() and (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_cli_export_refuses_a_model_llama_cpp_cannot_hold(tmp_path, capsys):
    from transformers import LlamaConfig, LlamaForCausalLM

    from workbench import cli
    from workbench.core.tokenizer import CharTokenizer

    tok = CharTokenizer()
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=4, attention_bias=True)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    assert cli.main(["export", "--model", str(tmp_path / "model"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GGUF export writes plain llama blocks; this model has attention_bias=True" in err
    assert not (tmp_path / "out").exists()


def test_cli_export_without_the_gguf_package_says_how_to_install_it(tiny_student, tmp_path, capsys, monkeypatch):
    import importlib.util

    from workbench import cli

    _, _, folder = tiny_student
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else find_spec(name, *a))
    assert cli.main(["export", "--model", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == "error: exporting needs gguf, not installed; install with: pip install gguf\n"
    assert not (tmp_path / "out").exists()
