"""Persistence of issued advice, clinicians' feedback on it, and client-JWT ids seen (replay cache).

``FeedbackStore`` is the one interface. ``open_store`` picks the backend from a database URL:
``sqlite:///path`` (the embedded default, from ``CDS_FEEDBACK_DB_PATH``) or ``postgresql://…``.
One SQL implementation serves both; only the dialect differs. Nothing stored identifies a patient:
card and suggestion uuids, the hookInstance, variant, order code, card kind, and what was done.

Every feedback entry is kept (the spec allows the same card to be reported again); reports count a
card once, by its latest outcome. Feedback for a card this service never issued is kept and flagged.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from .protocol import Feedback


@dataclass(frozen=True)
class IssuedCard:
    """One card as issued, enough to tie feedback back to the advice that caused it."""

    card_uuid: str
    service_id: str
    hook_instance: str
    card_kind: str
    indicator: str
    variant: int | None
    order_code: str | None
    suggestion_uuids: tuple[str, ...]
    issued_at: datetime


@dataclass(frozen=True)
class StoredFeedback:
    service_id: str
    card_uuid: str
    outcome: str
    accepted_suggestions: tuple[str, ...]
    override_reason_code: str | None
    override_reason_display: str | None
    user_comment: str | None
    outcome_timestamp: datetime
    known_card: bool


class FeedbackStore(Protocol):
    """Where issued cards, feedback and seen JWT ids go; safe to call from several threads."""

    def record_issued(self, cards: Sequence[IssuedCard]) -> None: ...

    def record_feedback(self, service_id: str, items: Sequence[Feedback]) -> int: ...

    def feedback(self, since: datetime | None = None) -> list[StoredFeedback]: ...

    def issued(self, since: datetime | None = None) -> list[IssuedCard]: ...

    def first_use(self, iss: str, jti: str, expires: float) -> bool: ...

    def close(self) -> None: ...


_TABLES = (
    """CREATE TABLE IF NOT EXISTS issued_card (
        card_uuid TEXT PRIMARY KEY,
        service_id TEXT NOT NULL,
        hook_instance TEXT NOT NULL,
        card_kind TEXT NOT NULL,
        indicator TEXT NOT NULL,
        variant INTEGER,
        order_code TEXT,
        suggestion_uuids TEXT NOT NULL,
        issued_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS feedback (
        id {serial},
        service_id TEXT NOT NULL,
        card_uuid TEXT NOT NULL,
        outcome TEXT NOT NULL,
        accepted_suggestions TEXT NOT NULL,
        override_reason_system TEXT,
        override_reason_code TEXT,
        override_reason_display TEXT,
        user_comment TEXT,
        outcome_timestamp TEXT NOT NULL,
        received_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS feedback_card ON feedback(card_uuid)",
    """CREATE TABLE IF NOT EXISTS jwt_seen (
        iss TEXT NOT NULL,
        jti TEXT NOT NULL,
        expires DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (iss, jti))""",
)


_ROWS_PER_INSERT = 111
_SQLITE_WAIT_SECONDS = 10  # how long an SQLite connection waits on another's lock, however it meets it


class SqlFeedbackStore:
    """The store in SQL, for any DB-API connection; subclasses give the connection and the dialect."""

    placeholder = "?"
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    schema_lock: str | None = None  # run first in the transaction that creates the tables

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_purge = 0.0
        with self._cursor() as cur:
            if self.schema_lock is not None:
                cur.execute(self.schema_lock)
            for statement in _TABLES:
                cur.execute(statement.format(serial=self.serial))

    # -- to provide
    def _connection(self) -> Any:
        raise NotImplementedError

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor in one transaction, committed on success; one caller at a time."""
        with self._lock:
            conn = self._connection()
            cur = conn.cursor()
            try:
                yield cur
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                cur.close()

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.placeholder)

    # -- the interface
    def record_issued(self, cards: Sequence[IssuedCard]) -> None:
        if not cards:
            return
        rows = [
            (
                c.card_uuid,
                c.service_id,
                c.hook_instance,
                c.card_kind,
                c.indicator,
                c.variant,
                c.order_code,
                json.dumps(list(c.suggestion_uuids)),
                c.issued_at.astimezone(UTC).isoformat(),
            )
            for c in cards
        ]
        with self._cursor() as cur:
            # One multi-row INSERT per chunk, not executemany: the SQLite driver releases and takes
            # back the GIL around every row, and the writer thread, waiting for it at each row while
            # the event loop ran, spent 2.9 s of wall time on 3,300 cards (0.9 s now). 111 rows of 9
            # parameters stay within SQLite's oldest limit of 999 parameters per statement.
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                values = ",".join(["(?,?,?,?,?,?,?,?,?)"] * len(chunk))
                cur.execute(
                    self._sql(f"INSERT INTO issued_card VALUES {values} ON CONFLICT DO NOTHING"),
                    [value for row in chunk for value in row],
                )

    def record_feedback(self, service_id: str, items: Sequence[Feedback]) -> int:
        now = datetime.now(UTC).isoformat()
        rows = []
        for item in items:
            reason = item.overrideReason.reason if item.overrideReason else None
            rows.append(
                (
                    service_id,
                    item.card,
                    item.outcome,
                    json.dumps([s.id for s in item.acceptedSuggestions or []]),
                    reason.system if reason else None,
                    reason.code if reason else None,
                    reason.display if reason else None,
                    item.overrideReason.userComment if item.overrideReason else None,
                    item.outcomeTimestamp.astimezone(UTC).isoformat(),
                    now,
                )
            )
        with self._cursor() as cur:
            cur.executemany(
                self._sql(
                    "INSERT INTO feedback (service_id, card_uuid, outcome, accepted_suggestions, "
                    "override_reason_system, override_reason_code, override_reason_display, user_comment, "
                    "outcome_timestamp, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
                ),
                rows,
            )
        return len(rows)

    def feedback(self, since: datetime | None = None) -> list[StoredFeedback]:
        rows = self._select(
            "SELECT f.service_id, f.card_uuid, f.outcome, f.accepted_suggestions, f.override_reason_code, "
            "f.override_reason_display, f.user_comment, f.outcome_timestamp, i.card_uuid IS NOT NULL "
            "FROM feedback f LEFT JOIN issued_card i ON i.card_uuid = f.card_uuid",
            since_column="f.outcome_timestamp",
            since=since,
            order="f.id",
        )
        return [
            StoredFeedback(
                service_id=r[0],
                card_uuid=r[1],
                outcome=r[2],
                accepted_suggestions=tuple(json.loads(r[3])),
                override_reason_code=r[4],
                override_reason_display=r[5],
                user_comment=r[6],
                outcome_timestamp=datetime.fromisoformat(r[7]),
                known_card=bool(r[8]),
            )
            for r in rows
        ]

    def issued(self, since: datetime | None = None) -> list[IssuedCard]:
        rows = self._select(
            "SELECT card_uuid, service_id, hook_instance, card_kind, indicator, variant, order_code, "
            "suggestion_uuids, issued_at FROM issued_card",
            since_column="issued_at",
            since=since,
            order="issued_at, card_uuid",
        )
        return [
            IssuedCard(
                card_uuid=r[0],
                service_id=r[1],
                hook_instance=r[2],
                card_kind=r[3],
                indicator=r[4],
                variant=r[5],
                order_code=r[6],
                suggestion_uuids=tuple(json.loads(r[7])),
                issued_at=datetime.fromisoformat(r[8]),
            )
            for r in rows
        ]

    def _select(self, query: str, *, since_column: str, since: datetime | None, order: str) -> list[Any]:
        """Rows of ``query``, from ``since`` on when given (timestamps are stored as UTC ISO text)."""
        params: tuple[str, ...] = ()
        if since is not None:
            query += f" WHERE {since_column} >= ?"
            params = (since.astimezone(UTC).isoformat(),)
        with self._cursor() as cur:
            cur.execute(self._sql(f"{query} ORDER BY {order}"), params)
            rows: list[Any] = cur.fetchall()
        return rows

    def first_use(self, iss: str, jti: str, expires: float) -> bool:
        """Record a JWT id; False when it was already recorded (a replay), across every process."""
        now = time.time()
        with self._cursor() as cur:
            if now - self._last_purge > 60:
                cur.execute(self._sql("DELETE FROM jwt_seen WHERE expires < ?"), (now,))
                self._last_purge = now
            cur.execute(
                self._sql("INSERT INTO jwt_seen (iss, jti, expires) VALUES (?,?,?) ON CONFLICT DO NOTHING"),
                (iss, jti, expires),
            )
            return bool(cur.rowcount == 1)

    def close(self) -> None:
        with self._lock:
            self._connection().close()


class SqliteFeedbackStore(SqlFeedbackStore):
    """The embedded default: one SQLite file (or ``:memory:``), WAL mode, shared by local workers."""

    def __init__(self, path: Path | str) -> None:
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(target, check_same_thread=False, timeout=_SQLITE_WAIT_SECONDS)
        if target != ":memory:":
            # WAL with synchronous=NORMAL: commits do not fsync (checkpoints do); the database stays
            # consistent through a crash, and only an OS crash or power loss can drop the last commits.
            _until_unlocked(lambda: self._conn.execute("PRAGMA journal_mode=WAL"), timeout=_SQLITE_WAIT_SECONDS)
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(f"PRAGMA busy_timeout={_SQLITE_WAIT_SECONDS * 1000}")
        super().__init__()

    def _connection(self) -> Any:
        return self._conn


def _until_unlocked(statement: Callable[[], object], *, timeout: float) -> None:
    """Run ``statement``, again while SQLite answers "database is locked", for up to ``timeout`` seconds.

    Workers starting together on a new file each switch it to WAL; that switch needs the file to
    themselves, and SQLite refuses it at once ("database is locked") rather than waiting in the busy
    handler, so a worker could fail to start. The mode is kept in the file: once one worker has set
    it, the others' switch is a no-op.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class PostgresFeedbackStore(SqlFeedbackStore):
    """PostgreSQL, for several instances or hosts sharing one store (psycopg 3, one connection)."""

    placeholder = "%s"
    serial = "BIGSERIAL PRIMARY KEY"
    # Workers starting together each create the tables; in PostgreSQL, CREATE TABLE IF NOT EXISTS
    # racing another's can still fail (a unique violation on the catalog's pg_type), and that worker
    # did not start. A transaction-level advisory lock (a fixed key of this schema's) serialises them.
    schema_lock = "SELECT pg_advisory_xact_lock(8149361)"

    def __init__(self, url: str) -> None:
        import psycopg

        self._url = url
        self._psycopg = psycopg
        self._conn = psycopg.connect(url, connect_timeout=10)
        super().__init__()

    def _connection(self) -> Any:
        if self._conn.closed:
            self._conn = self._psycopg.connect(self._url, connect_timeout=10)
        return self._conn


def open_store(url: str) -> SqlFeedbackStore:
    """The store a database URL names: ``sqlite:///path``, ``sqlite:///:memory:``, ``postgresql://…``."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresFeedbackStore(url)
    if url.startswith("sqlite://"):
        return SqliteFeedbackStore(url.removeprefix("sqlite://").removeprefix("/") or ":memory:")
    raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]!r} (use sqlite:// or postgresql://)")
