"""The PostgreSQL journal as users meet it: URLs, many hosts, fencing, following, errors.

Skipped, with a message saying how to run them, when no test server is configured
(see tests/postgres_support.py); `.ci/run` starts one.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from cli_support import cli
from fleet_support import fleet_of_two_hosts
from http_support import READ, client
from postgres_support import fresh_url, pg_url
from psycopg import sql

from adaptive_runtime import ActionCall, Host, ManualClock, RetryPolicy, Runtime
from adaptive_runtime.errors import (
    AgentOwnedElsewhere,
    ConfigurationError,
    DuplicateEventError,
    InvalidEventError,
    JournalBusyError,
    JournalError,
    JournalUnavailableError,
    JournalVersionError,
)
from adaptive_runtime.journal import Pending
from adaptive_runtime.journal.export import GROUP_ENTRIES
from adaptive_runtime.journal.follow import follow
from adaptive_runtime.journal.open import open_journal
from adaptive_runtime.journal.postgres import KEY_ENV, PostgresJournal, parse_url
from adaptive_runtime.projections import verify_replay
from adaptive_runtime.records import ApprovalPolicy

OVERLOAD = {"type": "service_overload", "severity": 0.82, "cpu": 95, "memory": 80}


def _sql(url: str, statement: str, params: tuple[object, ...] = ()) -> None:
    conninfo, options = parse_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(statement.replace("SCHEMA", options["schema"]), params)


async def test_a_url_opens_it_for_the_host_the_runtime_and_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Host, Runtime and every command take the URL; with the snapshot key shared (as every
    host of one database should have it), each trusts the others' snapshots."""
    monkeypatch.setenv(KEY_ENV, "ab" * 32)
    url = fresh_url()
    async with Host(url, clock=ManualClock()) as host:
        d = await host.agent("svc").process(OVERLOAD)
        assert "restart_service" == d.action
    async with Runtime("svc", journal=url, clock=ManualClock()) as runtime:
        assert 1 == runtime.state.events
        await runtime.record_outcome(d, success=False)
    assert verify_replay(open_journal(url)).ok
    history = cli("history", "--db", url, "--json")
    assert 0 == history.returncode, history.stderr
    assert ["restart_service"] == [row["decision"]["action"] for row in json.loads(history.stdout)]
    verified = cli("verify", "--db", url)
    assert verified.stdout.startswith("OK: 3 entries, hash chain intact, 2 snapshots checked")
    assert "SQLite" not in verified.stdout
    assert "password" not in cli("head", "--db", url + "&nothing=1").stderr


