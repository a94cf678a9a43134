"""The PostgreSQL journal: the same contract as SQLite, for many hosts on one database.

Only this module imports psycopg (the `postgres` extra); `import adaptive_runtime`
never does. The tables live in one schema (`adaptive_runtime` unless the URL says
`?schema=NAME`): `entries`, `snapshots`, `owners` and `meta`.

**Order.** Every append transaction first takes a transaction-level advisory lock (one
key per schema) and holds it until it commits. So appends run one at a time across all
hosts: the next one reads the head the last one committed, seqs are gapless, and seq
order is commit order. A reader that follows by seq can never pass an entry that
commits late, because no entry with a lower seq is still in flight. The cost is that
appends do not overlap: throughput is one commit at a time, which each host's group
commit (many batches per transaction) spreads over many events. The lock is an
advisory lock rather than `LOCK TABLE`: it blocks nothing but other appends (readers,
snapshots and ownership updates go on), and it is released by PostgreSQL itself when
the transaction ends, however it ends.

**Ownership and fencing.** A host `claim`s an agent before writing its stream: a row of
`owners` with the host's name, an epoch raised by every claim, and a lease kept by
`renew`. Once a journal holds claims, each of its appends checks, in the append's own
transaction, that the claim's epoch is still the one in `owners`; a host that lost its
claim without knowing it (paused, or cut off past its lease) finds another epoch there
and its append is refused with AgentOwnedElsewhere. A claim succeeds when the agent
has no owner, its lease has run out, or the same host name claims it again (a restart).

**Durability.** `full`: a commit returns once PostgreSQL has flushed it
(`synchronous_commit` as the server has it, on by default). `normal`: each append sets
`synchronous_commit = off` for its transaction (a server crash may lose the last
commits, never corrupt). Replicas add what the server's own settings give
(`synchronous_standby_names` with `synchronous_commit = on` or `remote_apply`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

try:
    import psycopg
    import psycopg_pool
    from psycopg import sql
except ImportError as exc:  # pragma: no cover - exercised by an install without the extra
    from ..errors import ConfigurationError

    msg = "PostgreSQL journals need the postgres extra: pip install 'adaptive-runtime[postgres]'"
    raise ConfigurationError(msg) from exc

from .._checks import check_stored_name, storable
from ..errors import (
    AdaptiveRuntimeError,
    AgentOwnedElsewhere,
    ConfigurationError,
    InvalidEventError,
    JournalBusyError,
    JournalClosedError,
    JournalError,
    JournalUnavailableError,
    JournalVersionError,
    NotAJournalError,
)
from ..records import HOST_STREAM, FleetBatch
from . import _chain, _fork
from ._keys import KEY_BYTES, snapshot_mac
from .base import (
    GENESIS_DIGEST,
    Durability,
    Entry,
    Head,
    Pending,
    Snapshot,
    VerifyReport,
    host_name,
)
from .open import describe, hide_passwords

__all__ = [
    "DEFAULT_SCHEMA",
    "SCHEMA_VERSION",
    "PostgresJournal",
    "parse_url",
    "schema_of",
    "with_schema",
]

# psycopg's pool logs each failed connection attempt as a warning; with no logging set
# up, Python would print those on stderr beside the one-line error this module raises.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

SCHEMA_VERSION = 1
PAGE = 512
KEY_ENV = "ADAPTIVE_RUNTIME_SNAPSHOT_KEY"
"""Hex of the snapshot key every host of one database shares (at least 16 bytes)."""
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_OPTIONS = {"schema", "pool_size", "lease", "connect_timeout_s", "owner"}
DEFAULT_SCHEMA = "adaptive_runtime"

_COLUMNS = "seq, stream, stream_seq, kind, ts_ns, event_id, body, batch, digest"


_GONE = (
    psycopg.errors.InvalidSchemaName,
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedFunction,
)
"""What the server says when a part of an open journal's schema is missing."""


def _lock_key(name: str) -> int:
    """An advisory lock's key (a signed 64-bit integer) for a name."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def schema_of(url: str) -> str:
    """The schema a journal URL names (`?schema=`, else the default)."""
    return _schema_name(PostgresJournal.read_url(url)[1].get("schema", DEFAULT_SCHEMA))


def _schema_name(name: str) -> str:
    """A schema name as the journal uses it (an identifier, so never a bound parameter)."""
    if not _SCHEMA_NAME.match(name):
        msg = (
            "schema must be a lower-case SQL name (letters, digits, _; not starting with"
            f" a digit; at most 63 characters), not {name!r}"
        )
        raise ConfigurationError(msg)
    return name


MAX_OWNER_LENGTH = 256


def _owner_name(owner: object) -> str:
    """A host's name as an owner of agents: kept in `owners`, and shown in every refusal."""
    if not isinstance(owner, str) or not owner.strip() or len(owner) > MAX_OWNER_LENGTH:
        msg = f"owner must be a string of 1 to {MAX_OWNER_LENGTH} characters, not all blank"
        raise ConfigurationError(f"{msg}, not {owner!r}"[:400])
    try:
        check_stored_name("owner", owner, MAX_OWNER_LENGTH)
    except InvalidEventError as exc:
        raise ConfigurationError(str(exc)) from None
    return owner


def _ddl(schema: str) -> list[sql.Composed]:
    s = sql.Identifier(schema)
    return [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s),
        sql.SQL(
            """CREATE TABLE {}.entries (
                seq        BIGINT PRIMARY KEY,
                stream     TEXT   NOT NULL,
                stream_seq BIGINT NOT NULL,
                kind       TEXT   NOT NULL,
                ts_ns      BIGINT NOT NULL,
                event_id   TEXT,
                body       BYTEA  NOT NULL,
                batch      BIGINT NOT NULL,
                digest     BYTEA  NOT NULL
            )"""
        ).format(s),
        sql.SQL(
            "CREATE UNIQUE INDEX entries_event_id ON {}.entries (event_id) "
            "WHERE event_id IS NOT NULL"
        ).format(s),
        sql.SQL("CREATE INDEX entries_stream ON {}.entries (stream, seq)").format(s),
        sql.SQL(
            """CREATE FUNCTION {}.append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'journal entries are append-only'; END $$"""
        ).format(s),
        sql.SQL(
            "CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON {}.entries "
            "FOR EACH ROW EXECUTE FUNCTION {}.append_only()"
        ).format(s, s),
        sql.SQL(
            "CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON {}.entries "
            "FOR EACH STATEMENT EXECUTE FUNCTION {}.append_only()"
        ).format(s, s),
        sql.SQL(
            """CREATE TABLE {}.snapshots (
                id       BIGSERIAL PRIMARY KEY,
                stream   TEXT   NOT NULL,
                seq      BIGINT NOT NULL,
                digest   BYTEA  NOT NULL,
                version  TEXT   NOT NULL,
                state    BYTEA  NOT NULL,
                checksum BYTEA  NOT NULL,
                ts_ns    BIGINT NOT NULL
            )"""
        ).format(s),
        sql.SQL("CREATE INDEX snapshots_stream ON {}.snapshots (stream, id)").format(s),
        sql.SQL(
            """CREATE TABLE {}.owners (
                agent       TEXT PRIMARY KEY,
                host        TEXT NOT NULL,
                epoch       BIGINT NOT NULL,
                lease_until TIMESTAMPTZ NOT NULL
            )"""
        ).format(s),
        sql.SQL("CREATE TABLE {}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)").format(s),
        *_functions(schema),
    ]


