"""Persistence of issued advice and of clinicians' feedback on it.

``FeedbackStore`` is the one interface; ``SqliteFeedbackStore`` is the embedded default. What is
stored carries no patient identifier: card and suggestion uuids, the hookInstance, the variant,
the order code and the card kind, and what the clinician did.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

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
    """Where issued cards and feedback go; implementations must be safe to call from threads."""

    def record_issued(self, cards: list[IssuedCard]) -> None: ...

    def record_feedback(self, service_id: str, items: list[Feedback]) -> int: ...

    def feedback(self) -> list[StoredFeedback]: ...

    def issued(self) -> list[IssuedCard]: ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS issued_card (
    card_uuid TEXT PRIMARY KEY,
    service_id TEXT NOT NULL,
    hook_instance TEXT NOT NULL,
    card_kind TEXT NOT NULL,
    indicator TEXT NOT NULL,
    variant INTEGER,
    order_code TEXT,
    suggestion_uuids TEXT NOT NULL,
    issued_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id TEXT NOT NULL,
    card_uuid TEXT NOT NULL,
    outcome TEXT NOT NULL,
    accepted_suggestions TEXT NOT NULL,
    override_reason_system TEXT,
    override_reason_code TEXT,
    override_reason_display TEXT,
    user_comment TEXT,
    outcome_timestamp TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_card ON feedback(card_uuid);
"""


class SqliteFeedbackStore:
    """The embedded default: one SQLite file (or ``:memory:``), WAL mode, serialized writes."""

    def __init__(self, path: Path | str) -> None:
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        if target != ":memory:":
            # WAL with synchronous=NORMAL: commits do not fsync (checkpoints do); the database stays
            # consistent through a crash, and only an OS crash or power loss can drop the last commits.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)

    def record_issued(self, cards: list[IssuedCard]) -> None:
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
                c.issued_at.isoformat(),
            )
            for c in cards
        ]
        with self._lock:
            self._conn.executemany("INSERT OR IGNORE INTO issued_card VALUES (?,?,?,?,?,?,?,?,?)", rows)

    def record_feedback(self, service_id: str, items: list[Feedback]) -> int:
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
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT INTO feedback (service_id, card_uuid, outcome, accepted_suggestions, "
                "override_reason_system, override_reason_code, override_reason_display, user_comment, "
                "outcome_timestamp, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            self._conn.execute("COMMIT")
        return len(rows)

    def feedback(self) -> list[StoredFeedback]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT f.service_id, f.card_uuid, f.outcome, f.accepted_suggestions, f.override_reason_code, "
                "f.override_reason_display, f.user_comment, f.outcome_timestamp, i.card_uuid IS NOT NULL "
                "FROM feedback f LEFT JOIN issued_card i ON i.card_uuid = f.card_uuid ORDER BY f.id"
            ).fetchall()
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

    def issued(self) -> list[IssuedCard]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT card_uuid, service_id, hook_instance, card_kind, indicator, variant, order_code, "
                "suggestion_uuids, issued_at FROM issued_card ORDER BY issued_at"
            ).fetchall()
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

    def close(self) -> None:
        with self._lock:
            self._conn.close()
