"""The HTTP layer: uvicorn, with the limits it lacks by itself.

- A request must arrive whole (headers and body) within `read_timeout` seconds of its first
  byte, or of the connection opening: uvicorn's h11 protocol times out idle keep-alive
  connections but not a client that sends its headers one byte a minute, or nothing at all.
- A client must also read what it is sent: a connection whose answer could not be written for
  `read_timeout` seconds (the client reads nothing, so the buffers stay full) is closed, and its
  request cancelled; else a stream (or a long /v1/completions body) nobody reads would hold its
  slot for good.
- TCP keep-alive probes find clients that vanished without closing (half-open connections),
  so their requests are cancelled like those of clients that hang up.
- On SIGTERM or SIGINT, requests in flight get `GRACE_S` seconds to finish; the process ends
  within `EXIT_WITHIN_S` seconds whatever is still running (a long prefill, a stuck thread).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from selfalign.llm.extras import require

log = logging.getLogger(__name__)

GRACE_S = 2.0
EXIT_WITHIN_S = 4.5


def timed_protocol(read_timeout: float) -> type:
    """uvicorn's h11 protocol, closing connections whose request is not read within `read_timeout`,
    or whose answer cannot be written for as long."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        _read_timer: Any = None
        _write_timer: Any = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            _keepalive(transport.get_extra_info("socket"))
            self._start_read_timer()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):  # a request is on its way
                self._start_read_timer()
            else:
                self._stop_read_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_read_timer()
            self._stop_write_timer()
            super().connection_lost(exc)

        def pause_writing(self) -> None:  # the transport's buffer is full: the client is not reading
            super().pause_writing()
            if self._write_timer is None:
                self._write_timer = self.loop.call_later(read_timeout, self._write_timed_out)

        def resume_writing(self) -> None:
            super().resume_writing()
            self._stop_write_timer()

        def _stop_write_timer(self) -> None:
            if self._write_timer is not None:
                self._write_timer.cancel()
                self._write_timer = None

        def _write_timed_out(self) -> None:
            self._write_timer = None
            log.info("closing a connection whose client read nothing of its answer for %gs", read_timeout)
            self.transport.abort()  # close() would wait to write the buffer out first

        def _start_read_timer(self) -> None:
            if self._read_timer is None:
                self._read_timer = self.loop.call_later(read_timeout, self._read_timed_out)

        def _stop_read_timer(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _read_timed_out(self) -> None:
            self._read_timer = None
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
                log.info("closing a connection whose request did not arrive within %gs", read_timeout)
                self.transport.close()

    return TimedH11Protocol


def _keepalive(sock: socket.socket | None) -> None:
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def server_config(
    app: Any, *, host: str, port: int = 0, read_timeout: float = 30.0, log_level: str = "info", access_log: bool = True
) -> Any:
    uvicorn = require("uvicorn", "serve")
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=timed_protocol(read_timeout),
        timeout_keep_alive=5,
        timeout_graceful_shutdown=GRACE_S,
        lifespan="on",
        log_level=log_level,
        access_log=access_log,
    )


def make_server(config: Any) -> Any:
    """A uvicorn Server that, once told to stop by a signal, exits within EXIT_WITHIN_S seconds."""
    uvicorn = require("uvicorn", "serve")

    class Server(uvicorn.Server):  # type: ignore[misc, name-defined]
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            watchdog = threading.Timer(EXIT_WITHIN_S, _exit_now)
            watchdog.daemon = True
            watchdog.start()

    return Server(config)


def _exit_now() -> None:
    log.warning("still running %gs after the stop signal; exiting now", EXIT_WITHIN_S)
    logging.shutdown()
    os._exit(0)


def run_server(app: Any, *, sock: socket.socket, read_timeout: float = 30.0, access_log: bool = True) -> None:
    """Serve `app` on the listening socket `sock` until SIGTERM or SIGINT."""
    host, port = sock.getsockname()[:2]
    config = server_config(app, host=host, port=port, read_timeout=read_timeout, access_log=access_log)
    make_server(config).run(sockets=[sock])
