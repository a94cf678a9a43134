"""`adaptive-runtime serve` as a real process: SIGTERM exits 0, kill -9 loses nothing
acknowledged, a live stream hears commits, and bad start-ups are clear errors."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import httpx
import pytest
from cli_support import cli
from http_support import READ, READER, WRITE, WRITER, free_port, server

from adaptive_runtime.errors import ConfigurationError
from adaptive_runtime.journal import SqliteJournal
from adaptive_runtime.projections.audit import decision_for_event
from adaptive_runtime.projections.replay import verify_replay
from adaptive_runtime.service.auth import ENV_TOKENS, Tokens

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 94, "memory": 88}


def test_sigterm_drains_snapshots_and_exits_0_with_a_stream_open(tmp_path: Path) -> None:
    db = tmp_path / "serve.db"
    with server(db, tmp_path) as srv:
        decided = []
        for i in range(5):
            event = {**OVERLOAD, "id": f"evt-{i}", "agent_id": f"web-{i % 2}"}
            r = httpx.post(srv.url + "/v1/events", json=event, headers=WRITE, timeout=10)
            assert 200 == r.status_code
            decided.append(r.json())
        opened = threading.Event()
        received: list[str] = []

        def listen() -> None:
            with httpx.stream(
                "GET", srv.url + "/v1/stream?after=0", headers=READ, timeout=30
            ) as response:
                opened.set()
                received.extend(response.iter_lines())

        listener = threading.Thread(target=listen)
        listener.start()
        assert opened.wait(10)
        assert 0 == srv.terminate()
        listener.join(10)
        assert not listener.is_alive(), "the stream did not end at shutdown"
        log = srv.output()
    assert [f"id: {d['seq']}" for d in decided] == [
        line for line in received if line.startswith("id: ")
    ]
    assert WRITER not in log
    journal = SqliteJournal(db, create=False)
    try:
        assert verify_replay(journal).ok
        assert {"web-0", "web-1"} == {s.stream for s in _snapshots(journal, ["web-0", "web-1"])}
    finally:
        journal.close()


def _snapshots(journal: SqliteJournal, streams: list[str]) -> list[object]:
    return [next(iter(journal.snapshots(s))) for s in streams]


def test_kill_9_loses_no_acknowledged_event_and_a_retry_after_restart_is_idempotent(
    tmp_path: Path,
) -> None:
    db = tmp_path / "serve.db"
    acknowledged: dict[str, dict[str, object]] = {}
    with server(db, tmp_path) as srv:
        for i in range(40):
            event = {**OVERLOAD, "id": f"evt-{i}", "agent_id": f"svc-{i % 4}"}
            r = httpx.post(srv.url + "/v1/events", json=event, headers=WRITE, timeout=10)
            assert 200 == r.status_code
            acknowledged[f"evt-{i}"] = r.json()
        srv.kill()
    journal = SqliteJournal(db, create=False)
    try:
        for event_id, decision in acknowledged.items():
            item = decision_for_event(journal, event_id)
            assert item is not None, event_id
            assert (decision["seq"], decision["action"]) == (item.seq, item.decision.action)
        assert verify_replay(journal).ok
        head = journal.head().seq
    finally:
        journal.close()
    with server(db, tmp_path) as srv:
        again = httpx.post(
            srv.url + "/v1/events",
            json={**OVERLOAD, "id": "evt-7", "agent_id": "svc-3"},
            headers=WRITE,
            timeout=10,
        )
        assert acknowledged["evt-7"] == again.json()
        assert head == httpx.get(srv.url + "/readyz", timeout=10).json()["seq"]
        assert 0 == srv.terminate()


def test_a_following_stream_hears_each_commit_once(tmp_path: Path) -> None:
    with server(tmp_path / "serve.db", tmp_path) as srv:
        seen: list[int] = []
        with httpx.stream("GET", srv.url + "/v1/stream", headers=READ, timeout=30) as response:
            for i in range(3):
                event = {**OVERLOAD, "agent_id": f"a{i}"}
                httpx.post(srv.url + "/v1/events", json=event, headers=WRITE, timeout=10)
            for line in response.iter_lines():
                if line.startswith("id: "):
                    seen.append(int(line[4:]))
                if len(seen) == 3:
                    break
        assert [2, 4, 6] == seen
        assert 0 == srv.terminate()


def test_serve_without_tokens_is_refused_and_insecure_says_so(tmp_path: Path) -> None:
    env = {"ADAPTIVE_RUNTIME_TOKENS": ""}
    refused = cli("serve", "--db", str(tmp_path / "x.db"), env=env)
    assert 2 == refused.returncode
    assert "serve needs tokens" in refused.stderr
    assert not (tmp_path / "x.db").exists()
    port = free_port()
    with serving(
        "--db", str(tmp_path / "open.db"), "--insecure-no-auth", "--bind", f"127.0.0.1:{port}",
        env=env,
    ) as said:  # fmt: skip
        assert "WARNING: --insecure-no-auth" in said.readline()


@contextlib.contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[TextIO]:
    """`serve` in a process of its own, for its standard error to be read as it goes;
    at the end, SIGTERM, which it must answer by exiting with 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "adaptive_runtime", "serve", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stderr is not None
    try:
        yield proc.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        proc.stderr.close()
    assert 0 == code


