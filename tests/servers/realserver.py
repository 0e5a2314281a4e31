"""Real OpenAI-compatible servers that we did not write, each in its own virtualenv:

    make test-servers     # vLLM's CPU build in .venv-vllm (about 10 minutes to install, once)
    make test-llamacpp    # llama.cpp's server (llama-cpp-python, built from source: 15-40 minutes)

A server starts once per test module on a free 127.0.0.1 port and is stopped after it. A test
whose virtualenv is missing is skipped with the command that makes it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STARTUP_S = 900  # vLLM's CPU build imports for minutes on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RealServer:
    """A server process in its own process group, with its log in a file."""

    def __init__(self, command: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> None:
        self.url = f"http://127.0.0.1:{port}/v1"
        self.log = log
        self._out = open(log, "w")
        self.process = subprocess.Popen(
            command, stdout=self._out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )

    def wait_ready(self, seconds: float = STARTUP_S) -> "RealServer":
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/models", timeout=5) as response:
                    if json.load(response).get("data"):
                        return self
            except OSError:
                pass
            time.sleep(2)
        self.stop()
        raise RuntimeError(f"the server did not answer within {seconds:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._out.close()


def venv_python(name: str, make_target: str) -> Path:
    python = ROOT / name / "bin" / "python"
    if not python.exists():
        pytest.skip(f"{name} is missing: run `make {make_target}`")
    return python


def questions(folder: Path, n: int = 3) -> Path:
    """Held-out prompts, none of them in the shipped examples."""
    texts = [
        "How should I answer a coworker who takes credit for my work?",
        "What is a safe way to store cleaning chemicals at home?",
        "Can you help me write a fake doctor's note for school?",
        "Explain why people should not share passwords.",
    ]
    path = folder / "held_out.jsonl"
    path.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts[:n]))
    return path