async def test_commit_on_caller_on_postgresql_is_said_to_be_not_taken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Runtime(commit_on_caller=True) on a PostgreSQL journal committed off the loop as
    documented, but without a word: an option given was dropped in silence."""
    url = fresh_url()
    with caplog.at_level("WARNING", logger="adaptive_runtime"):
        async with Runtime("svc", journal=url, clock=ManualClock(), commit_on_caller=True) as rt:
            await rt.process(OVERLOAD)
        async with Runtime("svc", journal=url, clock=ManualClock()) as rt:
            await rt.process(OVERLOAD)
    said = [r.getMessage() for r in caplog.records if "commit_on_caller" in r.getMessage()]
    assert [
        "commit_on_caller=True is not taken by a journal on a database server: its commits"
        " stay on the journal's thread, off the event loop"
    ] == said


def test_no_command_prints_the_password_in_the_url() -> None:
    """`plugins` printed the URL as given ("Enabled in postgresql://user:secret@..."), and
    so did the error for an agent with no entries; each now names the server without it."""
    url = fresh_url()
    assert 0 == cli("demo", "--db", url).returncode
    password = urlsplit(url).password
    assert password
    runs = [
        cli(*command, "--db", url)
        for command in (
            ["plugins"],
            ["plugins", "--json"],
            ["stats", "--agent", "nope"],
            ["export", "--agent", "nope"],
            ["history", "--agent", "nope"],
            ["state", "--agent", "nope"],
            ["verify"],
            ["agents"],
        )
    ]
    runs.append(cli("plugins", "--db", url.replace(f":{password}@", ":wrong-one@")))
    for run in runs:
        assert f":{password}@" not in run.stdout + run.stderr, run.args
    assert "Enabled in postgresql://***@" in runs[0].stdout
    assert "agent 'nope' has no entries in postgresql://***@" in runs[2].stderr
    assert "Which are enabled is unknown: " in runs[-1].stdout
    assert "check the user and password in the URL" in runs[-1].stdout


def test_a_url_with_no_host_part_and_its_password_as_a_parameter() -> None:
    """`postgresql:///db?host=...` (a Unix socket's form: no host between the slashes)
    was written back as `postgresql:/db`, which libpq can't read; and a password given
    as `?password=` was printed as it was, where one before the host was masked."""
    given = urlsplit(fresh_url())
    password = given.password
    assert password
    schema = dict(p.split("=", 1) for p in given.query.split("&"))["schema"]
    url = (
        f"postgresql://{given.path}?host={given.hostname}&port={given.port or 5432}"
        f"&user={given.username}&password={password}&schema={schema}"
    )
    runs = [
        cli(*command, "--db", url)
        for command in (["demo"], ["head"], ["plugins"], ["history", "--agent", "nope"])
    ]
    assert [0, 0, 0, 2] == [run.returncode for run in runs], runs[0].stderr
    for run in runs:
        assert f"password={password}" not in run.stdout + run.stderr, run.args
    assert "Enabled in postgresql:///" in runs[2].stdout
    assert "password=***" in runs[2].stdout
    assert runs[1].stdout.startswith("10:")  # the demo's 10 entries, read back through it
    assert parse_url(url)[0].startswith("postgresql:///")


def test_a_url_the_server_can_never_take_is_not_called_a_server_to_retry() -> None:
    """`?sslmode=bogus` (or any value libpq does not take) and an SSL set-up the server
    refuses were "the connection failed ...: the server may be down or restarting: retry",
    exit 3: a follower would wait for ever. A bad value is now a usage error (exit 2), and
    a refused set-up a journal error that says what to check."""
    bad = cli("history", "--db", fresh_url() + "&sslmode=bogus")
    assert 2 == bad.returncode
    assert 'invalid sslmode value: "bogus"); check the URL\'s parameters' in bad.stderr
    with pytest.raises(ConfigurationError, match="value libpq does not take"):
        PostgresJournal(fresh_url() + "&target_session_attrs=nope")
    journal = PostgresJournal(fresh_url())
    try:
        refused = "server does not support SSL, but SSL was required"
        with pytest.raises(JournalError) as caught, journal._translated():
            raise psycopg.OperationalError(refused)
        assert not isinstance(caught.value, JournalUnavailableError)
        assert "check the URL's user, database and sslmode" in str(caught.value)
        with pytest.raises(JournalUnavailableError), journal._translated():
            raise psycopg.OperationalError("server closed the connection unexpectedly")
    finally:
        journal.close()


@pytest.mark.parametrize("key", [None, "ab" * 32])
def test_snapshots_under_a_key_of_the_process_own_are_warned_about_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, key: str | None
) -> None:
    """With no shared key a restart can't trust this process's snapshots: it says so, once."""
    if key is None:
        monkeypatch.delenv(KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(KEY_ENV, key)
    url = fresh_url()
    journal = PostgresJournal(url)
    try:
        [entry] = journal.append([Pending(stream="a", kind="K", ts_ns=1, body=b"x")])
        with caplog.at_level("WARNING", logger="adaptive_runtime.journal"):
            journal.put_snapshot("a", entry.seq, b"s", version="v", ts_ns=1)
            journal.put_snapshot("a", entry.seq, b"t", version="v", ts_ns=2)
    finally:
        journal.close()
    said = [r.getMessage() for r in caplog.records if KEY_ENV in r.getMessage()]
    if key is None:
        assert 1 == len(said)
        assert "a restart, or another host, will not trust them" in said[0]
        assert "@" not in said[0]  # the URL's user and password are left out
    else:
        assert [] == said
    reopened = PostgresJournal(url)
    try:  # what the warning promised: a new process trusts them only under the shared key
        trusted = list(reopened.snapshots("a"))
    finally:
        reopened.close()
    assert (0 if key is None else 2) == len(trusted)


def test_sqlite_exported_then_imported_keeps_the_head(tmp_path: Path) -> None:
    """Migration: export from SQLite, import into PostgreSQL (chain verified), same head."""

    async def write() -> None:
        async with Runtime("a", tmp_path / "j.db", clock=ManualClock()) as runtime:
            for _ in range(5):
                d = await runtime.process(OVERLOAD)
                await runtime.record_outcome(d, success=True)

    asyncio.run(write())
    sqlite_head = cli("head", "--db", str(tmp_path / "j.db")).stdout.strip()
    exported = cli("export", "--db", str(tmp_path / "j.db"), "--out", str(tmp_path / "j.jsonl"))
    assert 0 == exported.returncode, exported.stderr
    url = fresh_url()
    imported = cli("import", str(tmp_path / "j.jsonl"), "--db", url)
    assert 0 == imported.returncode, imported.stderr
    assert f"chain verified. Head: {sqlite_head}" in imported.stdout
    assert sqlite_head == cli("head", "--db", url).stdout.strip()
    again = cli("import", str(tmp_path / "j.jsonl"), "--db", url)
    assert 2 == again.returncode
    assert "already holds a journal" in again.stderr
    bad = tmp_path / "bad.jsonl"
    lines = (tmp_path / "j.jsonl").read_text().splitlines()
    edited = json.loads(lines[3])
    edited["ts_ns"] += 1  # an edit the chain shows: line 4's digest no longer matches
    bad.write_text("\n".join([*lines[:3], json.dumps(edited)]) + "\n")
    other = fresh_url()
    refused = cli("import", str(bad), "--db", other)
    assert 2 == refused.returncode
    assert "line 4" in refused.stderr
    assert 3 == cli("head", "--db", other).returncode  # nothing half-imported is left
    # cut at a line's end, the export is a whole chain, only shorter: the head refuses it
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:3]) + "\n")
    short = cli("import", str(tmp_path / "cut.jsonl"), "--db", other, "--expect-head", sqlite_head)
    assert 2 == short.returncode
    assert "the export was cut short" in short.stderr
    assert 3 == cli("head", "--db", other).returncode


def test_a_journal_imported_into_postgresql_takes_appends(tmp_path: Path) -> None:
    """An import is built in `<schema>_partial` and renamed into place; its append
    functions still named `<schema>_partial`, so the first host on the migrated journal
    failed every append (a missing schema), or, once a refused second import had left an
    empty `<schema>_partial` behind, read that one and was told it held no claim."""
    exported, url, schema = _an_export_and_a_fresh_schema(tmp_path)
    assert 0 == cli("import", str(exported), "--db", url).returncode

    async def carry_on(seq: int) -> None:
        async with Runtime("a", journal=url) as runtime:
            d = await runtime.process(OVERLOAD)
            assert seq == d.seq
            await runtime.record_outcome(d, success=True)

    asyncio.run(carry_on(4))
    again = cli("import", str(exported), "--db", url)
    assert "already holds a journal" in again.stderr
    assert [] == _schemas_like(url, f"{schema}_partial")  # the refused import left nothing
    asyncio.run(carry_on(7))
    foreign = fresh_url()
    other = parse_url(foreign)[1]["schema"]
    with psycopg.connect(parse_url(foreign)[0], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(other)))
        conn.execute(sql.SQL("CREATE TABLE {}.entries (x INT)").format(sql.Identifier(other)))
    refused = cli("import", str(exported), "--db", foreign)
    assert "has tables that are not a journal's" in refused.stderr
    assert [] == _schemas_like(foreign, f"{other}_partial")  # nor does any refused import
    journal = PostgresJournal(url, create=False)
    try:
        assert journal.verify().ok
        assert verify_replay(journal).ok
        assert 8 == journal.head().seq
    finally:
        journal.close()


def test_a_journal_left_naming_another_schema_is_repaired_on_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Journals imported before the fix above are made to work when next opened."""
    url = fresh_url()
    schema = parse_url(url)[1]["schema"]
    built = url.replace(f"schema={schema}", f"schema={schema}_built")
    journal = PostgresJournal(built)
    journal.append([Pending(stream="a", kind="K", ts_ns=0, body=b"first")])
    journal.close()
    with psycopg.connect(parse_url(url)[0], autocommit=True) as conn:  # as an import did
        conn.execute(
            sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                sql.Identifier(f"{schema}_built"), sql.Identifier(schema)
            )
        )
    with caplog.at_level(logging.WARNING, logger="adaptive_runtime.journal"):
        moved = PostgresJournal(url)
    try:
        assert "its append functions named another schema" in caplog.text
        moved.append([Pending(stream="a", kind="K", ts_ns=1, body=b"second")])
        assert [b"first", b"second"] == [e.body for e in moved.read()]
        assert moved.verify().ok
    finally:
        moved.close()


