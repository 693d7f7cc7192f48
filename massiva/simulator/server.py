"""Serving the simulator over real HTTP: in the foreground, or in a thread for tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from massiva.simulator.app import create_app
from massiva.simulator.clock import SimClock
from massiva.simulator.settings import SimulatorSettings

#: The simulator checks no real credentials: it must not be reachable from the network.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def serve(
    settings: SimulatorSettings | None = None,
    clock: SimClock | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
) -> None:
    """Serve a new simulator with uvicorn until interrupted (loopback hosts only)."""
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the simulator only listens on loopback, not {host!r}")
    # date_header=False: the app's Date, from the simulated clock, is the only one.
    uvicorn.run(
        create_app(settings, clock),
        host=host,
        port=port,
        ws="none",
        lifespan="off",
        date_header=False,
    )


@contextmanager
def running_server(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1, a free port, in a background thread; yield its base URL.

    A real socket is what makes dropped-connection faults look like they do in
    production. The server stops when the block exits.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config=None: leave the host process's logging alone.
    config = uvicorn.Config(
        app,
        ws="none",
        http="h11",
        lifespan="off",
        log_config=None,
        timeout_graceful_shutdown=2,
        date_header=False,  # the simulator's own Date (its clock) is the only one
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