def test_serve_on_port_0_names_the_port_it_listens_on_and_what_the_journal_held(
    tmp_path: Path,
) -> None:
    """--bind HOST:0 lets the system choose a port: the start-up line names the port
    chosen (it said :0, where nothing listens), and it is printed once listening. It says
    what the journal held: a mistyped --db served a new, empty journal without a word."""
    tokens = tmp_path / "t.txt"
    tokens.write_text(f"read,write {WRITER}\n")
    tokens.chmod(0o600)  # else a warning of it comes first
    with serving(
        "--db", str(tmp_path / "j.db"), "--tokens", str(tokens), "--bind", "127.0.0.1:0",
        "--log-level", "warning",
    ) as said:  # fmt: skip
        line = said.readline()
        found = re.search(r"serving \S+ at http://127\.0\.0\.1:(\d+) ", line)
        assert found is not None, line
        assert line.rstrip().endswith("; a new journal, nothing in it yet"), line  # a typo?
        port = int(found.group(1))
        assert 0 != port
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)  # no retry: it listens
        assert 200 == ready.status_code
        posted = httpx.post(f"http://127.0.0.1:{port}/v1/events", json=OVERLOAD, headers=WRITE)
        assert 200 == posted.status_code
    with serving(
        "--db", str(tmp_path / "j.db"), "--tokens", str(tokens), "--bind", "127.0.0.1:0",
        "--log-level", "warning",
    ) as said:  # fmt: skip
        assert said.readline().rstrip().endswith("; its last entry is seq 2")


def test_serving_a_journal_in_memory_says_it_is_lost_at_stop(tmp_path: Path) -> None:
    """--db memory: served with no word that nothing outlives the server."""
    with server("memory:", tmp_path) as srv:
        r = httpx.post(srv.url + "/v1/events", json=OVERLOAD, headers=WRITE, timeout=10)
        assert 200 == r.status_code
        assert 0 == srv.terminate()
        said = srv.output()
    assert "WARNING: the journal is in memory (--db memory:)" in said
    assert "lost when the server stops" in said


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bind", "8080"], "--bind takes HOST:PORT"),
        (["--bind", "127.0.0.1:\u00b2"], "--bind takes HOST:PORT"),
        # one rule, one message (a negative size was told "a whole number from 0")
        (["--max-body", "-5"], "argument --max-body: must not be negative, not -5"),
        (["--max-body", "1000"], "argument --max-body: must be at least 1024 bytes, not 1000"),
        (["--tokens", "/nonexistent/tokens.txt"], "can't read the token file"),
        (["--insecure-no-auth", "--notify", "nope://s3cret@x"], "URL 1 (nope://...) is not one"),
    ],
)
def test_bad_serve_settings_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = cli("serve", "--db", str(tmp_path / "x.db"), *args)
    assert 2 == result.returncode
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_a_clear_error_and_makes_no_journal(tmp_path: Path) -> None:
    """The journal was opened before the port was bound: a --bind that could not be had
    left a new, empty journal file behind. The port is now bound first."""
    tokens = tmp_path / "t.txt"
    tokens.write_text(f"read,write {WRITER}\n")
    with server(tmp_path / "a.db", tmp_path) as srv:
        taken = cli(
            "serve",
            "--db",
            str(tmp_path / "b.db"),
            "--tokens",
            str(tokens),
            "--bind",
            f"127.0.0.1:{srv.port}",
        )
        assert 2 == taken.returncode
        assert f"could not listen on 127.0.0.1:{srv.port}: Address already in use" in taken.stderr
        assert "Traceback" not in taken.stderr
        assert not (tmp_path / "b.db").exists()
        assert 0 == srv.terminate()


