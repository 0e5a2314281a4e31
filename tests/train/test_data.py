"""Reading, validating and converting training data; assistant-only token masks."""

from __future__ import annotations

import json

import pytest

from selfalign.errors import InputError
from selfalign.train.data import (
    load_records,
    select_responses,
    to_groups,
    to_pairs,
    to_sft,
    tokenize_conversation,
    tokenize_groups,
)

from train_fixtures import BAD, GOOD, write_jsonl


def test_reads_every_format(data_dir):
    for name in ["sft", "prefs", "groups", "sandbox"]:
        assert len(load_records(str(data_dir / f"{name}.jsonl"))) == 6


def test_reads_parquet_and_dataset_folders(tmp_path, data_dir):
    from datasets import Dataset, DatasetDict

    rows = [json.loads(line) for line in (data_dir / "groups.jsonl").read_text().splitlines()]
    Dataset.from_list(rows).to_parquet(str(tmp_path / "g.parquet"))
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "dsd"))
    for path in ["g.parquet", "ds", "dsd"]:
        items = load_records(str(tmp_path / path))
        assert len(items) == 6 and items[0].record.ratings == [4.0, 7.0, 1.0]
    assert "row 1" in load_records(str(tmp_path / "g.parquet"))[0].where


def test_conversions(data_dir):
    groups = load_records(str(data_dir / "groups.jsonl"))
    # SFT from groups: prompt + best response
    assert to_sft(groups)[0] == [{"role": "user", "content": groups[0].record.prompt},
                                 {"role": "assistant", "content": GOOD}]
    # DPO from groups: best vs worst
    pair = to_pairs(groups)[0]
    assert pair["chosen"][0]["content"] == GOOD and pair["rejected"][0]["content"] == BAD
    # stable from preference: chosen rated 7, rejected 1
    g = to_groups(load_records(str(data_dir / "prefs.jsonl")))[0]
    assert g.responses == [GOOD, BAD] and g.ratings == [7.0, 1.0]
    # stable from SFT: one response, prompt is everything before it
    g = to_groups(load_records(str(data_dir / "sft.jsonl")))[0]
    assert g.responses == [GOOD] and [m["role"] for m in g.prompt] == ["system", "user"]
    # stable from the Sandbox release
    g = to_groups(load_records(str(data_dir / "sandbox.jsonl")))[0]
    assert g.responses == [BAD, GOOD] and g.ratings == [2.0, 6.0]
    assert g.prompt[0]["role"] == "user"


def test_sandbox_instruction_and_implicit_prompt(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [
        {"instruction": "Answer kindly.", "input": "Hi?", "responses": ["a", "b"], "scores": [3, 5]},
        {"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
         "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]},
    ])
    items = load_records(str(path))
    assert to_groups(items[:1])[0].prompt == [{"role": "user", "content": "Answer kindly.\n\nHi?"}]
    pair = to_pairs(items[1:])[0]
    assert pair["prompt"] == [{"role": "user", "content": "q"}]
    assert pair["chosen"] == [{"role": "assistant", "content": "good"}]


def test_dpo_rejects_sft_and_skips_flat_groups(tmp_path, data_dir):
    with pytest.raises(InputError, match="--method dpo needs preference"):
        to_pairs(load_records(str(data_dir / "sft.jsonl")))
    flat = write_jsonl(tmp_path / "flat.jsonl", [{"prompt": "q", "responses": ["a", "b"], "ratings": [5, 5]}])
    with pytest.raises(InputError, match="no preference pairs"):
        to_pairs(load_records(str(flat)))


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"prompt": "q", "responses": ["a", "b"], "ratings": [5, 8]}, "rating #2 is 8, outside [1, 7]"),
        ({"prompt": "q", "responses": ["a", "b"], "ratings": [-1, 5]}, "rating #1 is -1, outside [1, 7]"),
        ({"prompt": "q", "responses": ["a", "b"], "ratings": [None, 5]}, "rating #1 is None, not a number"),
        ({"query": "q", "responses": ["a", "b"], "scores": [3, 8]}, "placeholder ratings"),
        ({"prompt": "q", "responses": ["a", "b"], "ratings": [5]}, "2 responses but 1 ratings"),
        ({"prompt": "q", "ratings": [5]}, "responses: Field required"),
        ({"prompt": "q", "chosen": "a"}, "rejected: Field required"),
        ({"messages": [{"role": "user", "content": "q"}]}, "role 'assistant'"),
        ({"messages": [{"role": "user"}]}, "content: Field required"),
        ({"messages": [{"role": "tool", "content": "q"}, {"role": "assistant", "content": "a"}]},
         "Input should be 'system', 'user' or 'assistant'"),
        ({"text": "hello"}, "unknown record format"),
    ],
)
def test_bad_records_name_file_and_line(tmp_path, row, expected):
    good = {"prompt": "q", "responses": ["a"], "ratings": [4]}
    path = write_jsonl(tmp_path / "bad.jsonl", [good, good, row])
    with pytest.raises(InputError) as info:
        load_records(str(path))
    msg = str(info.value)
    assert f"{path}:3" in msg and expected in msg and "nothing was trained" in msg


