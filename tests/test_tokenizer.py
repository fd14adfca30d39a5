import pytest

from workbench.core.tokenizer import CharTokenizer, load_tokenizer
from workbench.tasks import TASKS


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_character_roundtrips(name):
    tok = CharTokenizer()
    for ex in TASKS[name].sample(30, seed=0):
        for text in (ex.input, ex.rationale, ex.target):
            ids = tok(text, add_special_tokens=False).input_ids
            assert len(ids) == len(text) and tok.unk_token_id not in ids
            assert tok.decode(ids) == text


@pytest.mark.parametrize("name", list(TASKS))
def test_the_fast_path_gives_transformers_ids(name):
    from workbench.core import evaluate as ev

    tok = CharTokenizer()
    texts = [t for ex in TASKS[name].sample(40, seed=1) for t in (ev.student_prompt(ex.input), ex.rationale, ex.target)]
    texts += ["a\u00e9b\n", "< ( <eos> [ >", "<pad><unk>x", "< <eo s>", ""]  # unknown characters, spelled specials
    for text in texts:
        assert tok.char_ids(text) == tok(text, add_special_tokens=False).input_ids, text


def test_save_and_load(tmp_path):
    tok = CharTokenizer(alphabet="ab\n ")
    tok.save_pretrained(tmp_path)
    back = load_tokenizer(str(tmp_path))
    assert isinstance(back, CharTokenizer) and back.get_vocab() == tok.get_vocab()
    assert back("ba").input_ids == tok("ba").input_ids and back.padding_side == "left"


def test_unknown_character_maps_to_unk():
    tok = CharTokenizer(alphabet="ab")
    assert tok("az", add_special_tokens=False).input_ids == [tok.convert_tokens_to_ids("a"), tok.unk_token_id]


def test_batch_pads_on_the_left():
    tok = CharTokenizer()
    enc = tok(["abc", "a"], padding=True)
    assert enc.input_ids[1][:2] == [tok.pad_token_id] * 2 and enc.attention_mask[1] == [0, 0, 1]