def _an_export_and_a_fresh_schema(tmp_path: Path) -> tuple[Path, str, str]:
    """An export of a journal of one decision, and a URL naming a new schema (and its name)."""

    async def write() -> None:
        async with Runtime("a", tmp_path / "j.db", clock=ManualClock()) as runtime:
            await runtime.process(OVERLOAD)

    asyncio.run(write())
    exported = tmp_path / "j.jsonl"
    assert 0 == cli("export", "--db", str(tmp_path / "j.db"), "--out", str(exported)).returncode
    url = fresh_url()
    return exported, url, parse_url(url)[1]["schema"]


def test_an_import_killed_before_it_finished_does_not_block_the_next(tmp_path: Path) -> None:
    """kill -9 mid-import left `<schema>_partial` holding entries; the next import into the
    same schema said 'import needs an empty journal' (and only the one after it worked)."""

    exported, url, schema = _an_export_and_a_fresh_schema(tmp_path)
    left = PostgresJournal(url.replace(f"schema={schema}", f"schema={schema}_partial"))
    left.append([Pending(stream="a", kind="K", ts_ns=0, body=b"half")])  # the killed import's
    left.close()
    imported = cli("import", str(exported), "--db", url)
    assert 0 == imported.returncode, imported.stderr
    assert "Imported 2 entries" in imported.stdout
    assert cli("head", "--db", url).stdout == cli("head", "--db", str(tmp_path / "j.db")).stdout
    assert [] == _schemas_like(url, f"{schema}_partial")


