"""The dispatcher of the outbox: takes due notifications, hands them to a sender, records every attempt,
retries failures with exponential backoff and gives up (FAILED, kept in the log) after the last attempt."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.clock import utcnow
from customers.config import CustomerSettings, get_customer_settings
from customers.models import Notification, NotificationDelivery
from customers.senders import LogSender, Message, Sender, WebhookSender

log = logging.getLogger(__name__)


@dataclass
class DeliveryStats:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retrying + self.failed

    def __iadd__(self, other: DeliveryStats) -> DeliveryStats:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        return self


def make_sender(settings: CustomerSettings | None = None) -> Sender:
    """The webhook sender when a gateway URL is configured, else the log sender."""
    settings = settings or get_customer_settings()
    if settings.webhook_url:
        return WebhookSender(settings.webhook_url, settings.webhook_secret, settings.webhook_timeout_seconds,
                             settings.webhook_batch)
    return LogSender()


def backoff(attempts: int, settings: CustomerSettings) -> timedelta:
    """Wait before attempt `attempts + 1`: base, 2x base, 4x base, ... capped."""
    seconds = settings.backoff_base_seconds * (2 ** max(0, attempts - 1))
    return timedelta(seconds=min(settings.backoff_max_seconds, seconds))


def message_id(notification_id: int) -> str:
    return f"gc-{notification_id}"


def deliver_due(session: Session, sender: Sender, now: datetime | None = None,
                settings: CustomerSettings | None = None, limit: int | None = None) -> DeliveryStats:
    """One batch: due PENDING notifications (oldest first) sent, outcomes and the delivery log committed.

    On PostgreSQL rows are claimed with FOR UPDATE SKIP LOCKED, so several workers never take the same one.
    """
    settings = settings or get_customer_settings()
    now = now or utcnow()
    rows = list(session.exec(
        select(Notification.id, Notification.channel, Notification.recipient, Notification.body,
               Notification.kind, Notification.language, Notification.attempts)
        .where(Notification.status == "PENDING", col(Notification.next_attempt_at) <= now)
        .order_by(col(Notification.next_attempt_at), col(Notification.id))
        .limit(limit or settings.delivery_batch).with_for_update(skip_locked=True)))
    stats = DeliveryStats()
    if not rows:
        session.rollback()
        return stats
    by_channel: dict[str, list[Message]] = defaultdict(list)
    attempts = {}
    for row_id, channel, recipient, body, kind, language, tried in rows:
        by_channel[channel].append(Message(message_id(row_id), channel, recipient, body, kind, language))
        attempts[message_id(row_id)] = (row_id, tried + 1)
    outcome: dict[str, str | None] = {}
    for messages in by_channel.values():
        try:
            outcome.update(sender.send(messages))
        except Exception as exc:  # noqa: BLE001  (a broken sender must not lose messages: they are retried)
            log.exception("sender failed on %d messages", len(messages))
            outcome.update({m.id: f"{type(exc).__name__}: {str(exc)[:200]}" for m in messages})
    updates, log_rows = [], []
    for mid, (row_id, attempt) in attempts.items():
        error = outcome.get(mid, "no answer from the sender")
        log_rows.append({"notification_id": row_id, "at": now, "attempt": attempt, "ok": error is None,
                         "detail": error})
        if error is None:
            stats.sent += 1
            updates.append({"id": row_id, "status": "SENT", "attempts": attempt, "sent_at": now, "last_error": None})
        elif attempt >= settings.max_attempts:
            stats.failed += 1
            updates.append({"id": row_id, "status": "FAILED", "attempts": attempt, "last_error": error[:500]})
        else:
            stats.retrying += 1
            updates.append({"id": row_id, "attempts": attempt, "last_error": error[:500],
                            "next_attempt_at": now + backoff(attempt, settings)})
    for group in _same_keys(updates):
        session.execute(update(Notification), group)
    session.execute(NotificationDelivery.__table__.insert(), log_rows)  # type: ignore[attr-defined]
    session.commit()
    return stats


def _same_keys(rows: list[dict[str, object]]) -> list[list[dict[str, object]]]:
    """Bulk updates by primary key need the same columns in every row of a batch."""
    groups: dict[tuple[str, ...], list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row))].append(row)
    return list(groups.values())


def deliver_all_due(engine: Engine, sender: Sender, now: datetime | None = None,
                    settings: CustomerSettings | None = None, max_batches: int = 10_000) -> DeliveryStats:
    """Batches until nothing is due at `now` (failures are rescheduled into the future, so this ends)."""
    total = DeliveryStats()
    with Session(engine, expire_on_commit=False) as session:
        for _ in range(max_batches):
            stats = deliver_due(session, sender, now, settings)
            total += stats
            if stats.handled == 0:
                break
    return total


def run_once(engine: Engine, sender: Sender | None = None, now: datetime | None = None) -> DeliveryStats:
    """What `gridcrew notify --once` does: planned-outage notices due now, then deliver everything due."""
    from customers.planned import notify_planned_outages
    from customers.tracking import prune_attempts

    with Session(engine, expire_on_commit=False) as session:
        notify_planned_outages(session, now)
        prune_attempts(session, now)
        session.commit()
    return deliver_all_due(engine, sender or make_sender(), now)


class NotificationWorker:
    """A background thread running `run_once` every `interval` seconds until stopped."""

    def __init__(self, engine: Engine, sender: Sender | None = None, interval: float = 1.0) -> None:
        self.engine, self.sender, self.interval = engine, sender or make_sender(), interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gridcrew-notify", daemon=True)

    def start(self) -> NotificationWorker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                run_once(self.engine, self.sender)
            except Exception:  # noqa: BLE001  (keep the loop alive; the next round retries)
                log.exception("notification round failed")
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
