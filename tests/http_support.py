"""Helpers for the HTTP service's tests: tokens, an in-process client, and a real server process."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from adaptive_runtime import Host
from adaptive_runtime.service.app import ServiceConfig, create_app
from adaptive_runtime.service.auth import Tokens

WRITER = "w" * 8 + "0123456789abcdef"
READER = "r" * 8 + "0123456789abcdef"
APPROVER = "a" * 8 + "0123456789abcdef"
TOKENS_TEXT = f"read,write {WRITER}\nread {READER}\napprove {APPROVER}\n"
WRITE = {"Authorization": f"Bearer {WRITER}"}
READ = {"Authorization": f"Bearer {READER}"}


def tokens() -> Tokens:
    return Tokens.parse(TOKENS_TEXT, where="test tokens")


@contextlib.asynccontextmanager
async def client(host: Host, **config: object) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app, in this process and on the test's loop: the host, the
    requests and the test share it. (Litestar's test client would serve on a loop of its own.)
    The host is started and stopped here, as `serve` does around the app."""
    settings = ServiceConfig(tokens=tokens(), manage_host=False, **config)  # type: ignore[arg-type]
    app = create_app(host, settings)
    transport = httpx.ASGITransport(app=app)
    async with host, httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        for hook in app.on_startup:
            await hook()  # the telemetry's commit watcher
        try:
            yield c
        finally:
            for hook in app.on_shutdown:
                await hook()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(path: str) -> str:
    """The path of a program the test needs; CI installs it (a missing one fails there)."""
    if os.path.exists(path) or shutil.which(path):
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{path} is missing: .ci/run installs it")
    pytest.skip(f"{path} is not installed here (.ci/run installs it)")


class ServerProcess:
    """`adaptive-runtime serve` in a process of its own, on a free loopback port."""

    def __init__(
        self,
        db: Path | str,
        tmp: Path,
        *extra: str,
        port: int | None = None,
        program: Sequence[str] = (sys.executable, "-m", "adaptive_runtime", "serve"),
    ) -> None:
        self.port = free_port() if port is None else port
        self.url = f"http://127.0.0.1:{self.port}"
        token_file = tmp / "tokens.txt"
        token_file.write_text(TOKENS_TEXT)
        token_file.chmod(0o600)  # as a token file should be: serve warns of one others read
        self.log = tmp / f"serve-{self.port}.log"
        self._log = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                *program,
                "--db",
                str(db),
                "--tokens",
                str(token_file),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
                *extra,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll /readyz until the server answers (a real process: it takes what it takes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the server exited with {self.proc.returncode}: {self.output()}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the server was not ready in {timeout} s: {self.output()}")

    def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log.read_text()


@contextlib.contextmanager
def server(
    db: Path | str,
    tmp: Path,
    *extra: str,
    port: int | None = None,
    program: Sequence[str] | None = None,
) -> Iterator[ServerProcess]:
    """`serve` on `db`, ready; on a free port, or on `port` (another server's, once it
    stopped: a page that followed it reconnects to this one). `program`, if given, runs
    instead of `serve`, with the same flags."""
    proc = (
        ServerProcess(db, tmp, *extra, port=port)
        if program is None
        else ServerProcess(db, tmp, *extra, port=port, program=program)
    )
    try:
        proc.wait_ready()
        yield proc
    finally:
        if proc.proc.poll() is None:
            proc.kill()
