"""What an OpenAI-compatible server offers selfalign: one row of the README's compatibility table.

    python benchmarks/server_compat.py http://127.0.0.1:8000/v1 MODEL_NAME

- chat: a plain chat completion comes back with text;
- structured: the mode the `openai:` provider's probe settles on (structured_outputs,
  json_schema, json_object, or none: the schema in the prompt), and whether a schema-bound
  call then validates;
- streaming: `stream=True` gives more than one chunk, ending with a finish reason;
- log-likelihood: /v1/completions with `echo` and `logprobs` returns a log-probability for the
  prompt's tokens (what likelihood-based evaluation needs).
"""

from __future__ import annotations

import argparse
import asyncio
import json

import openai
from pydantic import BaseModel

from selfalign.llm import load_model


class Verdict(BaseModel):
    ok: bool
    reason: str


def chat(client: openai.OpenAI, model: str) -> str:
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16)
    return "yes" if r.choices and r.choices[0].message.content is not None else "no"


def streaming(client: openai.OpenAI, model: str) -> str:
    chunks = list(client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Count to five."}], max_tokens=16, stream=True))
    finished = any(c.choices and c.choices[0].finish_reason for c in chunks)
    return f"yes ({len(chunks)} chunks)" if len(chunks) > 1 and finished else f"no ({len(chunks)} chunks)"


def log_likelihood(client: openai.OpenAI, model: str) -> str:
    try:
        r = client.completions.create(model=model, prompt="The sky is blue.", max_tokens=1, echo=True, logprobs=1)
    except openai.APIError as exc:
        return f"no ({type(exc).__name__}: {str(exc)[:80]})"
    lp = r.choices[0].logprobs if r.choices else None
    values = [v for v in (lp.token_logprobs if lp else None) or [] if v is not None]
    return f"yes ({len(values)} prompt tokens scored)" if len(values) > 1 else "no (no prompt logprobs)"


async def structured(url: str, model: str) -> str:
    m = load_model(f"openai:{model}@{url}")
    try:
        result = await m.chat("Is water wet? Answer as JSON.", schema=Verdict, max_tokens=128, temperature=0)
        return f"{m.provider.structured} (valid after {result.attempts} attempt(s))"
    except Exception as exc:  # a row of the table, whatever went wrong
        return f"{m.provider.structured} ({type(exc).__name__}: {str(exc)[:80]})"
    finally:
        await m.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("model")
    args = ap.parse_args()
    client = openai.OpenAI(base_url=args.url, api_key="EMPTY", max_retries=0, timeout=300)
    row = {
        "chat": chat(client, args.model),
        "structured": asyncio.run(structured(args.url, args.model)),
        "streaming": streaming(client, args.model),
        "log-likelihood": log_likelihood(client, args.model),
    }
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
