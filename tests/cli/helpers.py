"""An app served by uvicorn in a thread, what a `sluice` command printed, flow files."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@contextlib.contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """`app` served by uvicorn in a thread on an ephemeral port; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = _Server(uvicorn.Config(app, lifespan="on", log_config=None, ws="none"))

    def run() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            server.ready.set()

    thread = threading.Thread(target=run, name="test-server")
    thread.start()
    try:
        if not server.ready.wait(30) or not server.started:
            raise RuntimeError("the test server did not start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@dataclass
class Ran:
    code: int
    out: str
    err: str


Sluice = Callable[..., Ran]


def write(path: Path, document: Any) -> str:
    text = json.dumps(document) if path.suffix == ".json" else yaml.safe_dump(document)
    path.write_text(text)
    return str(path)
