"""The demo's end: items that did not finish are listed with what that means and do not fail
the demo; a step that produced nothing does."""

from pathlib import Path

from selfalign.cli.demo import Step, _meaning, _summarise

CUT = ("ItemFailed: the initial answer was cut at 1024 tokens (finish_reason 'length') after a retry with twice "
       "the budget; raise --max-tokens")


def test_failed_items_are_listed_by_meaning_and_the_demo_succeeds(capsys):
    steps = [Step("critique-revise", Path("runs/demo/run"), 8),
             Step("MATRIX", Path("runs/demo/matrix"), 1, [("000001", CUT)])]
    assert _summarise(steps, "runs/demo") == 0
    printed = capsys.readouterr().out
    assert "MATRIX: 1 done, 1 failed (runs/demo/matrix)" in printed
    assert "1 x an answer ran past its token budget" in printed and "e.g. 000001: ItemFailed: the initial answer" in printed
    assert "rerun `selfalign demo --out runs/demo` to retry them with new seeds" in printed
    assert "critique-revise:" not in printed  # nothing to say about a step whose items all finished


def test_a_step_that_produced_nothing_fails_the_demo(capsys):
    steps = [Step("critique-revise", Path("run"), 8), Step("MATRIX", Path("matrix"), 0, [("000000", CUT), ("000001", CUT)])]
    assert _summarise(steps, "runs/demo") == 1
    printed = capsys.readouterr().out
    assert "2 x an answer ran past its token budget" in printed and "MATRIX produced nothing (matrix): the demo failed" in printed


def test_every_reason_gets_a_meaning_and_an_unknown_one_is_shown_as_it_is():
    assert _meaning("SchemaError: no valid SceneSetting after 3 attempts; last: ...").startswith("the model's JSON never fitted")
    assert _meaning("SchemaError: the judge gave no valid verdict").startswith("the judge (the base model)")
    assert _meaning("ItemFailed: the model's revision is empty") == "the model answered nothing"
    assert _meaning("ModelError: hf:x: gave up after 4 tries: out of memory\nmore") == "ModelError: hf:x: gave up after 4 tries: out of memory"
