"""`--dtype`: the generators and `serve` load an hf: model's weights in the dtype asked for (on a
CPU, bfloat16 decodes faster than the default float32); `--compile-decode` runs their decode
steps at fixed shapes (llm/static_decode.py); other providers are given neither."""

import argparse
import asyncio

import pytest
import torch

from selfalign.cli.generate import add_compile_decode_option, add_dtype_option, hf_dtype, hf_options, open_model
from selfalign.cli.main import build_parser
from selfalign.store import RunStore


def parsed(*argv):
    p = argparse.ArgumentParser()
    add_dtype_option(p)
    return p.parse_args(list(argv))


def test_the_dtype_goes_to_hf_models_only():
    args = parsed("--dtype", "bfloat16")
    assert hf_dtype("hf:models/tiny", args) == {"dtype": "bfloat16"}
    assert hf_dtype("openai:m@http://127.0.0.1:8000/v1", args) == {}
    assert hf_dtype("hf:models/tiny", parsed()) == {}


def test_an_unknown_dtype_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        parsed("--dtype", "int3")
    assert "bfloat16" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["critique-revise", "matrix", "sandbox", "serve"])
def test_the_commands_that_load_a_model_take_it(command):
    inputs = [] if command == "serve" else ["--prompts", "prompts.jsonl", "--out", "runs/x"]
    args = build_parser().parse_args([command, "--model", "hf:models/tiny", *inputs, "--dtype", "bfloat16"])
    assert args.dtype == "bfloat16"


def test_a_generator_loads_the_weights_in_that_dtype(tiny_model_dir, tmp_path):
    args = argparse.Namespace(device="cpu", dtype="bfloat16", max_calls=4, ray=None)
    store = RunStore(tmp_path / "run")
    try:
        model = open_model(f"hf:{tiny_model_dir}", store, args)
        assert next(model.provider.model.parameters()).dtype == torch.bfloat16
        asyncio.run(model.close())
    finally:
        store.close()


def test_compile_decode_goes_to_hf_models_only():
    p = argparse.ArgumentParser()
    add_dtype_option(p)
    add_compile_decode_option(p)
    args = p.parse_args(["--compile-decode", "graphs", "--dtype", "bfloat16"])
    assert hf_options("hf:models/tiny", args) == {"dtype": "bfloat16", "compile_decode": "graphs"}
    assert hf_options("openai:m@http://127.0.0.1:8000/v1", args) == {}
    assert hf_options("hf:models/tiny", p.parse_args([])) == {}
    with pytest.raises(SystemExit):
        p.parse_args(["--compile-decode", "fast"])


@pytest.mark.parametrize("command", ["critique-revise", "matrix", "sandbox", "serve"])
def test_the_commands_that_load_a_model_take_compile_decode(command):
    inputs = [] if command == "serve" else ["--prompts", "prompts.jsonl", "--out", "runs/x"]
    args = build_parser().parse_args([command, "--model", "hf:models/tiny", *inputs, "--compile-decode", "graphs"])
    assert args.compile_decode == "graphs"


def test_a_generator_opens_the_model_with_fixed_shape_decode_steps(tiny_model_dir, tmp_path):
    args = argparse.Namespace(device="cpu", dtype=None, compile_decode="eager", max_calls=4, ray=None)
    store = RunStore(tmp_path / "run")
    try:
        model = open_model(f"hf:{tiny_model_dir}", store, args)
        assert model.provider.engine.decoder.static.mode == "eager"
        asyncio.run(model.close())
    finally:
        store.close()