def _functions(schema: str) -> list[sql.Composed]:
    """The append functions. Their bodies name the schema as text, which renaming the
    schema does not change: rename_schema makes them again for the new name."""
    s = sql.Identifier(schema)
    return [sql.SQL(_PREPARE).format(s=s), sql.SQL(_APPEND_KNOWN).format(s=s)]


# The fast path: one statement, so one round trip and its own transaction. The caller
# linked the rows against the head and stream heads it last saw; the function takes the
# lock and appends only if those still hold, no event id is journaled already, and every
# claim's epoch is current (read FOR SHARE). Otherwise it writes nothing and returns false,
# and the caller takes the full path.
_APPEND_KNOWN = """
CREATE OR REPLACE FUNCTION {s}.append_known(
    lock_key BIGINT, head_seq BIGINT, head_digest BYTEA, streams TEXT[], stream_seqs BIGINT[],
    ids TEXT[], owner TEXT, agents TEXT[], epochs BIGINT[], a_seq BIGINT[], a_stream TEXT[],
    a_stream_seq BIGINT[], a_kind TEXT[], a_ts_ns BIGINT[], a_event_id TEXT[], a_body BYTEA[],
    a_batch BIGINT[], a_digest BYTEA[], channel TEXT)
RETURNS BOOLEAN LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    i INT;
    last_seq BIGINT;
    last_digest BYTEA;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT e.seq, e.digest INTO last_seq, last_digest
        FROM {s}.entries e ORDER BY e.seq DESC LIMIT 1;
    IF coalesce(last_seq, 0) <> head_seq
       OR (last_seq IS NOT NULL AND last_digest <> head_digest) THEN
        RETURN FALSE;
    END IF;
    FOR i IN 1 .. coalesce(array_length(streams, 1), 0) LOOP
        IF coalesce((SELECT e.stream_seq FROM {s}.entries e WHERE e.stream = streams[i]
                     ORDER BY e.seq DESC LIMIT 1), 0) <> stream_seqs[i] THEN
            RETURN FALSE;
        END IF;
    END LOOP;
    -- only when there are ids: a generic plan for ANY of an empty array may scan the table
    IF cardinality(ids) > 0 AND EXISTS (SELECT 1 FROM {s}.entries e WHERE e.event_id = ANY(ids))
    THEN
        RETURN FALSE;
    END IF;
    FOR i IN 1 .. coalesce(array_length(agents, 1), 0) LOOP
        PERFORM 1 FROM {s}.owners w
            WHERE w.agent = agents[i] AND w.host = owner AND w.epoch = epochs[i] FOR SHARE;
        IF NOT FOUND THEN
            RETURN FALSE;
        END IF;
    END LOOP;
    INSERT INTO {s}.entries (seq, stream, stream_seq, kind, ts_ns, event_id, body, batch, digest)
        SELECT * FROM unnest(a_seq, a_stream, a_stream_seq, a_kind, a_ts_ns, a_event_id, a_body,
                             a_batch, a_digest);
    PERFORM pg_notify(channel, a_seq[array_upper(a_seq, 1)]::TEXT);
    RETURN TRUE;
END $$
"""

# An append's reads, in one round trip: take the append lock, then (each RETURN QUERY
# with a snapshot taken after the lock, so it sees the last append's commit) the head,
# each stream's head, the entries of the event ids given, and the owners of the agents
# written, read FOR SHARE so that a claim waits for this append to end.
_PREPARE = """
CREATE OR REPLACE FUNCTION {s}.prepare_append(lock_key BIGINT, streams TEXT[], ids TEXT[], agents TEXT[])
RETURNS TABLE (tag TEXT, seq BIGINT, stream TEXT, stream_seq BIGINT, kind TEXT, ts_ns BIGINT,
               event_id TEXT, body BYTEA, batch BIGINT, digest BYTEA, host TEXT, epoch BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    RETURN QUERY SELECT 'h', e.seq, NULL::TEXT, NULL::BIGINT, NULL::TEXT, NULL::BIGINT,
        NULL::TEXT, NULL::BYTEA, NULL::BIGINT, e.digest, NULL::TEXT, NULL::BIGINT
        FROM {s}.entries e ORDER BY e.seq DESC LIMIT 1;
    RETURN QUERY SELECT 's', NULL::BIGINT, n.name,
        (SELECT e.stream_seq FROM {s}.entries e WHERE e.stream = n.name
         ORDER BY e.seq DESC LIMIT 1),
        NULL::TEXT, NULL::BIGINT, NULL::TEXT, NULL::BYTEA, NULL::BIGINT, NULL::BYTEA,
        NULL::TEXT, NULL::BIGINT
        FROM unnest(streams) AS n(name);
    IF cardinality(ids) > 0 THEN
        RETURN QUERY SELECT 'e', e.seq, e.stream, e.stream_seq, e.kind, e.ts_ns, e.event_id,
            e.body, e.batch, e.digest, NULL::TEXT, NULL::BIGINT
            FROM {s}.entries e WHERE e.event_id = ANY(ids);
    END IF;
    RETURN QUERY SELECT 'o', NULL::BIGINT, o.agent, NULL::BIGINT, NULL::TEXT, NULL::BIGINT,
        NULL::TEXT, NULL::BYTEA, NULL::BIGINT, NULL::BYTEA, o.host, o.epoch
        FROM (SELECT w.agent, w.host, w.epoch FROM {s}.owners w
              WHERE w.agent = ANY(agents) ORDER BY w.agent FOR SHARE) o;
END $$
"""