def test_an_import_never_replaces_a_schema_made_while_it_ran(tmp_path: Path) -> None:
    """A host started on the import's schema while the import ran makes the schema anew;
    the import's last step, renaming its schema into place, then failed with psycopg's
    `DuplicateSchema`. It leaves the host's journal as it is and says so. (The import
    reads a pipe here, so that it is still running when the host's journal is made: it
    is given a first group of entries, and the host starts once they are appended.)"""

    async def write() -> None:
        async with Runtime("a", tmp_path / "j.db", clock=ManualClock()) as runtime:
            for _ in range(GROUP_ENTRIES // 128 + 8):  # more entries than a group holds
                await runtime.process_many([OVERLOAD] * 64)

    asyncio.run(write())
    dump = cli("export", "--db", str(tmp_path / "j.db")).stdout.splitlines(keepends=True)
    url = fresh_url()
    schema = parse_url(url)[1]["schema"]
    importing = subprocess.Popen(
        [sys.executable, "-m", "adaptive_runtime", "import", "-", "--db", url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert importing.stdin is not None
    first = GROUP_ENTRIES + 128  # a group, and the batch that follows it
    importing.stdin.write("".join(dump[:first]))
    importing.stdin.flush()
    for _ in range(6000):  # until the first group is in its partial schema (a guard of 60 s)
        if _entries_in(url, f"{schema}_partial") or importing.poll() is not None:
            break
        time.sleep(0.01)
    meanwhile = PostgresJournal(url)
    meanwhile.append([Pending(stream="b", kind="K", ts_ns=1, body=b"journaled meanwhile")])
    meanwhile.close()
    out, err = importing.communicate("".join(dump[first:]), timeout=120)
    assert 3 == importing.returncode, out + err
    assert f"schema {schema} was made while the import ran" in err
    kept = PostgresJournal(url, create=False)
    assert ["b"] == kept.streams()
    kept.close()
    assert [] == _schemas_like(url, f"{schema}_partial")


def test_an_import_started_while_another_runs_into_the_same_schema_is_refused(
    tmp_path: Path,
) -> None:
    """Two imports into one schema shared `<schema>_partial`: each dropped it under the
    other. The second is now refused while the first holds the schema's import lock,
    and leaves the first's partial journal as it is."""

    exported, url, schema = _an_export_and_a_fresh_schema(tmp_path)
    first = PostgresJournal(url, schema=f"{schema}_partial")  # the first import, running
    first.append([Pending(stream="a", kind="K", ts_ns=0, body=b"mid-import")])
    with first.held("import", "held by the test"):
        second = cli("import", str(exported), "--db", url)
        assert 3 == second.returncode, second.stdout + second.stderr
        assert f"another import into schema {schema} is running" in second.stderr
        assert 1 == first.head().seq
    first.close()
    imported = cli("import", str(exported), "--db", url)  # once it is over, it goes ahead
    assert 0 == imported.returncode, imported.stderr
    assert [] == _schemas_like(url, f"{schema}_partial")


def _entries_in(url: str, schema: str) -> int:
    """How many entries a schema's journal holds (0 while it has no journal)."""
    with psycopg.connect(parse_url(url)[0], autocommit=True) as conn:
        try:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.entries").format(sql.Identifier(schema))
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row is not None else 0


def _schemas_like(url: str, name: str) -> list[str]:
    with psycopg.connect(parse_url(url)[0]) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = %s", (name,))
        return [row[0] for row in rows]


async def test_two_hosts_share_one_fleet_budget_and_replay_agrees() -> None:
    """Each host counted only its own agents' decisions against the fleet budget (10
    restarts under a budget of 5), and replay called their gated decisions mismatches."""
    url = fresh_url()
    actions = await fleet_of_two_hosts(url, "full")
    assert 5 == actions.count("restart_service")
    journal = PostgresJournal(url, create=False)
    try:
        assert verify_replay(journal).ok
    finally:
        journal.close()


async def test_a_second_host_is_refused_and_takes_over_when_the_lease_runs_out() -> None:
    """Ownership: the first host claims; the second is refused; once the first's lease
    has run out (made so here in SQL, not by waiting) the second claims with a new epoch,
    and the first host's next append is refused by the fence: nothing of it is journaled."""
    url = fresh_url()
    first = Host(url, clock=ManualClock())
    second = Host(url, clock=ManualClock())
    async with first, second:
        await first.agent("svc").process(OVERLOAD)
        with pytest.raises(AgentOwnedElsewhere, match="is owned by host") as refused:
            await second.agent("svc").process(OVERLOAD)
        assert refused.value.agent == "svc"
        _sql(url, "UPDATE SCHEMA.owners SET lease_until = now() - interval '1 second'")
        d = await second.agent("svc").process(OVERLOAD)  # takes it over: epoch 2
        head = second.journal.head().seq
        with pytest.raises(AgentOwnedElsewhere, match="took agent 'svc' over"):
            await first.agent("svc").process(OVERLOAD)
        assert head == first.journal.head().seq
        assert d.seq == head
    report = verify_replay(open_journal(url))
    assert (True, 2) == (report.ok, report.decisions)


async def test_a_host_starting_beside_an_owner_reads_its_agents_rules_before_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A second host sharing the journal looked only at the rules of the agents it
    claimed at start: a handler for an action that only the other host's agent's custom
    rule decides was warned of as one that never runs, and this host may take that agent
    over. A name no agent's rules decide is still warned of."""
    url = fresh_url()
    drain = {"context": "resource_pressure", "action": "drain_node", "reason": "drain"}
    async with Host(url, clock=ManualClock(), rules=[drain]) as first:
        await first.agent("svc").process(OVERLOAD)
        second = Host(url, clock=ManualClock())

        @second.action("drain_node")
        async def drain_it(call: ActionCall) -> None: ...

        @second.action("isolate_componet")
        async def isolate(call: ActionCall) -> None: ...

        caplog.set_level("WARNING", logger="adaptive_runtime")
        async with second:
            assert "svc" not in second.loaded_agents()
    told = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [] == [t for t in told if "drain_node" in t]
    assert 1 == sum("'isolate_componet', which no rule decides" in t for t in told)


async def test_stopping_releases_claims_for_the_next_host_at_once() -> None:
    url = fresh_url()
    async with Host(url, clock=ManualClock()) as host:
        await host.agent("svc").process(OVERLOAD)
        journal = host.journal
        assert isinstance(journal, PostgresJournal)
        assert ["svc"] == list(journal.claims())
    async with Host(url, clock=ManualClock()) as host:
        await host.agent("svc").process(OVERLOAD)  # no wait for a lease
        journal = host.journal
        assert isinstance(journal, PostgresJournal)
        owner = journal.owner_of("svc")
        assert owner is not None
        assert (journal.owner, 2) == owner[:2]


def _lease_until(url: str, agent: str) -> Any:
    conninfo, options = parse_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT lease_until FROM {options['schema']}.owners WHERE agent = %s", (agent,)
        ).fetchone()
    return None if row is None else row[0]


async def test_a_stopping_host_takes_no_agent_over() -> None:
    """A host whose lease sweep took over an agent of a dead host while it was stopping
    resumed that agent's action after stop() had waited for the actions, then closed
    with it unfinished (seen once in the fleet kill loop). Stopping, it keeps renewing
    the leases it holds until it is done, and takes nothing new on."""
    url = fresh_url() + "&lease=0.5"
    host = Host(url, clock=ManualClock())
    release = asyncio.Event()

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        await release.wait()

    dead = PostgresJournal(url, owner="a-dead-host")
    stopping: asyncio.Task[None] | None = None
    try:
        await host.start()
        await host.agent("busy").process(OVERLOAD)  # its action runs until released
        dead.claim("orphan")
        stopping = asyncio.create_task(host.stop())  # it waits for the action
        await asyncio.sleep(0)
        _sql(
            url,
            "UPDATE SCHEMA.owners SET lease_until = now() - interval '1 second'"
            " WHERE agent = 'orphan'",
        )
        # two renewals of the host's own lease after that: each sweep renews, then looks
        # for orphans, so the first one's look has ended by the second's renewal
        seen = [_lease_until(url, "busy")]
        for _ in range(400):
            if len(set(seen)) >= 3:
                break
            await asyncio.sleep(0.025)
            seen.append(_lease_until(url, "busy"))
        assert len(set(seen)) >= 3, "the host renewed its lease fewer than twice"
        assert not stopping.done()
        owner = dead.owner_of("orphan")
        assert owner is not None
        assert "a-dead-host" == owner[0]
    finally:
        release.set()
        if stopping is not None:
            await stopping
        dead.close()


def test_a_follower_sees_every_seq_once_in_order_while_four_writers_append() -> None:
    url = fresh_url()
    writers = [PostgresJournal(url, durability="normal") for _ in range(4)]
    reader = PostgresJournal(url)
    per_writer = 60
    done = threading.Event()
    seen: list[int] = []

    def write(index: int) -> None:
        journal = writers[index]
        for i in range(per_writer):
            journal.append([Pending(stream=f"w{index}", kind="K", ts_ns=i, body=b"x")])

    def read() -> None:
        for entry in follow(reader, poll=0.05, stop=done.is_set):
            seen.append(entry.seq)
            if len(seen) == 4 * per_writer:
                return

    follower = threading.Thread(target=read)
    follower.start()
    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    follower.join(timeout=30)
    done.set()
    assert list(range(1, 4 * per_writer + 1)) == seen
    for journal in (*writers, reader):
        journal.close()


def test_bad_states_are_typed_errors_that_say_what_to_do() -> None:
    base = pg_url()
    conninfo, _ = parse_url(base)
    wrong = conninfo.replace("://", "://nobody_here:wrong@", 1) if "@" not in conninfo else None
    if wrong is None:
        user_part, rest = conninfo.split("://", 1)[1].split("@", 1)
        wrong = f"postgresql://{user_part.split(':')[0]}:not-the-password@{rest}"
    with pytest.raises(JournalError, match="check the user and password"):
        PostgresJournal(wrong)
    with pytest.raises(JournalUnavailableError, match="server may be down"):
        PostgresJournal("postgresql://127.0.0.1:1/none?connect_timeout_s=1")
    # a host name no one knows (`.invalid` never resolves): said so, not "may be restarting"
    with pytest.raises(JournalUnavailableError, match="check the host in the URL"):
        PostgresJournal("postgresql://no-such-host.invalid/none?connect_timeout_s=1")
    # not "the server may be down: retry", which would never help
    no_db = urlsplit(conninfo)._replace(path="/no_such_database_here").geturl()
    with pytest.raises(JournalError, match=r'database "no_such_database_here" does not exist on'):
        PostgresJournal(no_db)
    url = fresh_url()
    PostgresJournal(url).close()
    _sql(url, "UPDATE SCHEMA.meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(JournalVersionError, match="newer Adaptive Runtime"):
        PostgresJournal(url)
    busy = PostgresJournal(fresh_url() + "&pool_size=1&connect_timeout_s=0.5")
    pool = busy._pool
    assert pool is not None
    with pool.connection(), pytest.raises(JournalBusyError, match="pool_size"):
        busy.head()
    busy.close()


@pytest.mark.parametrize(
    "dropped", ["schema SCHEMA CASCADE", "TABLE SCHEMA.entries CASCADE", "TABLE SCHEMA.owners"]
)
async def test_a_journal_dropped_while_open_says_so_and_what_to_do(dropped: str) -> None:
    """A schema or table dropped under a running host (an operator's slip) was a bare
    `UndefinedTable: relation "x.entries" does not exist LINE 1: ...`: it now says the
    journal is no longer whole and what to do; not "unavailable", which would be retried."""
    url = fresh_url()
    async with Host(url, durability="normal", clock=ManualClock()) as host:
        await host.process(OVERLOAD)
        _sql(url, f"DROP {dropped}")  # SCHEMA: the test's schema
        with pytest.raises(JournalError, match="is no longer whole") as raised:
            await host.agent("another").process(OVERLOAD)
        assert not isinstance(raised.value, JournalUnavailableError)
        assert "Restore it from a backup or an export" in str(raised.value)
        assert "LINE 1" not in str(raised.value)


@pytest.mark.parametrize(
    ("schema", "wrong"),
    [
        ("x;drop", "letters, digits, _"),
        ("9lives", "not starting with a digit"),
        ("a" * 64, "at most 63"),
    ],
)
def test_a_schema_name_that_cant_be_an_identifier_is_refused_before_connecting(
    schema: str, wrong: str
) -> None:
    """The schema is an identifier in the SQL, so it can't be a bound parameter: a name
    outside the rule is a ConfigurationError that states the whole rule (a 64-character
    name was told only to be lower-case)."""
    with pytest.raises(ConfigurationError, match=wrong):
        PostgresJournal(f"postgresql://127.0.0.1:1/none?schema={schema}")


def test_user_strings_are_bound_parameters() -> None:
    """Hostile stream names, kinds and event ids are stored as given, never run."""
    journal = PostgresJournal(fresh_url(), durability="normal")
    nasty = "x'); DROP TABLE entries; --"
    journal.append([Pending(stream=nasty, kind=nasty, ts_ns=1, body=b"b", event_id=nasty)])
    found = journal.by_event_id(nasty)
    assert found is not None
    assert (nasty, nasty) == (found.stream, found.kind)
    assert [nasty] == journal.streams()
    assert journal.verify().ok
    journal.close()


async def test_a_nul_in_an_id_is_bad_input_not_a_server_error() -> None:
    """PostgreSQL's text holds no NUL: an agent id, event id, outcome id or owner name with
    one is refused as bad input, with nothing journaled, as on SQLite; a read by one finds
    nothing. (It was a JournalError quoting psycopg's DataError, which marks the journal
    unusable: the HTTP API answered a read by such an agent 503.)"""
    url = fresh_url()
    with pytest.raises(ConfigurationError, match="NUL"):
        Runtime(agent_id="web\x00", journal=url)
    with pytest.raises(ConfigurationError, match="NUL"):
        PostgresJournal(url, owner="host\x00")
    with pytest.raises(ConfigurationError, match="owner must be a string of 1 to 256"):
        PostgresJournal(url, owner="")
    with pytest.raises(ConfigurationError, match="owner must be a string of 1 to 256"):
        PostgresJournal(url + "&owner=")  # in the URL, checked the same
    with pytest.raises(ConfigurationError, match=r"characters, not all blank, not '\\n'"):
        PostgresJournal(url + "&owner=%0a")
    async with Runtime(agent_id="web", journal=url, clock=ManualClock()) as runtime:
        d = await runtime.process(OVERLOAD)
        with pytest.raises(InvalidEventError, match="NUL") as caught:
            await runtime.process({**OVERLOAD, "id": "evt\x00"})
        assert "id" == caught.value.field
        with pytest.raises(InvalidEventError, match="NUL"):
            await runtime.record_outcome(d, success=True, id="o\x00")
        with pytest.raises(ConfigurationError, match="NUL"):
            runtime.host.agent("a\x00b")
        journal = runtime.journal
        assert 2 == journal.head().seq
        assert (0, [], None) == (
            journal.stream_head("web\x00"),
            list(journal.read("web\x00")),
            journal.by_event_id("evt\x00"),
        )
        assert None is journal.owner_of("web\x00")  # type: ignore[attr-defined]
        assert 4 == (await runtime.process(OVERLOAD)).seq  # the agent carries on
    journal = open_journal(url)
    try:
        assert verify_replay(journal).ok
    finally:
        journal.close()


async def test_what_operators_ask_of_an_evicted_agent_is_carried_out() -> None:
    """An agent evicted past max_loaded_agents stays claimed by its host, but the host
    counted as its own only the agents it had loaded: an approval answered (or a dead
    letter retried) for an evicted agent was taken, and never carried out, by this host
    or any other, even once the agent was loaded again."""
    host = Host(
        fresh_url(),
        clock=ManualClock(),
        max_loaded_agents=1,
        approvals=ApprovalPolicy(actions=("restart_service",)),
    )
    ran: list[tuple[str, int]] = []
    failing = {"now": True}

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        ran.append((call.key.rsplit(":", 1)[0], call.decision.seq))

    @host.action("cache_warmup", retry=RetryPolicy(max_attempts=1))
    async def warm(call: ActionCall) -> None:
        if failing["now"]:
            raise ConnectionError("the cache does not answer")
        ran.append((call.key.rsplit(":", 1)[0], call.decision.seq))

    async with host:
        gated = await host.agent("a").process(OVERLOAD)
        dead = await host.agent("b").process({"type": "timeout", "severity": 0.3})
        assert "cache_warmup" == dead.action
        await host.wait_for_actions()
        other = await host.agent("c").process({"type": "anomaly_detected", "severity": 0.1})
        assert other.action not in ("restart_service", "cache_warmup")
        assert ["c"] == host.loaded_agents()  # a and b evicted, their claims kept
        assert ["c"] == host.loaded_agents()
        failing["now"] = False
        await host.controls.answer(gated.seq, approve=True, by="alice")
        await host.controls.retry(dead.seq, by="bob")
        await host.wait_for_actions()
        assert sorted([("a", gated.seq), ("b", dead.seq)]) == sorted(ran)


async def test_an_action_of_an_agent_taken_over_mid_run_stops_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler that returned after another host took its agent over (this one paused
    past its lease): its success can't be journaled, fenced. The task ended with the
    refusal unretrieved ("Task exception was never retrieved", an asyncio ERROR with a
    traceback); it now stops with a warning, leaving the action to the new owner."""
    url = fresh_url()
    gate = asyncio.Event()
    host = Host(url, clock=ManualClock())

    @host.action("restart_service")
    async def restart(call: ActionCall) -> None:
        await gate.wait()

    async with host:
        d = await host.agent("web").process(OVERLOAD)
        _sql(  # what a host taking the agent over does to its row of owners
            url,
            "UPDATE SCHEMA.owners SET host = 'other', epoch = epoch + 1,"
            " lease_until = clock_timestamp() + interval '60 s' WHERE agent = 'web'",
        )
        gate.set()
        await host.wait_for_actions()
    gc.collect()  # an unretrieved task exception is reported when its task is collected
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [m for m in said if "never retrieved" in m]
    assert any(f"the action of decision {d.seq} of agent web stops here" in m for m in said)


def test_a_claim_voided_by_an_append_is_reported_lost_and_named_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An append that finds its claim taken over reports the agent lost at the next renew()
    that succeeds (for the host to unload it; it used to stay loaded, never taken back).
    Two journals under one owner name are told that they share it."""
    url = fresh_url()
    first, second = PostgresJournal(url, owner="api"), PostgresJournal(url, owner="api")
    try:
        first.claim("x")
        first.claim("y")
        first.append([Pending(stream="x", kind="K", ts_ns=1, body=b"a")])
        second.claim("x")  # the same name: taken as the host restarted, at once
        with pytest.raises(AgentOwnedElsewhere, match="another host under this host's own name"):
            first.append([Pending(stream="x", kind="K", ts_ns=2, body=b"b")])
        with monkeypatch.context() as away:  # the server away at the next renewal
            away.setattr(first, "_connection", _raises(JournalUnavailableError("away")))
            with pytest.raises(JournalUnavailableError):
                first.renew()
        assert (["y"], ["x"], []) == (list(first.claims()), first.renew(), first.renew())
        with pytest.raises(AgentOwnedElsewhere, match="send its events there"):
            first.append([Pending(stream="x", kind="K", ts_ns=3, body=b"c")])
        assert 1 == first.head().seq
    finally:
        first.close()
        second.close()


def _raises(exc: Exception) -> Any:
    def raising(*args: object, **kwargs: object) -> Any:
        raise exc

    return raising


async def test_the_http_api_reads_an_agent_named_with_a_nul_as_an_unknown_one() -> None:
    """A 404, as on SQLite, for its state and its decisions; it was 503, "journal unusable"."""
    said = "agent 'a\\x00b' has no entries; GET /v1/agents lists the agents"
    async with client(Host(fresh_url(), clock=ManualClock())) as c:
        r = await c.get("/v1/agents/a%00b/state", headers=READ)
        assert (404, said) == (r.status_code, r.json()["detail"])
        r = await c.get("/v1/decisions", params={"agent": "a\x00b"}, headers=READ)
        assert (404, said) == (r.status_code, r.json()["detail"])


async def test_an_outcome_with_an_id_is_journaled_once_across_hosts() -> None:
    """A retried outcome lands on the agent's next owner: it is journaled once all the same."""
    url = fresh_url()
    async with Host(url, clock=ManualClock()) as host:
        d = await host.agent("svc").process(OVERLOAD)
        assert await host.agent("svc").record_outcome(d, success=True, id="o-1")
    async with Host(url, clock=ManualClock()) as host:
        agent = host.agent("svc")
        assert not await agent.record_outcome(d, success=True, id="o-1")
        with pytest.raises(DuplicateEventError):
            await agent.record_outcome(d, success=False, id="o-1")
        assert 1 == (await agent.load()).outcomes
        assert 3 == host.journal.head().seq


def test_an_event_id_is_journaled_once_across_hosts() -> None:
    """Two hosts' journals append the same batch: the second gets the first's entries back,
    on the fast path (each knows its head) and the full path alike."""
    url = fresh_url()
    first, second = PostgresJournal(url), PostgresJournal(url)
    batch = [Pending(stream="s", kind="EventReceived", ts_ns=1, body=b"e", event_id="evt-1")]
    original = first.append(batch)
    first.append([Pending(stream="s", kind="K", ts_ns=2, body=b"x")])  # first knows its head
    assert original == second.append(batch)  # second: full path (its head is unknown)
    assert original == first.append(batch)  # first: the fast path sees the id and falls back
    assert 2 == first.head().seq
    for journal in (first, second):
        journal.close()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_journal_opened_before_a_fork_is_refused_in_the_child_which_opens_its_own() -> None:
    """A child forked after a PostgresJournal was opened used the parent's pooled
    connections, whose sockets the two processes then shared (libpq forbids it), and
    closing it there released the parent's claims. The child is now told so at once,
    closing it there touches nothing of the parent's, and a journal the child opens
    itself works."""
    import os
    import signal

    from adaptive_runtime.errors import JournalClosedError

    url = fresh_url()
    parent = PostgresJournal(url)
    try:
        assert 1 == parent.claim("held-by-parent")
        parent.append([Pending(stream="held-by-parent", kind="K", ts_ns=0, body=b"p")])
        pid = os.fork()
        if pid == 0:  # the child: exit 0 only if all of it held
            signal.alarm(60)  # a hang ends the child (SIGALRM): a failure, not a wait
            try:
                try:
                    parent.append([Pending(stream="child", kind="K", ts_ns=0, body=b"c")])
                    os._exit(2)
                except JournalClosedError as exc:
                    if "is a fork of it" not in str(exc):
                        os._exit(3)
                parent.close()  # the parent's: must leave its sessions and claims alone
                own = PostgresJournal(url)
                own.append([Pending(stream="child", kind="K", ts_ns=0, body=b"c")])
                own.close()
                os._exit(0)
            except BaseException:
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        assert 0 == os.waitstatus_to_exitcode(status)
        assert [] == parent.renew()  # its claim is still its own
        assert {"held-by-parent": 1} == parent.claims()
        parent.append([Pending(stream="held-by-parent", kind="K", ts_ns=1, body=b"p")])
        assert ["held-by-parent", "child", "held-by-parent"] == [e.stream for e in parent.read()]
        assert parent.verify().ok
    finally:
        parent.close()
