"""Role names are model output that becomes part of later schemas (the perceivers' enum):
they are kept to short printable text, whatever the model wrote."""

import pytest
from pydantic import ValidationError

from selfalign.methods.matrix.schemas import NAME, RoleSpec, SceneSetting, verdict_schema


def test_unprintable_characters_leave_a_role_name_and_its_enum():
    role = RoleSpec(name="bank\x07 te\u202ell\x1ber\x00", kind="person", description="counts cash")
    assert role.name == "bank teller"
    enum = verdict_schema((role.name, "cash drawer")).model_json_schema()["properties"]["perceivers"]["items"]["enum"]
    assert enum == ["bank teller", "cash drawer"] and all(n.isprintable() for n in enum)


def test_the_ego_is_cleaned_too():
    scene = SceneSetting(situation="a bank", ego="cus\ttomer\x85", target="cash", impact=["none"], outcome="paid")
    assert scene.ego == "cus tomer"


@pytest.mark.parametrize("name", ["\x00\x01\x7f", "\u200b\u202e", "x" * (NAME + 1)])
def test_a_name_with_nothing_printable_or_too_long_is_a_schema_violation(name):
    with pytest.raises(ValidationError):
        RoleSpec(name=name, kind="object", description="")
