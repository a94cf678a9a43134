"""`adaptive-runtime serve`: the HTTP service under uvicorn, with a shutdown that exits 0.

The host starts before the server listens, so a journal that can't be used fails the
command with its own error and exit code. On SIGTERM (or Ctrl-C) the server stops
accepting, ends the live streams, drains requests in flight, stops the host (actions
finished or interrupted, as configured; every loaded agent snapshotted) and returns 0.
uvicorn's own `serve` re-raises the signal after its graceful shutdown, which would end
the process with -15; this server handles the signal and does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Generator, Sequence
from types import FrameType
from typing import NamedTuple

import uvicorn

from ..errors import ConfigurationError
from ..journal.base import Journal
from ..journal.open import describe, is_memory
from ..observability.logs import enable_console_logging
from ..outcomes import EXIT_OK
from ..runtime.host import Host
from .app import ServiceConfig, create_app, scrub
from .auth import ENV_TOKENS

__all__ = ["parse_bind", "serve"]

log = logging.getLogger("adaptive_runtime.service")
DEFAULT_BIND = "127.0.0.1:8080"


def parse_bind(text: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:8080`) as (host, port)."""
    host, sep, port_text = text.rpartition(":")
    digits = port_text.isascii() and port_text.isdigit()  # isdigit() alone takes '²'
    if not sep or not host or not digits or not 0 <= int(port_text) <= 65535:
        msg = f"--bind takes HOST:PORT, e.g. {DEFAULT_BIND} or [::1]:8080, not {text!r}"
        raise ConfigurationError(msg)
    return host.strip("[]"), int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(uvicorn.Server):
    """uvicorn's server, with signals that end it gracefully and are not raised again."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_signal: Callable[[], None],
        on_listening: Callable[[int], None],
    ) -> None:
        super().__init__(config)
        self._on_signal = on_signal
        self._on_listening = on_listening
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        await self._serve(sockets)  # the signals are handled by `signals()`, around start-up too

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # listening: with --bind HOST:0, on the port the system chose
            self._on_listening(self.servers[0].sockets[0].getsockname()[1])

    @contextlib.contextmanager
    def signals(self) -> Generator[None, None, None]:
        """SIGTERM and SIGINT end the server gracefully from here on (start-up included)."""
        self._loop = asyncio.get_running_loop()
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for connections
        self.should_exit = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_signal)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def serve(
    db: str | os.PathLike[str],
    *,
    bind: str = DEFAULT_BIND,
    config: ServiceConfig,
    plugins: Sequence[str] | None = None,
    rules: str | os.PathLike[str] | None = None,
    durability: str = "full",
    log_level: str = "info",
    dry_run: bool = False,
) -> int:
    """Serve the journal at `db` until SIGTERM or Ctrl-C; return the exit code (0)."""
    host_name, port = parse_bind(bind)
    if not config.tokens and not config.insecure_no_auth:
        msg = (
            f"serve needs tokens: --tokens FILE, or {ENV_TOKENS} (lines of 'SCOPES TOKEN', e.g."
            " 'read,write <token>'); or --insecure-no-auth to let anyone who can reach --bind"
            " write events"
        )
        raise ConfigurationError(msg)
    if durability not in ("full", "normal"):
        raise ConfigurationError(f"durability must be 'full' or 'normal', not {durability!r}")
    host = Host(
        db,
        plugins=plugins,
        rules=rules,
        durability="full" if durability == "full" else "normal",
        dry_run=dry_run,
    )
    served = _Served(host_name, port, describe(db), in_memory=is_memory(db))
    return asyncio.run(_serve(host, served, config, log_level))


class _Served(NamedTuple):
    """What `serve` serves, and where: for its start-up lines and its errors."""

    host_name: str
    port: int
    where: str
    """The journal, as the start-up line names it (a password masked)."""
    in_memory: bool


async def _serve(host: Host, served: _Served, config: ServiceConfig, log_level: str) -> int:
    app = create_app(host, config)
    uv_config = uvicorn.Config(
        app,
        host=served.host_name,
        port=served.port,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
        # the command line escapes control characters (a request's path can hold any), so
        # uvicorn's colours would print as escapes: its lines stay plain
        use_colors=False,
    )
    found: list[int] = []  # the journal's head at start, for the start-up line
    server = _Server(
        uv_config,
        on_signal=app.state.feed.close,
        on_listening=lambda port: _say_serving(served, port, found),
    )
    # requests are uvicorn's to log; the runtime's own lines: warnings, and at debug every
    # decision's engine lines too (one per engine per event: too many for a busy server)
    enable_console_logging(logging.INFO if log_level == "debug" else logging.WARNING)
    with server.signals(), _scrubbed_request_lines(config.tokens.secrets):
        # bound before the journal is opened: a --bind that can't be had leaves no new file
        listener = _bound(served)
        _warn(config, served)
        try:
            await host.start()  # a journal that can't be used fails here, with its own error
            found.append(await host.read(_head_seq))
            if server.should_exit:  # SIGTERM during start-up: stop as cleanly as after it
                await host.stop(actions=config.on_stop)
                return EXIT_OK
            return await _run(server, host, served, config, listener)
        finally:
            listener.close()  # uvicorn closes it at its shutdown; this covers a failed start


@contextlib.contextmanager
def _scrubbed_request_lines(secrets: tuple[str, ...]) -> Generator[None, None, None]:
    """Take the server's tokens (and URL passwords) out of uvicorn's request lines: a token
    sent in a URL by mistake (`?token=...`) was written to the log in full, where every
    response's problem already showed it as ***."""

    def scrubbed(record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                scrub(arg, secrets) if isinstance(arg, str) else arg for arg in record.args
            )
        return True

    access = logging.getLogger("uvicorn.access")
    access.addFilter(scrubbed)
    try:
        yield
    finally:
        access.removeFilter(scrubbed)


