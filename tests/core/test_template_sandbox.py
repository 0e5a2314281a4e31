"""Templates render in a bounded sandbox: a --templates file that reaches outside its values or
past a bound is refused with its file and line before any model call; shipped templates pass
unchanged."""

import json
import shutil
from pathlib import Path

import jinja2
import pytest
from clitools import selfalign

import selfalign as package
from selfalign.errors import UserError
from selfalign.methods import jinja_sandbox
from selfalign.methods.critique.steps import PROMPTS_DIR
from selfalign.methods.prompts import Prompts

SHIPPED = sorted({p.parent for p in Path(package.__file__).parent.rglob("*.j2")})
ESCAPE = "{{ principle.__class__.__init__.__globals__.__builtins__.__import__('os').popen('touch %s').read() }}"


def folder(tmp_path, text, name="critique.j2"):
    d = tmp_path / "tpl"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return d


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_template_passes_the_checks_unchanged(tmp_path, shipped):
    copy = tmp_path / "copy"
    shutil.copytree(shipped, copy)
    prompts = Prompts(shipped, copy)  # each file: compiled, checked, rendered with stand-ins
    assert prompts.names() == sorted(p.stem for p in shipped.glob("*.j2"))


def test_the_shipped_templates_render_their_values():
    prompts = Prompts(PROMPTS_DIR)
    text = prompts.render("critique", principle={"critique": "Is it kind?"})
    assert text.startswith("Critique the answer you just gave. Is it kind?")


@pytest.mark.parametrize(
    "text, line, says",
    [
        ("Critique.\n" + ESCAPE, 2, "reaches for the attribute '__class__'"),
        ("{{ principle['__class__'] }}", 1, "reaches for the attribute '__class__'"),
        ("a\nb\n{% for i in range(10**9) %}{{ i }}{% endfor %}", 3, "the number 1,000,000,000"),
        ("{{ 'ab' * 10**8 }}", 1, "repeats a value to more than 1,000,000"),
        ("{% for i in range(100000) %}\n{% for j in range(100000) %}{% endfor %}{% endfor %}", 2, "more than 1,000,000 steps"),
        ("{% set a = 'x' * 100000 %}{{ a~a~a~a~a~a~a~a~a~a~a }}", 1, "joins text longer than 1,000,000"),
        ("{{ principle.critique | center(10**9) }}", 1, "the number 1,000,000,000"),
        ("{{ '%0999999999d' | format(1) }}", 1, "width or precision"),
        ("{{ '%0999999999d' % 1 }}", 1, "width or precision"),
        ("{{ '{:>999999999}'.format(1) }}", 1, "'format' of 'str' object is unsafe"),
        ("{{ principle.critique.upper.__self__ }}", 1, "reaches for the attribute '__self__'"),
        ("{{ principle | attr('\\x5f\\x5fclass\\x5f\\x5f') }}", 1, "attribute '__class__' of '_Probe' object is unsafe"),
        ("{{ range(100000) | join('x' * 999999) }}", 1, "its join would make more than 1,000,000"),
        ("{{ ('\\n' * 999999) | indent(100000) }}", 1, "its indent would make more than 1,000,000"),
        ("{{ ('x' * 999999) | wordwrap(1) }}", 1, "it wraps more than 20,000 characters"),
        ("{{ ('x' * 999999).replace('', 'y' * 999999) }}", 1, "'replace' of 'str' object is unsafe"),
        ("{{ ('\\t' * 999999).expandtabs(100000) }}", 1, "'expandtabs' of 'str' object is unsafe"),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", 1, "recursion"),
    ],
)
def test_a_template_outside_the_sandbox_is_refused_with_file_and_line(tmp_path, text, line, says):
    d = folder(tmp_path, text)
    with pytest.raises(UserError) as err:
        Prompts(PROMPTS_DIR, d)
    assert str(err.value).startswith(f"{d / 'critique.j2'}:{line}: "), str(err.value)
    assert says in str(err.value)