class _Sql:
    """Every statement of one schema, built once; every value in them is a bound parameter."""

    def __init__(self, schema: str) -> None:
        s = sql.Identifier(schema)
        cols = sql.SQL(_COLUMNS)

        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=s, cols=cols)

        self._schema = s
        self._inserts: dict[int, sql.Composed] = {}
        self.prepare = q("SELECT * FROM {s}.prepare_append(%s, %s, %s, %s)")
        self.fleet_after = q(
            "SELECT seq FROM {s}.entries WHERE seq > %s AND kind = ANY(%s) ORDER BY seq"
        )
        self.append_known = q(
            "SELECT {s}.append_known(%b, %b, %b, %b, %b, %b, %b, %b, %b, %b, %b, %b, %b, %b,"
            " %b, %b, %b, %b, %b)"
        )
        self.head = q("SELECT seq, digest FROM {s}.entries ORDER BY seq DESC LIMIT 1")
        self.stream_head = q(
            "SELECT stream_seq FROM {s}.entries WHERE stream = %s ORDER BY seq DESC LIMIT 1"
        )
        self.by_event_id = q("SELECT {cols} FROM {s}.entries WHERE event_id = %s")
        self.by_seq = q("SELECT {cols} FROM {s}.entries WHERE seq = %s")
        self.transaction = q(
            "SELECT {cols} FROM {s}.entries WHERE seq >= %s AND batch = %s ORDER BY seq"
        )
        self.streams = q("SELECT DISTINCT stream FROM {s}.entries ORDER BY stream")
        self.forward = {
            (stream, kind): q(
                "SELECT {cols} FROM {s}.entries WHERE "
                + ("stream = %s AND " if stream else "")
                + ("kind = %s AND " if kind else "")
                + "seq > %s ORDER BY seq LIMIT %s"
            )
            for stream in (False, True)
            for kind in (False, True)
        }
        self.backward = {
            (stream, kind): q(
                "SELECT {cols} FROM {s}.entries WHERE "
                + ("stream = %s AND " if stream else "")
                + ("kind = %s AND " if kind else "")
                + "seq < %s ORDER BY seq DESC LIMIT %s"
            )
            for stream in (False, True)
            for kind in (False, True)
        }
        self.digest_at = q("SELECT digest FROM {s}.entries WHERE seq = %s")
        self.put_snapshot = q(
            "INSERT INTO {s}.snapshots (stream, seq, digest, version, state, checksum, ts_ns) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id"
        )
        self.prune_snapshots = q(
            "DELETE FROM {s}.snapshots WHERE stream = %s AND id NOT IN "
            "(SELECT id FROM {s}.snapshots WHERE stream = %s ORDER BY id DESC LIMIT %s)"
        )
        self.snapshots = q(
            "SELECT n.id, n.stream, n.seq, n.digest, n.version, n.state, n.checksum, n.ts_ns,"
            " e.digest FROM {s}.snapshots n LEFT JOIN {s}.entries e ON e.seq = n.seq "
            "WHERE n.stream = %s ORDER BY n.id DESC"
        )
        self.meta = q("SELECT value FROM {s}.meta WHERE key = 'schema_version'")
        self.claim = q(
            "INSERT INTO {s}.owners AS o (agent, host, epoch, lease_until) "
            "VALUES (%s, %s, 1, clock_timestamp() + make_interval(secs => %s)) "
            "ON CONFLICT (agent) DO UPDATE SET host = excluded.host, epoch = o.epoch + 1, "
            "lease_until = excluded.lease_until "
            "WHERE o.host = excluded.host OR o.lease_until < clock_timestamp() "
            "RETURNING epoch"
        )
        self.owner = q(
            "SELECT host, epoch, extract(epoch FROM lease_until - clock_timestamp()) "
            "FROM {s}.owners WHERE agent = %s"
        )
        self.renew = q(
            "UPDATE {s}.owners AS o SET lease_until = clock_timestamp() + "
            "make_interval(secs => %s) FROM unnest(%s::text[], %s::bigint[]) AS c(agent, epoch) "
            "WHERE o.agent = c.agent AND o.epoch = c.epoch AND o.host = %s RETURNING o.agent"
        )
        self.release = q(
            "UPDATE {s}.owners AS o SET lease_until = clock_timestamp() "
            "FROM unnest(%s::text[], %s::bigint[]) AS c(agent, epoch) "
            "WHERE o.agent = c.agent AND o.epoch = c.epoch AND o.host = %s"
        )
        self.orphans = q(
            "SELECT agent FROM {s}.owners WHERE lease_until < clock_timestamp() ORDER BY agent"
        )

    def insert(self, rows: int) -> sql.Composed:
        """Insert `rows` entries and announce the new head, in one statement."""
        found = self._inserts.get(rows)
        if found is None:
            values = sql.SQL(", ").join([sql.SQL("(%s, %s, %s, %s, %s, %s, %s, %s, %s)")] * rows)
            found = sql.SQL(
                "WITH added AS (INSERT INTO {s}.entries ({cols}) VALUES {values} RETURNING seq) "
                "SELECT pg_notify(%s, (SELECT max(seq) FROM added)::text)"
            ).format(s=self._schema, cols=sql.SQL(_COLUMNS), values=values)
            if len(self._inserts) < 256:
                self._inserts[rows] = found
        return found


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """Split a journal URL into psycopg's conninfo and this journal's own options."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        (ours.__setitem__(name, value) if name in _OPTIONS else theirs.append((name, value)))
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    conninfo = _unsplit(scheme, parts.netloc, parts.path, urlencode(theirs), parts.fragment)
    return conninfo, ours


def with_schema(url: str, schema: str) -> str:
    """The same journal URL naming another schema."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    query.append(("schema", schema))
    return _unsplit(parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment)


def _unsplit(scheme: str, netloc: str, path: str, query: str, fragment: str) -> str:
    """A URL from its parts, keeping `//` when there is no host: urlunsplit writes
    `postgresql:///db` (a Unix socket's URL) back as `postgresql:/db`, which libpq
    can't read."""
    url = urlunsplit((scheme, netloc, path, query, fragment))
    if not netloc:
        url = f"{scheme}://{url[len(scheme) + 1 :]}"
    return url


def _where(conninfo: str) -> str:
    parts = urlsplit(conninfo)
    if not parts.hostname:  # a `host` parameter, or libpq's default: a Unix socket
        host = dict(parse_qsl(parts.query)).get("host")
        return f"postgresql://{parts.path}" + (f"?host={host}" if host else "")
    host = parts.hostname
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{host}{port}{parts.path}"


_UNKNOWN_HOST = re.compile(r"failed to resolve host|could not translate host name")
"""What libpq and psycopg say of a host name the name service does not know."""
_NOT_THERE = re.compile(r'(database|role) "[^"]*" does not exist')
"""What the server says at login when the URL names a database or user it doesn't have."""
_BAD_VALUE = re.compile(r"invalid [\w ]*value")
"""What libpq says, at connect, of a parameter's value it does not take (sslmode=bogus)."""
_REFUSED = re.compile(r"SSL was required|SSL connection is required|no pg_hba\.conf entry")
"""What libpq and the server say when the server's set-up refuses this connection as the
URL asks for it: SSL one side wants and the other does not give, or no pg_hba.conf line."""


def _entry(row: Any) -> Entry:
    return Entry(
        row[0], row[1], row[2], row[3], row[4], row[5], bytes(row[6]), row[7], bytes(row[8])
    )


