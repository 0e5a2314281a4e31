"""`selfalign serve --model SPEC`: an OpenAI-compatible endpoint (POST /v1/chat/completions,
GET /v1/models) in front of any model spec, for the official `openai` client and anything that
speaks its API."""

from __future__ import annotations

import argparse
from typing import Any

from .generate import add_compile_decode_option, add_dtype_option, hf_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model on an OpenAI-compatible endpoint (/v1/chat/completions, /v1/models)",
        description=(
            "Example: selfalign serve --model hf:/tmp/tiny --port 8000, then "
            "openai.OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='EMPTY')"
        ),
    )
    p.add_argument("--model", required=True, help="model spec: hf:PATH, openai:MODEL@URL, vllm:PATH, llamacpp:FILE.gguf, scripted:FILE")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on; a taken port stops at once")
    p.add_argument("--served-name", default=None, help="model id reported by /v1/models (default: the spec)")
    add_dtype_option(p)
    add_compile_decode_option(p)
    p.add_argument("--max-concurrency", type=int, default=64, help="requests answered at once (default 64)")
    p.add_argument("--queue-timeout", type=float, default=30.0,
                   help="seconds a request waits for a free slot before a 503 with Retry-After (default 30)")
    p.add_argument("--read-timeout", type=float, default=30.0,
                   help="seconds a client has to send a whole request, and most seconds its answer may go unread, "
                        "before its connection is closed (default 30)")
    p.add_argument("--max-body-bytes", type=int, default=4 * 2**20,
                   help="largest request body accepted; a larger one gets 413 before it is read (default 4 MiB)")
    p.add_argument("--temperature", type=float, default=0.7, help="default when a request sends none")
    p.add_argument("--max-tokens", type=int, default=512, help="default when a request sends none")
    p.add_argument("--max-tokens-limit", type=int, default=4096,
                   help="most tokens one answer may have, whatever a request asks (default 4096; the model's "
                   "context minus the prompt caps it too)")
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
    from selfalign.serve.app import prompt_scorer, spec_aliases
    from selfalign.serve.server import run_server

    require("uvicorn", "serve")
    require("fastapi", "serve")
    try:
        sampling = Sampling(temperature=args.temperature, max_tokens=args.max_tokens)
    except ValueError as exc:
        raise UserError(f"bad --temperature or --max-tokens: {exc}") from exc
    if min(args.max_concurrency, args.max_tokens_limit, args.max_body_bytes) < 1 or min(args.queue_timeout, args.read_timeout) <= 0:
        raise UserError("--max-concurrency, --max-tokens-limit and --max-body-bytes must be at least 1, the timeouts above 0")
    sock = bind_port(args.host, args.port)  # before the model loads: a taken port stops at once
    model = load_model(args.model, max_concurrency=args.max_concurrency, sampling=sampling, **hf_options(args.model, args))
    served_name = args.served_name or args.model
    app = create_app(
        build_answerer(args, model),
        served_name,
        aliases=spec_aliases(args.model),
        default_sampling=sampling,
        on_shutdown=model.close,
        max_tokens_limit=args.max_tokens_limit,
        slots=args.max_concurrency,
        slot_wait_s=args.queue_timeout,
        score_prompts=prompt_scorer(model),
        max_body_bytes=args.max_body_bytes,
    )
    print(f"serving {args.model} as {served_name!r} on http://{args.host}:{args.port}/v1", flush=True)
    # one access-log line per request only with -v
    run_server(app, sock=sock, read_timeout=args.read_timeout, access_log=bool(getattr(args, "verbose", False)))
    return 0


def bind_port(host: str, port: int) -> Any:
    """A listening socket on host:port, or a UserError naming --port when it is taken."""
    import socket

    from selfalign.errors import UserError

    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(2048)
    except OSError as exc:
        raise UserError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                        "another server may hold it: stop it, or choose another --port") from exc
    return sock