def test_extra_message_keys_are_ignored(tmp_path):
    path = write_jsonl(tmp_path / "named.jsonl", [{"messages": [{"role": "user", "content": "q", "name": "ann"},
                                                                {"role": "assistant", "content": "a"}]}])
    assert to_sft(load_records(str(path)))[0][0] == {"role": "user", "content": "q"}


def test_broken_json_line_and_all_errors_reported(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(
        '{"prompt": "q", "responses": ["a"], "ratings": [4]}\n'
        '{"prompt": "q", "responses": ["a"], "ratings": [4]\n'
        "\n"
        '{"prompt": "q", "responses": ["a"], "ratings": [8]}\n'
    )
    with pytest.raises(InputError) as info:
        load_records(str(path))
    msg = str(info.value)
    assert "2 bad training record(s)" in msg
    assert f"{path}:2: broken JSON" in msg and f"{path}:4:" in msg


def test_rating_scale_is_configurable(tmp_path):
    path = write_jsonl(tmp_path / "ten.jsonl", [{"prompt": "q", "responses": ["a", "b"], "ratings": [9, 2]}])
    with pytest.raises(InputError):
        load_records(str(path))
    assert load_records(str(path), rating_scale=10)[0].record.ratings == [9.0, 2.0]


def test_missing_path_and_unknown_suffix(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_records(str(tmp_path / "nope.jsonl"))
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="unknown data file type"):
        load_records(str(tmp_path / "x.csv"))


def test_select_responses_keeps_best_and_spread():
    assert select_responses([4, 7, 1], 3) == [0, 1, 2]
    # best (7 at 1), middle of the rest by rating (4 at 3), worst (1 at 4)
    assert select_responses([5, 7, 3, 4, 1], 3) == [1, 3, 4]
    assert select_responses([5, 7, 3, 4, 1], 2) == [1, 4]
    assert select_responses([7, 7, 2, 1], 1) == [0]  # ties: the first best


def test_assistant_mask_covers_only_assistant_tokens(tiny_lm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_lm))
    msgs = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello friend"}, {"role": "user", "content": "Bye"},
            {"role": "assistant", "content": "Goodbye now"}]
    ids, mask = tokenize_conversation(tok, msgs, max_length=512)
    full = tok.apply_chat_template(msgs, tokenize=False)
    assert tok.decode(ids) == full
    trained = tok.decode([i for i, k in zip(ids, mask) if k])
    assert trained == "Hello friend<|im_end|>\nGoodbye now<|im_end|>\n"
    ids, mask = tokenize_conversation(tok, msgs, max_length=512, only_last=True)
    assert tok.decode([i for i, k in zip(ids, mask) if k]) == "Goodbye now<|im_end|>\n"
    ids, mask = tokenize_conversation(tok, msgs, max_length=10)
    assert len(ids) == len(mask) == 10