@pytest.mark.parametrize("text", ["", "# the tokens\n\n"])
def test_a_token_file_with_no_token_is_refused_as_such(tmp_path: Path, text: str) -> None:
    """A token file found empty was told "serve needs tokens: --tokens FILE...", as if
    none had been given."""
    tokens = tmp_path / "t.txt"
    tokens.write_text(text)
    result = cli("serve", "--db", str(tmp_path / "x.db"), "--tokens", str(tokens))
    assert 2 == result.returncode
    assert f"the token file {str(tokens)!r} holds no token: write lines of" in result.stderr
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, False), (0o600, False)])
def test_serve_warns_of_a_token_file_every_user_may_read(
    tmp_path: Path, mode: int, warned: bool
) -> None:
    tokens = tmp_path / "t.txt"
    tokens.write_text(f"read,write {WRITER}\n")
    tokens.chmod(mode)
    # a --bind it can't take stops it after the settings are read, before it serves
    result = cli("serve", "--db", str(tmp_path / "x.db"), "--tokens", str(tokens), "--bind", "80")
    assert 2 == result.returncode
    assert "--bind takes HOST:PORT" in result.stderr
    said = f"WARNING: the token file {str(tokens)!r} can be read by every user of this machine"
    assert warned == (f"{said} (mode {mode:04o}); `chmod 600` it" in result.stderr)
    assert WRITER not in result.stderr
    assert "ADAPTIVE_RUNTIME_TOKENS" not in result.stderr


def test_serve_says_the_token_file_is_used_and_the_variable_not(tmp_path: Path) -> None:
    """Given --tokens and ADAPTIVE_RUNTIME_TOKENS, the file is used: a client holding a
    token of the variable's was refused, with no word of why."""
    tokens = tmp_path / "t.txt"
    tokens.write_text(f"read,write {WRITER}\n")
    tokens.chmod(0o600)
    other = {"ADAPTIVE_RUNTIME_TOKENS": "read " + "z" * 32}
    result = cli(
        "serve", "--db", str(tmp_path / "x.db"), "--tokens", str(tokens), "--bind", "80", env=other
    )
    assert 2 == result.returncode
    assert (
        f"note: --tokens {tokens} is used; the tokens in ADAPTIVE_RUNTIME_TOKENS are not"
        in result.stderr
    )
    assert "z" * 32 not in result.stderr


def test_a_token_sent_in_a_url_is_not_written_to_the_request_log(tmp_path: Path) -> None:
    """uvicorn's request line held the whole URL: a token put in it by mistake
    (`?token=...`) went to the log in full, where the 400's problem showed it as ***."""
    with server(tmp_path / "x.db", tmp_path, "--log-level", "info") as srv:
        refused = httpx.get(f"{srv.url}/v1/decisions?token={WRITER}", headers=READ, timeout=10)
        assert 400 == refused.status_code
        assert WRITER not in refused.text
        assert 0 == srv.terminate()
        log = srv.output()
    assert '"GET /v1/decisions?token=*** HTTP/1.1" 400' in log, log
    assert WRITER not in log


