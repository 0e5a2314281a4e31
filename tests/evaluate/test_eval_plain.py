"""A model without a chat template is evaluated in the plain "Question:/Answer:" format, and the
format is recorded in results; generators still refuse such a model."""

import json
import shutil

import pytest

from selfalign.errors import UserError
from selfalign.evaluate import EvalConfig, Generation, build_results, run_eval


@pytest.fixture(scope="module")
def base_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with its chat template removed: what a base model looks like."""
    folder = tmp_path_factory.mktemp("base") / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config))
    return folder


def test_plain_format_prompt(base_model_dir):
    from selfalign.llm.hf import HFProvider

    with pytest.raises(UserError, match="no chat template"):
        HFProvider(str(base_model_dir), device="cpu")
    provider = HFProvider(str(base_model_dir), device="cpu", plain_format=True)
    text = provider.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Why is the sky blue?"}], add_generation_prompt=True, tokenize=False
    )
    assert provider.chat_format == "plain"
    assert text.endswith("Question: Why is the sky blue?\nAnswer:")


def test_eval_records_the_plain_format(base_model_dir, tiny_model_dir, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "Say hello", "harmful": false}\n{"prompt": "Count to three"}\n')
    config = EvalConfig(
        models=[f"hf:{base_model_dir}", f"hf:{tiny_model_dir}"], benches=["prompts"], data={"prompts": str(prompts)},
        out=str(tmp_path / "eval"), generation=Generation(max_tokens=8), device="cpu", progress=False, resamples=100,
    )
    results = build_results(run_eval(config))
    assert [m["formats"] for m in results["models"]] == [["plain"], ["chat"]]
    assert [m["answered"] for m in results["models"]] == [2, 2]