def test_a_bound_broken_on_a_branch_the_check_did_not_take_fails_at_render(tmp_path):
    d = folder(tmp_path, "Critique.\n{% if principle.critique == 'boom' %}\n{{ 'ab' * 10**8 }}{% endif %}")
    prompts = Prompts(PROMPTS_DIR, d)  # the stand-in value never equals 'boom'
    assert prompts.render("critique", principle={"critique": "fine"}) == "Critique."
    with pytest.raises(UserError, match=r"critique.j2:3: refused by the template sandbox: it repeats"):
        prompts.render("critique", principle={"critique": "boom"})


def test_rendered_text_and_time_are_bounded(monkeypatch):
    env = jinja_sandbox.BoundedSandbox()
    many = env.from_string("{% for i in range(100000) %}{{ 'x' * 99 }}{% endfor %}")
    with pytest.raises(jinja_sandbox.TemplateBounds, match="renders more than 1,000,000 characters"):
        jinja_sandbox.render_bounded(many, {})
    monkeypatch.setattr(jinja_sandbox, "MAX_SECONDS", -1.0)  # every check finds the deadline passed
    slow = env.from_string("{% for i in range(2000) %}{% endfor %}")
    with pytest.raises(jinja_sandbox.TemplateBounds, match="ran longer than -1 seconds"):
        jinja_sandbox.render_bounded(slow, {})


def test_values_cannot_be_changed_by_a_template():
    env = jinja_sandbox.BoundedSandbox()
    values = {"items": [1, 2]}
    with pytest.raises(jinja_sandbox.SecurityError):
        jinja_sandbox.render_bounded(env.from_string("{{ items.append(3) }}"), values)
    assert values == {"items": [1, 2]}


class _Record:
    """A value whose fields are named like a list's methods that change it."""

    def __init__(self) -> None:
        self.append, self.pop = "appended", "popped"


@pytest.mark.parametrize("order", ["safe first", "unsafe first"])
def test_attribute_decisions_are_remembered_per_type_of_value_not_per_name(order):
    env = jinja_sandbox.BoundedSandbox()
    safe = env.from_string("{{ record.append }} {{ record.pop }} {{ text.upper() }}")
    unsafe = [env.from_string("{{ items.append(3) }}"), env.from_string("{{ text.format(1) }}")]
    values = {"record": _Record(), "items": [1, 2], "text": "a{}"}
    for _ in range(2):  # the second time from what was remembered
        if order == "safe first":
            assert jinja_sandbox.render_bounded(safe, values) == "appended popped A{}"
        for template in unsafe:
            with pytest.raises(jinja_sandbox.SecurityError):
                jinja_sandbox.render_bounded(template, values)
        if order == "unsafe first":
            assert jinja_sandbox.render_bounded(safe, values) == "appended popped A{}"
    assert values["items"] == [1, 2]


def test_the_cli_refuses_an_escaping_template_before_any_model_call(tmp_path):
    planted = tmp_path / "pwned"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "hi"}) + "\n")
    d = folder(tmp_path, "Critique.\n" + ESCAPE % planted)
    out = tmp_path / "run"
    proc = selfalign("critique-revise", "--model", "scripted:/nonexistent.jsonl", "--prompts", prompts,
                     "--out", out, "--templates", d, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{d / 'critique.j2'}:2: reaches for the attribute '__class__'" in proc.stderr
    assert not planted.exists() and not out.exists()


class _Row(dict):
    """A dict whose instances may carry an attribute of their own."""


def test_an_attribute_remembered_safe_on_one_value_is_still_looked_up_on_the_next():
    env = jinja_sandbox.BoundedSandbox(undefined=jinja2.StrictUndefined)
    template = env.from_string("{{ row.note }}")
    with_attribute = _Row(note="an item")
    with_attribute.note = "an attribute"
    assert jinja_sandbox.render_bounded(template, {"row": with_attribute}) == "an attribute"
    assert jinja_sandbox.render_bounded(template, {"row": _Row(note="an item")}) == "an item"  # no attribute: the item
    with pytest.raises(jinja2.UndefinedError):
        jinja_sandbox.render_bounded(template, {"row": _Row()})
