"""Without the `ray` extra nothing changes, and `--ray` says how to install it."""

import json
import sys
from types import SimpleNamespace

from selfalign.cli.main import main


def test_ray_is_optional_and_its_absence_is_a_clear_error(tmp_path, monkeypatch, capsys):
    rules, prompts = tmp_path / "rules.jsonl", tmp_path / "prompts.jsonl"
    rules.write_text(json.dumps({"match": "", "reply": "An answer."}) + "\n")
    prompts.write_text(json.dumps({"prompt": "Hello?"}) + "\n")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: importing it fails
    args = ["critique-revise", "--model", f"scripted:{rules}", "--prompts", str(prompts), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "local")]) == 0  # no --ray: Ray is never imported
    assert main([*args, "--out", str(tmp_path / "ray"), "--ray", "--actors", "2"]) == 2
    err = capsys.readouterr().err
    assert "'ray' is needed here but not installed" in err and "pip install 'selfalign[ray]'" in err


def test_a_pool_a_local_ray_instance_cannot_hold_is_refused_before_any_work(monkeypatch, caplog):
    import pytest

    from selfalign.errors import UserError
    from selfalign.llm import ray_pool
    from selfalign.llm.ray_pool import RayOptions

    monkeypatch.setattr(ray_pool, "ROOM_WAIT", 0.0)
    two_cpus = SimpleNamespace(available_resources=lambda: {"CPU": 2.0})
    ray_pool._check_room(two_cpus, "hf:m", RayOptions(actors=4, cpus_per_actor=0.5))  # fits: nothing said
    with pytest.raises(UserError, match=r"^hf:m on Ray: --actors 2 needs 2 GPU \(0 free\) on the local Ray instance"):
        ray_pool._check_room(two_cpus, "hf:m", RayOptions(actors=2, gpus_per_actor=1))
    ray_pool._check_room(two_cpus, "hf:m", RayOptions(address="auto", actors=3))  # a cluster may grow: it waits
    assert "--actors 3 needs 3 CPU (2 free) on the Ray cluster" in caplog.text


def test_an_error_raised_in_an_actor_is_raised_as_it_was():
    from selfalign.llm.errors import TransientError
    from selfalign.llm.ray_pool import _original

    cause = TransientError("server busy")
    assert _original(SimpleNamespace(cause=cause)) is cause  # a RayTaskError carries it as .cause
    plain = RuntimeError("no cause")
    assert _original(plain) is plain
