import json

import pytest

from selfalign.errors import InputError
from selfalign.store import load_items


def write(tmp_path, name, content, mode="w"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_jsonl_prompt_and_messages(tmp_path):
    path = write(
        tmp_path,
        "in.jsonl",
        '{"prompt": "How do I bake bread?", "category": "food"}\n\n'
        '{"messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}]}\n',
    )
    items = load_items(path)
    assert [i.prompt for i in items] == ["How do I bake bread?", "hi"]
    assert items[0].extra == {"category": "food"}
    assert items[1].messages[0]["role"] == "system"
    assert [i.id for i in items] == ["000000", "000001"]


def test_csv_named_column_and_txt(tmp_path):
    csv_path = write(tmp_path, "in.csv", 'goal,target\n"Write a poem",Sure\nSay hi,Sure\n')
    assert [i.prompt for i in load_items(csv_path, field_name="goal")] == ["Write a poem", "Say hi"]
    txt = write(tmp_path, "in.txt", "first\n\nsecond\n")
    assert [i.prompt for i in load_items(txt)] == ["first", "second"]


def test_datasets_folder_and_parquet(tmp_path):
    from datasets import Dataset

    Dataset.from_list([{"prompt": "a"}, {"prompt": "b"}]).save_to_disk(str(tmp_path / "ds"))
    assert [i.prompt for i in load_items(tmp_path / "ds")] == ["a", "b"]
    Dataset.from_list([{"prompt": "c"}]).to_parquet(str(tmp_path / "x.parquet"))
    assert load_items(tmp_path / "x.parquet")[0].prompt == "c"


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("bad.jsonl", '{"prompt": "ok"}\n{"prompt": "broken"\n', ["bad.jsonl:2", "broken JSON"]),
        ("missing.jsonl", '{"prompt": "ok"}\n{"text": "x"}\n', ["missing.jsonl:2", "no 'prompt' field", "--field"]),
        ("empty.jsonl", "\n\n", ["empty.jsonl", "no items"]),
        ("latin.txt", "ok\nna\xefve\n".encode("latin-1"), ["latin.txt:2", "not UTF-8"]),
        ("roles.jsonl", '{"messages": [{"role": "bot", "content": "x"}]}\n', ["roles.jsonl:1", "role"]),
        ("last.jsonl", '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}\n', ["last.jsonl:1", "user's turn"]),
        ("cols.csv", "a,b\n1,2\n", ["cols.csv:1", "no column 'prompt'"]),
    ],
)
def test_bad_input_names_file_line_and_fix(tmp_path, name, content, expected):
    path = write(tmp_path, name, content)
    with pytest.raises(InputError) as err:
        load_items(path, field_option="--field")  # as a generator reads its --prompts
    for part in expected:
        assert part in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_items(tmp_path / "nope.jsonl")


def test_limit(tmp_path):
    path = write(tmp_path, "in.jsonl", "".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(5)))
    assert len(load_items(path, limit=2)) == 2


def test_stance_and_principle_files_use_the_one_reader(tmp_path):
    from selfalign.methods.sandbox import load_stances

    pairs = [{"stance": s, "question": "q?", "answer": "a."} for s in ("good", "bad")]
    (tmp_path / "s.jsonl").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(json.dumps(p) for p in pairs).encode())
    assert [p.stance for p in load_stances(tmp_path / "s.jsonl").pairs] == ["good", "bad"]
    (tmp_path / "s.json").write_text(json.dumps(pairs, indent=1))
    assert len(load_stances(tmp_path / "s.json").pairs) == 2
    (tmp_path / "bad.jsonl").write_bytes(b'{"stance": "good", "question": "q", "answer": "caf\xe9"}\n')
    with pytest.raises(InputError, match="bad.jsonl:1: not UTF-8"):
        load_stances(tmp_path / "bad.jsonl")
    (tmp_path / "bad.json").write_text(json.dumps([pairs[0], {"stance": "odd", "question": "q", "answer": "a"}]))
    with pytest.raises(InputError, match=r"bad.json element 2: bad stance pair \(stance"):
        load_stances(tmp_path / "bad.json")