def _bound(served: _Served) -> socket.socket:
    """A socket bound to --bind, as uvicorn would bind it, not yet listening."""
    family = socket.AF_INET6 if ":" in served.host_name else socket.AF_INET
    sock = socket.socket(family=family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((served.host_name, served.port))
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        msg = f"could not listen on {served.host_name}:{served.port}: {why}; choose another --bind"
        raise ConfigurationError(msg) from None
    return sock


def _head_seq(journal: Journal) -> int:
    return journal.head().seq


def _say_serving(served: _Served, port: int, found: list[int]) -> None:
    """The start-up line, once the server listens: where, and what the journal held (a
    mistyped --db shows as a journal with nothing in it)."""
    held = (
        ""
        if served.in_memory or not found
        else "; a new journal, nothing in it yet"
        if found[0] == 0
        else f"; its last entry is seq {found[0]}"
    )
    print(
        f"adaptive-runtime: serving {served.where} at"
        f" http://{_url_host(served.host_name)}:{port}"
        f" (dashboard /, API /v1, metrics /metrics, OpenAPI /openapi.json){held}",
        file=sys.stderr,
        flush=True,
    )


async def _run(
    server: _Server, host: Host, served: _Served, config: ServiceConfig, listener: socket.socket
) -> int:
    where = f"{served.host_name}:{served.port}"
    try:
        await server.serve(sockets=[listener])
    except SystemExit:  # uvicorn exits when it can't start; say it as this command's error
        msg = f"could not serve on {where} (see the log above)"
        raise ConfigurationError(msg) from None
    finally:
        if host.started:  # the lifespan's shutdown did not run (the server failed to start)
            await host.stop(actions=config.on_stop)
    if not server.started:
        raise ConfigurationError(f"could not serve on {where} (see the log above)")
    return EXIT_OK


def _warn(config: ServiceConfig, served: _Served) -> None:
    """Say loudly what is open, or lost: printed once SIGTERM is handled, so it is safe to send."""
    if config.insecure_no_auth:
        print(
            "adaptive-runtime: WARNING: --insecure-no-auth: every route, writes included, is open"
            f" to anyone who can reach {served.host_name}:{served.port}. Use --tokens outside a"
            " test.",
            file=sys.stderr,
            flush=True,
        )
    if not is_loopback(served.host_name):
        print(
            f"adaptive-runtime: listening on {served.host_name}, not only loopback (as --bind"
            " asks)",
            file=sys.stderr,
            flush=True,
        )
    if served.in_memory:
        print(
            "adaptive-runtime: WARNING: the journal is in memory (--db memory:): every event,"
            " decision and action is lost when the server stops. Give --db a file or a"
            " postgresql:// URL to keep them.",
            file=sys.stderr,
            flush=True,
        )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