class PostgresJournal:
    """A Journal in a PostgreSQL schema; many hosts may share it (see the module's notes)."""

    def __init__(
        self,
        url: str,
        *,
        durability: Durability = "full",
        schema: str | None = None,
        pool_size: int | None = None,
        lease_seconds: float | None = None,
        connect_timeout_s: float | None = None,
        owner: str | None = None,
        keep_snapshots: int = 3,
        snapshot_key: bytes | None = None,
        create: bool = True,
    ) -> None:
        if durability not in ("full", "normal"):
            msg = f"durability must be 'full' or 'normal', not {durability!r}"
            raise ConfigurationError(msg)
        conninfo, options = self.read_url(url)
        self._where = _where(conninfo)
        self.conninfo = conninfo
        self._durability: Durability = durability
        self.schema = _schema_name(schema or options.get("schema", DEFAULT_SCHEMA))
        self.pool_size = _number("pool_size", pool_size, options, 4, int, 1, 100)
        self.lease_seconds = _number("lease", lease_seconds, options, 5.0, float, 0.5, 3600)
        self.claims_are_local = False  # a lease on the server, renewed and fenced
        timeout = _number("connect_timeout_s", connect_timeout_s, options, 10.0, float, 0.1, 600)
        self.connect_timeout = max(1, int(timeout))
        named = owner if owner is not None else options.get("owner")
        self.owner = host_name() if named is None else _owner_name(named)
        """This journal's name as an owner of agents: unique per process unless given (by
        `owner=`, or the URL's `?owner=`: the same host, restarted, takes its agents back
        at once)."""
        self._keep = max(1, keep_snapshots)
        self._sql = _Sql(self.schema)
        self._lock = _lock_key(f"adaptive_runtime/{self.schema}")
        self.channel = f"adaptive_runtime_{self.schema}"
        """The LISTEN/NOTIFY channel each commit is announced on, with its head seq."""
        self._claims: dict[str, int] = {}
        self._voided: set[str] = set()
        """Agents whose claim an append found taken over: the next renew() reports them."""
        self._fenced = False
        self._claims_lock = threading.Lock()
        key_hex = os.environ.get(KEY_ENV)
        if snapshot_key is None and key_hex:
            try:
                snapshot_key = bytes.fromhex(key_hex)
            except ValueError:
                raise ConfigurationError(f"{KEY_ENV} must be hex") from None
        if snapshot_key is not None and len(snapshot_key) < 16:
            raise ConfigurationError("the snapshot key must be at least 16 bytes")
        self._key = snapshot_key or os.urandom(KEY_BYTES)
        self._key_unshared = snapshot_key is None
        """True while the key is this process's own: said once, at the first snapshot."""
        self._forked_from: int | None = None
        """(In a forked child.) The pid of the parent this journal was left to (see _fork)."""
        self._pool: psycopg_pool.ConnectionPool[Any] | None = psycopg_pool.ConnectionPool(
            conninfo,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
            timeout=timeout,
            configure=self._configure,
            open=False,
            name=f"adaptive_runtime:{self.schema}",
        )
        try:
            with self._translated():
                # one direct connection first: a wrong password or a server that is down
                # is reported at once, not after the pool's retries run out the timeout
                psycopg.connect(conninfo, connect_timeout=max(1, int(timeout))).close()
                self._pool.open(wait=True, timeout=timeout)
                self._create_schema(create)
        except BaseException:
            self._pool.close()
            self._pool = None
            raise
        self._listener: _Listener | None = None
        _fork.track(self)
        self._own = _chain.OwnWrites()
        """What this journal appended itself: the fleet check tells others' entries by it."""
        self._cache_lock = threading.Lock()
        self._known_head: Head | None = None
        """The head after this journal's last append, if nothing else has appended since."""
        self._known_streams: dict[str, int] = {}

    @staticmethod
    def read_url(url: str) -> tuple[str, dict[str, str]]:
        """psycopg's conninfo and this journal's options from a URL, checked as libpq
        would check them at connect: ConfigurationError if it can't be read."""
        try:
            conninfo, options = parse_url(url)
            _where(conninfo)
            psycopg.conninfo.conninfo_to_dict(conninfo)
        except (ValueError, psycopg.ProgrammingError) as exc:
            said = hide_passwords(" ".join(str(exc).split()))  # libpq may quote the URL
            msg = (
                f"can't read the journal URL {describe(url)} ({said}); its parameters are"
                " libpq's, with schema, pool_size, lease, connect_timeout_s and owner"
            )
            raise ConfigurationError(msg) from None
        return conninfo, options

    def __repr__(self) -> str:
        return f"PostgresJournal({self._where!r}, schema={self.schema!r})"

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Each new pooled connection: a session stuck in a transaction (its process paused
        while holding the append lock) is ended by the server after two leases."""
        idle_ms = int(max(2.0, 2 * self.lease_seconds) * 1000)
        conn.execute(f"SET idle_in_transaction_session_timeout = {idle_ms}")
        if self._durability == "normal":
            conn.execute("SET synchronous_commit = off")

    @property
    def durability(self) -> Durability:
        return self._durability

    # -- connections ---------------------------------------------------------

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn psycopg's exceptions into the project's error tree at the boundary."""
        try:
            yield
        except AdaptiveRuntimeError:
            raise
        except psycopg_pool.PoolTimeout as exc:
            pool = self._pool
            stats = pool.get_stats() if pool is not None else {}
            if stats.get("pool_size", 0) == 0 or stats.get("connections_errors", 0):
                msg = (
                    f"{self._where}: no connection could be made ({exc}); "
                    "check that the server is running and reachable, then retry"
                )
                raise JournalUnavailableError(msg) from exc
            msg = (
                f"{self._where}: all {self.pool_size} pooled connections stayed busy past the "
                "timeout; retry later, or raise ?pool_size= in the journal URL"
            )
            raise JournalBusyError(msg) from exc
        except psycopg.OperationalError as exc:
            said = " ".join(str(exc).split())
            if "authentication failed" in said or "password" in said:
                msg = (
                    f"{self._where}: the server refused the login ({said}); "
                    "check the user and password in the URL"
                )
                raise JournalError(msg) from exc
            missing = _NOT_THERE.search(said)
            if missing:  # retrying would not help: the URL names no such thing
                msg = (
                    f"{self._where}: {missing.group(0)} on that server ({said});"
                    " check the name in the URL, or create it (createdb, createuser)"
                )
                raise JournalError(msg) from exc
            if _BAD_VALUE.search(said):  # retrying would not help: the URL is at fault
                msg = (
                    f"{self._where}: the URL gives a connection parameter a value libpq does"
                    f" not take ({said}); check the URL's parameters"
                )
                raise ConfigurationError(msg) from exc
            if _REFUSED.search(said):
                msg = (
                    f"{self._where}: the server's set-up does not take this connection"
                    f" ({said}); check the URL's user, database and sslmode, or the"
                    " server's pg_hba.conf and SSL set-up"
                )
                raise JournalError(msg) from exc
            if _UNKNOWN_HOST.search(said):  # a typo in the URL, or the name service is down
                msg = (
                    f"{self._where}: the server's host name can't be looked up ({said}); "
                    "check the host in the URL (or the name service)"
                )
                raise JournalUnavailableError(msg) from exc
            msg = (
                f"{self._where}: the connection failed ({said}); the server may be down or "
                "restarting: retry (an append that raised this was not acknowledged; "
                "retried with the same event id, it is journaled once)"
            )
            raise JournalUnavailableError(msg) from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            said = " ".join(str(exc).split())
            msg = f"{self._where}: permission denied ({said}); check the role's grants"
            raise JournalError(msg) from exc
        except _GONE as exc:  # the schema, a table or a function went while the journal was open
            msg = (
                f"{self._where}: the journal in schema {self.schema} is no longer whole"
                f" ({exc.diag.message_primary}): something dropped part of it while it was"
                " open; nothing more can be journaled there. Restore it from a backup or an"
                " export (adaptive-runtime import), then start again"
            )
            raise JournalError(msg) from exc
        except psycopg.Error as exc:
            msg = f"{self._where}: {type(exc).__name__}: {' '.join(str(exc).split())}"
            raise JournalError(msg) from exc

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        pool = self._pool
        if pool is None:
            raise self._closed_error()
        with self._translated(), pool.connection() as conn:
            yield conn

    def _closed_error(self) -> JournalClosedError:
        if self._forked_from is not None:
            advice = "Open the journal again in this process."
            return JournalClosedError(_fork.forked_error(self._where, self._forked_from, advice))
        return JournalClosedError(f"the journal {self._where} is closed; open a new one")

    def _leave_to_parent(self, parent: int) -> list[object]:
        """In a child forked after this journal was opened: drop its pool and listener (and
        return them, to be kept: closing them would end the parent's sessions, which share
        their sockets) and the locks that may have come over held; every later use raises
        JournalClosedError (see _fork)."""
        kept: list[object] = [self._pool, self._listener]
        self._pool, self._listener = None, None
        self._cache_lock = threading.Lock()
        self._claims_lock = threading.Lock()
        self._forked_from = parent
        return [thing for thing in kept if thing is not None]

    def _create_schema(self, create: bool) -> None:
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock,))
            exists = conn.execute("SELECT to_regclass(%s)", (f"{self.schema}.meta",)).fetchone()
            if exists is not None and exists[0] is not None:
                row = conn.execute(self._sql.meta).fetchone()
                version = int(row[0]) if row is not None else 0
                if version > SCHEMA_VERSION:
                    msg = (
                        f"{self._where} schema {self.schema} was written by a newer Adaptive "
                        f"Runtime (schema {version}; this one reads up to {SCHEMA_VERSION}); "
                        "upgrade adaptive-runtime"
                    )
                    raise JournalVersionError(msg, found=version, supported=SCHEMA_VERSION)
                self._repair_functions(conn)
                return
            entries = conn.execute("SELECT to_regclass(%s)", (f"{self.schema}.entries",)).fetchone()
            if entries is not None and entries[0] is not None:
                msg = f"{self._where} schema {self.schema} has tables that are not a journal's"
                raise NotAJournalError(msg)
            if not create:
                msg = (
                    f"no journal in schema {self.schema} at {self._where}; check --db, or "
                    "write one first (adaptive-runtime import, or a runtime)"
                )
                raise JournalError(msg)
            for statement in _ddl(self.schema):
                conn.execute(statement)
            conn.execute(
                sql.SQL("INSERT INTO {}.meta VALUES ('schema_version', %s)").format(
                    sql.Identifier(self.schema)
                ),
                (str(SCHEMA_VERSION),),
            )

    def _repair_functions(self, conn: psycopg.Connection[Any]) -> None:
        """Make the append functions again if their bodies name another schema.

        `import` builds a journal in a schema of its own and renames it into place; until
        rename_schema made the functions again, that left them naming the schema it was
        built in, so every append to an imported journal failed, or read that schema's
        leftover (empty) tables and was refused.
        """
        named = sql.Identifier(self.schema).as_string(conn) + ".entries"
        rows = conn.execute(
            "SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = %s AND p.proname IN ('prepare_append', 'append_known')",
            (self.schema,),
        ).fetchall()
        if len(rows) == 2 and all(named in row[0] for row in rows):
            return
        for statement in _functions(self.schema):
            conn.execute(statement)
        logging.getLogger("adaptive_runtime.journal").warning(
            "%s schema %s: its append functions named another schema (as an import left"
            " them); they were made again for this one",
            self._where,
            self.schema,
        )

    # -- writing -------------------------------------------------------------

    def append(self, batch: Sequence[Pending], *, expected: int | None = None) -> list[Entry]:
        [result] = self.append_many([batch], [expected])
        if isinstance(result, Exception):
            raise result
        return result

    def append_many(
        self, batches: Sequence[Sequence[Pending]], expected: Sequence[int | None] | None = None
    ) -> list[list[Entry] | Exception]:
        wanted = expected or [None] * len(batches)
        known = self._append_known(batches, wanted)
        if known is not None:
            return known
        new: list[tuple[int, int]] = []
        with self._writing() as conn:
            results, head, heads = self._append_all(conn, batches, wanted, new)
        self._own.record(new)
        self._know(head, heads)  # committed: what the next fast append may count on
        return results

    def _append_known(
        self, batches: Sequence[Sequence[Pending]], expected: Sequence[int | None]
    ) -> list[list[Entry] | Exception] | None:
        """The fast path (see _APPEND_KNOWN): None when it can't be taken or didn't hold."""
        with self._cache_lock:
            head, heads = self._known_head, dict(self._known_streams)
        if head is None:
            return None
        start = head
        ids: set[str] = set()
        claims = self.claims() if self._fenced else {}
        results: list[list[Entry] | Exception] = []
        rows: list[tuple[Any, ...]] = []
        appended: dict[str, int] = {}
        try:
            for batch, want in zip(batches, expected, strict=True):
                stream = _chain.check_batch(batch)
                if type(batch) is FleetBatch:
                    self._own.activate()  # what this fast path appends is counted as its own
                    if (batch.view_seq or 0) < start.seq:
                        return None  # entries since its fleet view: the full path checks them
                at = appended.get(stream, heads.get(stream))
                if at is None or (want is not None and want != at):
                    return None  # unknown here, or a conflict: the full path says which
                if self._fenced and not stream.startswith("~") and stream not in claims:
                    return None
                for pending in batch:
                    if pending.event_id is not None:
                        if pending.event_id in ids:
                            return None
                        ids.add(pending.event_id)
                entries = _chain.link(batch, head, at)
                rows.extend([msgspec.structs.astuple(entry) for entry in entries])
                head = Head(entries[-1].seq, entries[-1].digest)
                appended[stream] = entries[-1].stream_seq
                results.append(entries)
        except AdaptiveRuntimeError:
            return None  # a bad batch: the full path reports it, beside the good ones
        if not results:
            return None
        checked_heads = dict(appended)
        seen = [s for s in map(_chain.controls_seen, batches) if s is not None]
        if seen:  # the server checks that `~host` is where the controls last read it
            host_head = heads.get(HOST_STREAM)
            if host_head is None or HOST_STREAM in appended or min(seen) < host_head:
                return None  # the full path reads it under the lock, and says which
            checked_heads[HOST_STREAM] = host_head
        columns = [list(column) for column in zip(*rows, strict=True)]  # one array per column
        streams = sorted(checked_heads)
        agents = sorted(a for a in appended if a in claims)
        params = (
            self._lock,
            start.seq,
            start.digest,
            streams,
            [heads[s] for s in streams],
            sorted(ids),
            self.owner,
            agents,
            [claims[a] for a in agents],
            *columns,
            self.channel,
        )
        with self._connection() as conn:
            row = conn.execute(self._sql.append_known, params).fetchone()
        if row is None or not row[0]:
            self._know(None, {})
            return None
        self._own.record([(start.seq + 1, head.seq)])
        self._know(head, appended, start)
        return results

    def _know(self, head: Head | None, heads: dict[str, int], after: Head | None = None) -> None:
        """After a commit: the head and stream heads it left, for the next fast append.

        With `after`, only if the cache still holds that head (no other thread moved it).
        None forgets everything: the next append takes the full path and learns again.
        """
        with self._cache_lock:
            if head is None or (after is not None and self._known_head != after):
                self._known_head = None
                self._known_streams.clear()
                return
            if len(self._known_streams) + len(heads) > 4096:
                self._known_streams.clear()
            self._known_head = head
            self._known_streams.update(heads)

    def append_caught_up(
        self, stream: str, after: int, build: Callable[[list[Entry]], Sequence[Pending]]
    ) -> tuple[list[Entry], list[Entry]]:
        with self._writing() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock,))  # before the read
            caught = self._read_on(conn, stream, after)
            batch = build(caught)
            new: list[tuple[int, int]] = []
            [result], _, _ = self._append_all(conn, [batch], [self._stream_head(conn, stream)], new)
        self._own.record(new)
        self._know(None, {})  # rare: the next append learns the heads again
        if isinstance(result, Exception):
            raise result
        return caught, result

    @contextlib.contextmanager
    def _writing(self) -> Iterator[psycopg.Connection[Any]]:
        """One append transaction; its first statement (prepare_append) takes the lock."""
        with self._connection() as conn, conn.transaction():
            yield conn

    def _append_all(
        self,
        conn: psycopg.Connection[Any],
        batches: Sequence[Sequence[Pending]],
        expected: Sequence[int | None],
        new: list[tuple[int, int]],
    ) -> tuple[list[list[Entry] | Exception], Head, dict[str, int]]:
        """Check and link every batch, then insert all of them with one statement.

        Returns the results, and the head and stream heads the transaction leaves; `new`
        gets the seq range of each batch it appends (this journal's own, once committed).

        What the checks need (the head, each stream's head, the entries of any event id
        given, the owners of the agents written) is asked for in one round trip, behind
        the append lock queued by _writing; the insert, with its NOTIFY, is one statement.
        """
        checked: list[str | Exception] = []
        for batch in batches:  # first, so that nothing unchecked is ever sent to the server
            try:
                checked.append(_chain.check_batch(batch))
            except AdaptiveRuntimeError as exc:
                checked.append(exc)
        valid = [b for b, c in zip(batches, checked, strict=True) if isinstance(c, str)]
        streams = sorted({c for c in checked if isinstance(c, str)})
        if _chain.plans_from_controls(valid) and HOST_STREAM not in streams:
            streams = sorted([*streams, HOST_STREAM])  # its head, for check_controls_view
        ids = sorted({p.event_id for b in valid for p in b if p.event_id is not None})
        agents = [s for s in streams if not s.startswith("~")] if self._fenced else []
        head = Head(0, GENESIS_DIGEST)
        stream_heads: dict[str, int] = {}
        journaled: dict[str, Entry] = {}
        owners: dict[str, tuple[str, int]] = {}
        for row in conn.execute(self._sql.prepare, (self._lock, streams, ids, agents)):
            tag = row[0]
            if tag == "h":
                head = Head(int(row[1]), bytes(row[9]))
            elif tag == "s":
                stream_heads[row[2]] = int(row[3] or 0)
            elif tag == "e":
                journaled[row[6]] = _entry(row[1:10])
            else:
                owners[row[2]] = (row[10], int(row[11]))
        fences = self._fences(agents, owners)
        foreign_after = (
            None
            if not _chain.has_fleet_batch(batches)
            else self._own.foreign_after(
                head.seq,
                lambda seq: (
                    row[0]
                    for row in conn.execute(self._sql.fleet_after, (seq, list(_chain.FLEET_KINDS)))
                ),
            )
        )

        staged_ids: dict[str, Entry] = {}
        staged_batches: dict[int, list[Entry]] = {}

        def lookup(event_id: str) -> Entry | None:
            return staged_ids.get(event_id) or journaled.get(event_id)

        def transaction(first: int) -> list[Entry]:
            staged = staged_batches.get(first)
            if staged is not None:
                return staged
            rows = conn.execute(self._sql.transaction, (first, first)).fetchall()
            return [_entry(row) for row in rows]

        values: list[Any] = []
        results: list[list[Entry] | Exception] = []
        refused: set[str] = set()  # streams with a batch refused in this append
        for batch, want, stream in zip(batches, expected, checked, strict=True):
            if not isinstance(stream, str):
                results.append(stream)
                continue
            try:
                replayed = _chain.find_replayed(batch, lookup, transaction)
                if replayed is not None:
                    results.append(replayed)
                    continue
                refusal = fences.get(stream)
                if refusal is not None:
                    raise refusal
                actual = stream_heads.get(stream, 0)
                _chain.check_expected(stream, want, actual, refused, batch)
                _chain.check_fleet_view(stream, batch, foreign_after)
                _chain.check_controls_view(stream, batch, stream_heads.get(HOST_STREAM, 0))
            except AdaptiveRuntimeError as exc:
                results.append(exc)
                _chain.note_refused(refused, stream, batch)
                continue
            entries = _chain.link(batch, head, actual)
            new.append((entries[0].seq, entries[-1].seq))
            for entry in entries:
                values.extend(msgspec.structs.astuple(entry))
                if entry.event_id is not None:
                    staged_ids[entry.event_id] = entry
            head = Head(entries[-1].seq, entries[-1].digest)
            stream_heads[stream] = entries[-1].stream_seq
            staged_batches[entries[0].seq] = entries
            results.append(entries)
        if values:
            conn.execute(self._sql.insert(len(values) // 9), (*values, self.channel))
        return results, head, stream_heads

    def _fences(
        self, agents: Sequence[str], current: dict[str, tuple[str, int]]
    ) -> dict[str, AgentOwnedElsewhere]:
        """The refusal of each agent stream this journal may not write (fenced mode only)."""
        refusals: dict[str, AgentOwnedElsewhere] = {}
        for agent in agents:
            mine = self._claims.get(agent)
            owner, epoch = current.get(agent, (None, None))
            if mine is not None and owner == self.owner and epoch == mine:
                continue
            if mine is not None:
                with self._claims_lock:
                    if self._claims.pop(agent, None) is not None:
                        self._voided.add(agent)  # lost: renew() says so, for the host to unload
            refusals[agent] = AgentOwnedElsewhere(
                self._refusal(agent, mine, owner, epoch), agent=agent, owner=owner, epoch=epoch
            )
        return refusals

    def _refusal(self, agent: str, mine: int | None, owner: str | None, epoch: int | None) -> str:
        """Why this journal may not append to an agent's stream, and what to do."""
        if owner is None:
            return f"this host holds no claim on agent {agent!r} (no host owns it): claim it first"
        who = f"host {owner!r}"
        if owner == self.owner:  # two live hosts under one name: one fences the other
            who = (
                f"another host under this host's own name {owner!r} (give each host a name of"
                " its own: the journal's `owner`)"
            )
        if mine is not None:
            return (
                f"{who} took agent {agent!r} over (epoch {epoch}); this host's claim (epoch"
                f" {mine}) is void and nothing of this append was journaled"
            )
        return (
            f"agent {agent!r} is owned by {who} (epoch {epoch}), and this host holds no claim"
            " on it: send its events there, or wait for its lease to run out"
        )

    # -- ownership -----------------------------------------------------------

    def claim(self, agent: str) -> int:
        """Own an agent from now on; return the claim's epoch. From the first claim on,
        this journal appends only to agents it holds.

        Raises AgentOwnedElsewhere while another host's lease on it runs.
        """
        with self._connection() as conn:
            row = conn.execute(self._sql.claim, (agent, self.owner, self.lease_seconds)).fetchone()
            if row is None:
                owner = conn.execute(self._sql.owner, (agent,)).fetchone()
                host, epoch, left = owner if owner is not None else (None, None, 0.0)
                msg = (
                    f"agent {agent!r} is owned by host {host!r} (epoch {epoch}) for another "
                    f"{float(left or 0):.1f}s at least; send its events there, or wait for "
                    "its lease to run out"
                )
                raise AgentOwnedElsewhere(msg, agent=agent, owner=host, epoch=epoch)
        epoch = int(row[0])
        with self._claims_lock:
            self._claims[agent] = epoch
            self._voided.discard(agent)  # held again: not lost any more
            self._fenced = True
        return epoch

    def claims(self) -> dict[str, int]:
        """The agents this journal holds, with their epochs."""
        with self._claims_lock:
            return dict(self._claims)

    def renew(self) -> list[str]:
        """Extend every claim's lease; return the agents lost to another host meanwhile
        (found now, or by an append refused since the last renew())."""
        with self._claims_lock:
            voided = sorted(self._voided)  # forgotten once reported, not if renewing fails
        held = self.claims()
        lost: list[str] = []
        if held:
            agents, epochs = list(held), [held[a] for a in held]
            with self._connection() as conn:
                rows = conn.execute(
                    self._sql.renew, (self.lease_seconds, agents, epochs, self.owner)
                ).fetchall()
            kept = {row[0] for row in rows}
            lost = [a for a in agents if a not in kept]
        with self._claims_lock:
            for agent in lost:
                if self._claims.get(agent) == held[agent]:
                    del self._claims[agent]
            self._voided.difference_update(voided)
        return voided + [a for a in lost if a not in voided]

    def release(self, agents: Sequence[str] | None = None) -> None:
        """Give claims up now (a host stopping), so others need not wait out the lease."""
        held = self.claims()
        chosen = [a for a in (held if agents is None else agents) if a in held]
        if not chosen:
            return
        with self._connection() as conn:
            conn.execute(self._sql.release, (chosen, [held[a] for a in chosen], self.owner))
        with self._claims_lock:
            for agent in chosen:
                self._claims.pop(agent, None)

    def orphans(self) -> list[str]:
        """Agents whose owner's lease has run out: any host may claim them now."""
        with self._connection() as conn:
            return [row[0] for row in conn.execute(self._sql.orphans).fetchall()]

    def owner_of(self, agent: str) -> tuple[str, int, float] | None:
        """(host, epoch, seconds of lease left; negative when expired), or None if unowned."""
        if not storable(agent):
            return None
        with self._connection() as conn:
            row = conn.execute(self._sql.owner, (agent,)).fetchone()
        return None if row is None else (row[0], int(row[1]), float(row[2]))

    # -- reading -------------------------------------------------------------

    def read(
        self, stream: str | None = None, *, after: int = 0, kind: str | None = None
    ) -> Iterator[Entry]:
        if not storable(stream, kind):
            return
        statement = self._sql.forward[(stream is not None, kind is not None)]
        filters = tuple(x for x in (stream, kind) if x is not None)
        position = after
        while True:
            with self._connection() as conn:
                rows = conn.execute(statement, (*filters, position, PAGE)).fetchall()
            for row in rows:
                yield _entry(row)
            if len(rows) < PAGE:
                return
            position = cast(int, rows[-1][0])

    def _read_on(self, conn: psycopg.Connection[Any], stream: str, after: int) -> list[Entry]:
        statement = self._sql.forward[(True, False)]
        out: list[Entry] = []
        while True:
            rows = conn.execute(statement, (stream, after, PAGE)).fetchall()
            out.extend(_entry(row) for row in rows)
            if len(rows) < PAGE:
                return out
            after = cast(int, rows[-1][0])

    def latest(
        self,
        n: int,
        stream: str | None = None,
        *,
        kind: str | None = None,
        before: int | None = None,
    ) -> Iterator[Entry]:
        if not storable(stream, kind):
            return
        statement = self._sql.backward[(stream is not None, kind is not None)]
        filters = tuple(x for x in (stream, kind) if x is not None)
        position, left = 2**63 - 1 if before is None else min(before, 2**63 - 1), n
        while left > 0:
            size = min(left, PAGE)
            with self._connection() as conn:
                rows = conn.execute(statement, (*filters, position, size)).fetchall()
            for row in rows:
                yield _entry(row)
            if len(rows) < size:
                return
            left -= size
            position = cast(int, rows[-1][0])

    def get(self, seq: int) -> Entry | None:
        if not -(2**63) <= seq < 2**63:
            return None
        return self._one(self._sql.by_seq, (seq,))

    def by_event_id(self, event_id: str) -> Entry | None:
        if not storable(event_id):
            return None
        return self._one(self._sql.by_event_id, (event_id,))

    def head(self) -> Head:
        with self._connection() as conn:
            return self._head(conn)

    def stream_head(self, stream: str) -> int:
        if not storable(stream):
            return 0
        with self._connection() as conn:
            return self._stream_head(conn, stream)

    def streams(self) -> list[str]:
        with self._connection() as conn:
            return [row[0] for row in conn.execute(self._sql.streams).fetchall()]

    def _one(self, statement: sql.Composed, bindings: tuple[object, ...]) -> Entry | None:
        with self._connection() as conn:
            row = conn.execute(statement, bindings).fetchone()
        return None if row is None else _entry(row)

    def _head(self, conn: psycopg.Connection[Any]) -> Head:
        row = conn.execute(self._sql.head).fetchone()
        return Head(0, GENESIS_DIGEST) if row is None else Head(int(row[0]), bytes(row[1]))

    def _stream_head(self, conn: psycopg.Connection[Any], stream: str) -> int:
        row = conn.execute(self._sql.stream_head, (stream,)).fetchone()
        return 0 if row is None else int(row[0])

    # -- following -----------------------------------------------------------

    def wait_for_commit(self, after: int, timeout: float) -> bool:
        """Block until an entry past seq `after` commits, or `timeout` seconds pass.

        Uses LISTEN on the journal's channel; returns whether the head moved past `after`.
        """
        if self.head().seq > after:
            return True
        listener = self._listener
        if listener is None:
            listener = self._listener = _Listener(self)
        return listener.wait(after, timeout)

    # -- snapshots -----------------------------------------------------------

    def put_snapshot(
        self, stream: str, seq: int, state: bytes, *, version: str, ts_ns: int
    ) -> Snapshot:
        [snapshot] = self.put_snapshots([(stream, seq, state)], version=version, ts_ns=ts_ns)
        return snapshot

    def put_snapshots(
        self, items: Sequence[tuple[str, int, bytes]], *, version: str, ts_ns: int
    ) -> list[Snapshot]:
        if self._key_unshared and items:
            self._key_unshared = False
            logging.getLogger("adaptive_runtime.journal").warning(
                "%s: no %s is set, so this process signs its snapshots with a key of its own;"
                " a restart, or another host, will not trust them and will replay the"
                " journal instead. Give every host of this database the same key"
                " (hex, 16 bytes or more) to start from snapshots.",
                self._where,
                KEY_ENV,
            )
        out: list[Snapshot] = []
        with self._connection() as conn, conn.transaction():
            for stream, seq, state in items:
                if seq == 0:
                    digest = GENESIS_DIGEST
                else:
                    row = conn.execute(self._sql.digest_at, (seq,)).fetchone()
                    if row is None:
                        msg = f"cannot snapshot at seq {seq}: no such entry in {self._where}"
                        raise JournalError(msg)
                    digest = bytes(row[0])
                mac = snapshot_mac(self._key, stream, seq, digest, version, state)
                values = (stream, seq, digest, version, state, mac, ts_ns)
                found = conn.execute(self._sql.put_snapshot, values).fetchone()
                conn.execute(self._sql.prune_snapshots, (stream, stream, self._keep))
                out.append(
                    Snapshot(
                        id=int(found[0]) if found is not None else 0,
                        stream=stream,
                        seq=seq,
                        digest=digest,
                        version=version,
                        state=state,
                        ts_ns=ts_ns,
                    )
                )
        return out

    def snapshots(self, stream: str, *, untrusted: bool = False) -> Iterator[Snapshot]:
        if not storable(stream):
            return
        with self._connection() as conn:
            rows = conn.execute(self._sql.snapshots, (stream,)).fetchall()
        yield from _chain.checked_snapshots(rows, self._key, untrusted=untrusted)

    # -- checking ------------------------------------------------------------

    def verify(
        self, *, expected_head: Head | None = None, progress: Callable[[int], None] | None = None
    ) -> VerifyReport:
        return _chain.walk(self.read(), expected_head, progress)

    def rename_schema(self, schema: str) -> None:
        """Give the journal's schema another name (an import's last step); then close.

        A schema of that name made meanwhile (a host started on it) is left as it is:
        JournalError, and this journal keeps its name."""
        _schema_name(schema)
        with self._connection() as conn:
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                            sql.Identifier(self.schema), sql.Identifier(schema)
                        )
                    )
                    for statement in _functions(schema):  # they named the old schema
                        conn.execute(statement)
            except psycopg.errors.DuplicateSchema as exc:
                msg = (
                    f"{self._where}: schema {schema} was made while the import ran (by a host"
                    " started on it?); it is left as it is and the import is not put in its"
                    " place: import into another schema (?schema=NEW)"
                )
                raise JournalError(msg) from exc
        self.close()

    @contextlib.contextmanager
    def held(self, purpose: str, refused: str) -> Iterator[None]:
        """Hold the lock named `purpose` in this schema while the block runs: a session
        advisory lock on a connection of its own, so that it outlives close(). If another
        process holds it, JournalBusyError with `refused` as its message."""
        key = _lock_key(f"adaptive_runtime/{self.schema}/{purpose}")
        with self._translated():
            conn = psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=self.connect_timeout
            )
        try:
            with self._translated():
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if row is None or not row[0]:
                raise JournalBusyError(f"{self._where}: {refused}")
            yield
        finally:
            conn.close()  # the lock goes with the session

    def drop_schema(self, *others: str) -> None:
        """Drop the journal's whole schema (an import that failed), and the schemas named in
        `others` (what an import killed before it finished left); then close."""
        with self._connection() as conn:
            for schema in (self.schema, *others):
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                        sql.Identifier(_schema_name(schema))
                    )
                )
        self.close()

    def reader(self) -> PostgresJournal:
        """A journal on the same schema with a pool of one connection of its own, for
        reads on another thread: they neither wait for a connection this one's appends
        hold nor keep one from them. It trusts the snapshots this one writes (the same
        key), and claims nothing."""
        if self._pool is None:
            raise self._closed_error()
        return PostgresJournal(
            self.conninfo,
            durability=self._durability,
            schema=self.schema,
            pool_size=1,
            connect_timeout_s=self.connect_timeout,
            keep_snapshots=self._keep,
            snapshot_key=self._key,
            create=False,
        )

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._pool is not None:
            with contextlib.suppress(JournalError):  # the server away: the leases run out
                self.release()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


