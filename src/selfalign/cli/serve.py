"""`selfalign serve --model SPEC`: an OpenAI-compatible endpoint (POST /v1/chat/completions,
GET /v1/models) in front of any model spec, for the official `openai` client and anything that
speaks its API."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model on an OpenAI-compatible endpoint (/v1/chat/completions, /v1/models)",
        description=(
            "Example: selfalign serve --model hf:/tmp/tiny --port 8000, then "
            "openai.OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='EMPTY')"
        ),
    )
    p.add_argument("--model", required=True, help="model spec: hf:PATH, openai:MODEL@URL, vllm:PATH, scripted:FILE")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-name", default=None, help="model id reported by /v1/models (default: the spec)")
    p.add_argument("--max-concurrency", type=int, default=64, help="model calls in flight at once (default 64)")
    p.add_argument("--temperature", type=float, default=0.7, help="default when a request sends none")
    p.add_argument("--max-tokens", type=int, default=512, help="default when a request sends none")
    # Answer modes other than the plain model (e.g. --matrix) add their flag here and their
    # case in `build_answerer`.
    p.add_argument("--matrix", action="store_true", help="answer through a MATRIX simulation and revision (slower)")
    from .matrix import add_matrix_options

    add_matrix_options(p.add_argument_group("--matrix options"))
    p.set_defaults(func=run)


def build_answerer(args: argparse.Namespace, model: Any) -> Any:
    """How each request is answered. Default: one call through the Model wrapper."""
    from selfalign.serve import model_answerer

    if getattr(args, "matrix", False):
        from selfalign.methods.matrix.serving import matrix_answerer

        from .matrix import matrix_config

        return matrix_answerer(model, matrix_config(args))
    return model_answerer(model)


def run(args: argparse.Namespace) -> int:
    from selfalign.errors import UserError
    from selfalign.llm import Sampling, load_model
    from selfalign.llm.extras import require
    from selfalign.serve import create_app

    uvicorn = require("uvicorn", "serve")
    require("fastapi", "serve")
    try:
        sampling = Sampling(temperature=args.temperature, max_tokens=args.max_tokens)
    except ValueError as exc:
        raise UserError(f"bad --temperature or --max-tokens: {exc}") from exc
    model = load_model(args.model, max_concurrency=args.max_concurrency, sampling=sampling)
    served_name = args.served_name or args.model
    app = create_app(build_answerer(args, model), served_name, default_sampling=sampling, on_shutdown=model.close)
    print(f"serving {args.model} as {served_name!r} on http://{args.host}:{args.port}/v1")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
