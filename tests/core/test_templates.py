"""--templates files are compiled and checked (syntax, variables) before any model call, with
the file and line of the error."""

import json

import pytest
from clitools import selfalign

from selfalign.errors import UserError
from selfalign.methods.critique.steps import PROMPTS_DIR
from selfalign.methods.prompts import Prompts


def folder(tmp_path, name, text):
    d = tmp_path / "tpl"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return d


@pytest.mark.parametrize(
    "text, line, says",
    [
        ("Critique it.\nPrinciple: {{ principle.critique }\n", 2, "unexpected '}'"),
        ("{% for p in principle %}\n{{ p }}\n", 2, "Unexpected end of template"),
        ("Line one\n\n{{ principle | no_such_filter }}\n", 3, "No filter named 'no_such_filter'"),
        ("{{ principle.critique }}\nAnd the {{ answer }} too.\n", 2, "uses the variable 'answer', which critique.j2 is not given; it is given principle"),
    ],
)
def test_a_bad_template_names_its_file_and_line(tmp_path, text, line, says):
    d = folder(tmp_path, "critique.j2", text)
    with pytest.raises(UserError) as err:
        Prompts(PROMPTS_DIR, d)
    assert str(err.value).startswith(f"{d / 'critique.j2'}:{line}: ")
    assert says in str(err.value)


def test_a_template_that_replaces_nothing_is_refused(tmp_path):
    d = folder(tmp_path, "critqiue.j2", "{{ principle }}")
    with pytest.raises(UserError, match="replaces no template of this method.*critique.j2, revise.j2"):
        Prompts(PROMPTS_DIR, d)


def test_a_good_template_replaces_the_shipped_one(tmp_path):
    d = folder(tmp_path, "critique.j2", "{% for k in ['a'] %}{{ k }}{% endfor %} {{ principle.critique | upper }}")
    prompts = Prompts(PROMPTS_DIR, d)
    assert prompts.render("critique", principle={"critique": "be kind"}) == "a BE KIND"


def test_the_cli_stops_before_any_model_call(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "hi"}) + "\n")
    d = folder(tmp_path, "revise.j2", "Rewrite.\n{{ principle.revision }\n")
    out = tmp_path / "run"
    proc = selfalign("critique-revise", "--model", "scripted:/nonexistent.jsonl", "--prompts", prompts,
                     "--out", out, "--templates", d, check=False)
    assert proc.returncode != 0
    assert f"{d / 'revise.j2'}:2: unexpected '}}'" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