class _Listener:
    """A connection that LISTENs on the journal's channel, for wait_for_commit."""

    def __init__(self, journal: PostgresJournal) -> None:
        self._journal = journal
        self._conn: psycopg.Connection[Any] | None = None
        self._head = 0
        self._lock = threading.Lock()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is None or conn.closed:
            journal = self._journal
            if journal._pool is None:
                raise journal._closed_error()
            conn = psycopg.connect(
                journal.conninfo, autocommit=True, connect_timeout=journal.connect_timeout
            )
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._journal.channel)))
            self._conn = conn
        return conn

    def wait(self, after: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock, self._journal._translated():
            try:
                conn = self._connect()
                if self._journal.head().seq > after:  # committed between LISTEN and now
                    return True
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    for note in conn.notifies(timeout=left, stop_after=1):
                        with contextlib.suppress(ValueError):
                            self._head = max(self._head, int(note.payload))
                    if self._head > after:
                        return True
            except psycopg.Error:
                self.close()  # a connection the server dropped: the next wait makes a new one
                raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()


def _number(
    name: str,
    given: float | None,
    options: dict[str, str],
    default: float,
    kind: type[int] | type[float],
    low: float,
    high: float,
) -> Any:
    raw: object = given if given is not None else options.get(name, default)
    try:
        value = kind(cast(Any, raw))
    except (TypeError, ValueError):
        value = None
    if value is None or not low <= value <= high:
        msg = f"{name} must be a number from {low:g} to {high:g}, not {raw!r}"
        raise ConfigurationError(msg)
    return value
