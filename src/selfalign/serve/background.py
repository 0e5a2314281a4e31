"""Run an app with uvicorn on a background thread: for tests, notebooks and scripts.

    with BackgroundServer(app) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="EMPTY")
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from selfalign.llm.extras import require

from .server import server_config


class BackgroundServer:
    """uvicorn on a thread, on `host:port` (port 0: a free port, bound before the thread starts,
    so `url` is known and nothing else can take the port)."""

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning", read_timeout: float = 30.0
    ) -> None:
        uvicorn = require("uvicorn", "serve")
        self.host = host
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        config = server_config(app, host=host, port=self.port, read_timeout=read_timeout, log_level=log_level)
        self.server = uvicorn.Server(config)  # the same HTTP layer as `selfalign serve`
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, name=f"uvicorn-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server on {self.url} stopped while starting; see its log")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.url} did not start within {timeout:g}s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