def test_tokenize_groups_masks_prompt_and_drops_cut_responses(tiny_lm, data_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_lm))
    groups = to_groups(load_records(str(data_dir / "groups.jsonl")))
    rows = tokenize_groups(tok, groups, max_length=512)
    assert len(rows) == 6 and len(rows[0]["input_ids"]) == 3 and len(rows[1]["input_ids"]) == 2
    labels = rows[0]["labels"][1]
    assert tok.decode([x for x in labels if x != -100]) == GOOD + "<|im_end|>\n"
    assert labels[0] == -100
    with pytest.raises(InputError, match="raise --max-length"):
        tokenize_groups(tok, groups, max_length=8)


def test_one_reader_json_array_bom_crlf(tmp_path):
    """Training reads files as generation does: a JSON array (the original Sandbox release is
    one), a byte-order mark, CRLF line ends."""
    release = [{"query": "How do I calm down?", "responses": ["Breathe slowly.", "Shout."], "scores": [6, 2]}] * 3
    (tmp_path / "sandbox_v1.json").write_text(json.dumps(release, indent=2))
    items = load_records(str(tmp_path / "sandbox_v1.json"))
    assert len(items) == 3 and items[1].where.endswith("sandbox_v1.json element 2")
    assert to_groups(items)[0].ratings == [6.0, 2.0]
    lines = "\r\n".join(json.dumps({"prompt": "q", "responses": ["a"], "ratings": [4]}) for _ in range(2))
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + lines.encode() + b"\r\n")
    assert len(load_records(str(tmp_path / "bom.jsonl"))) == 2


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("latin1.jsonl", b'{"prompt": "q"}\n{"prompt": "caf\xe9"}\n', "latin1.jsonl:2: not UTF-8"),
        ("broken.json", b'[\n {"prompt": "q",}\n]', "broken.json:2: broken JSON"),
        ("object.json", b'{\n "prompt": "q"\n}\n', "holds one JSON object"),
    ],
)
def test_unreadable_files_name_file_line_and_fix(tmp_path, name, content, expected):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=expected):
        load_records(str(tmp_path / name))


def test_corrupt_datasets_folder_is_a_clear_error(tmp_path):
    from datasets import Dataset

    Dataset.from_list([{"prompt": "q", "responses": ["a"], "ratings": [4]}]).save_to_disk(str(tmp_path / "ds"))
    for arrow in (tmp_path / "ds").glob("*.arrow"):
        arrow.write_bytes(b"not arrow")
    with pytest.raises(InputError, match="not a readable datasets folder"):
        load_records(str(tmp_path / "ds"))


def test_data_files_mix_with_weights(tmp_path):
    """MATRIX data mixed with ordinary helpful data, as the paper's recipe does."""
    matrix = write_jsonl(tmp_path / "matrix.jsonl", [{"messages": [{"role": "user", "content": f"m{i}"},
                                                                    {"role": "assistant", "content": "r"}]} for i in range(4)])
    helpful = write_jsonl(tmp_path / "helpful.jsonl", [{"messages": [{"role": "user", "content": f"h{i}"},
                                                                      {"role": "assistant", "content": "r"}]} for i in range(10)])
    mixed = load_records([str(matrix), f"{helpful}:0.5"], seed=1)
    prompts = [item.record.messages[0].content for item in mixed]
    assert len(prompts) == 9 and sum(p.startswith("h") for p in prompts) == 5 and len(set(prompts)) == 9
    assert prompts == [item.record.messages[0].content for item in load_records([str(matrix), f"{helpful}:0.5"], seed=1)]
    assert len(load_records([f"{matrix}:2.5"])) == 10
    with pytest.raises(InputError, match="must be a positive number"):
        load_records([f"{matrix}:0"])
