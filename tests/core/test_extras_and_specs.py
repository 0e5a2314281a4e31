import pytest

from selfalign.errors import UserError
from selfalign.llm import MissingExtra, load_provider
from selfalign.llm.extras import require


def test_missing_extra_names_its_install_command():
    with pytest.raises(MissingExtra, match=r"pip install 'selfalign\[ray\]'"):
        require("a_module_that_is_not_installed", "ray")


@pytest.mark.parametrize("spec", ["nocolon", "hf:", "bogus:model"])
def test_bad_specs_say_what_a_spec_is(spec):
    with pytest.raises(UserError, match="hf:ID_OR_PATH"):
        load_provider(spec)


def test_scripted_spec_with_bad_rules(tmp_path):
    from selfalign.errors import InputError

    rules = tmp_path / "r.jsonl"
    rules.write_text('{"match": "x", "reply": "ok"}\n{"match": "(", "reply": "y"}\n')
    with pytest.raises(InputError, match="r.jsonl:2: bad scripted rule"):
        load_provider(f"scripted:{rules}")