def test_a_bad_token_file_line_names_its_number(tmp_path: Path) -> None:
    tokens = tmp_path / "t.txt"
    tokens.write_text(f"# ours\nread,write {WRITER}\nadmin {WRITER}\n")
    result = cli("serve", "--db", str(tmp_path / "x.db"), "--tokens", str(tokens))
    assert 2 == result.returncode
    assert "line 3: scopes are approve, read, write; found admin" in result.stderr
    assert WRITER not in result.stderr


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # the later line would have taken write away, silently
        (f"read,write {WRITER}\nread {WRITER}\n", "line 2: the token of line 1 again"),
        (f"read {WRITER}\x1b[2J\n", "line 1: a token is sent in an HTTP header"),
        (f"read {WRITER}é\n", "line 1: a token is sent in an HTTP header"),
        # the token was echoed as an unknown scope, to stderr and the service's logs
        (f"{WRITER} read,write\n", "line 1: the scopes come first: write 'SCOPES TOKEN'"),
        (
            f"{WRITER} {READER}\n",
            f"line 1: scopes are approve, read, write; found a word of {len(WRITER)} characters"
            " (not shown: it may be a token)",
        ),
        ("wrte,read " + WRITER + "\n", "line 1: scopes are approve, read, write; found wrte"),
    ],
)
def test_a_bad_token_line_is_refused_and_the_token_never_shown(text: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Tokens.parse(text, where="t.txt")
    assert f"t.txt, {says}" in str(caught.value)
    assert WRITER not in str(caught.value)


def test_a_token_in_a_file_may_hold_a_semicolon_which_separates_tokens_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file's token holding `;` was split there as the environment's are: 'a token needs
    at least 16 characters' for a token of 20, or one ending in `;` served without it."""
    token = "abcdefgh;ijklmnopqrst"
    tokens = Tokens.parse(f"read,write {token}\n", where="t.txt")
    assert frozenset({"read", "write"}) == tokens.scopes_of(f"Bearer {token}")
    assert tokens.scopes_of("Bearer abcdefgh") is None
    monkeypatch.setenv(ENV_TOKENS, f"read,write {WRITER}; read {READER}")
    both = Tokens.load()
    assert frozenset({"read", "write"}) == both.scopes_of(f"Bearer {WRITER}")
    assert frozenset({"read"}) == both.scopes_of(f"Bearer {READER}")


def test_a_token_file_an_editor_saved_with_a_bom_serves(tmp_path: Path) -> None:
    """A byte-order mark made line 1's scopes 'found \ufeffread'."""
    tokens = tmp_path / "bom-tokens.txt"  # the helper writes its own tokens.txt
    tokens.write_bytes(b"\xef\xbb\xbf" + f"read,write {WRITER}\n".encode())
    with server(tmp_path / "bom.db", tmp_path, "--tokens", str(tokens)) as srv:
        r = httpx.post(srv.url + "/v1/events", json=OVERLOAD, headers=WRITE, timeout=10)
        assert 200 == r.status_code


def test_on_a_terminal_its_log_is_plain_text(tmp_path: Path) -> None:
    """The command line writes control characters as escapes (a request can carry any),
    so uvicorn's colours, on a terminal, printed as `\\u001b[32mINFO`: its lines are plain."""
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"read,write {WRITER}\n")
    command = [sys.executable, "-m", "adaptive_runtime", "serve", "--db", str(tmp_path / "t.db")]
    command += ["--tokens", str(tokens), "--bind", f"127.0.0.1:{free_port()}"]
    leader, follower = pty.openpty()
    proc = subprocess.Popen(command, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 30  # a real process: it starts when it starts
    try:
        while b"adaptive-runtime: serving" not in seen:
            ready, _, _ = select.select([leader], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no start-up line in 30 s: {seen!r}"
            seen += os.read(leader, 4096)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        os.close(leader)
    text = seen.decode()
    assert "INFO:     Started server process [" in text  # uvicorn's own line, plain
    assert "\\u001b" not in text
    assert "\x1b" not in text
