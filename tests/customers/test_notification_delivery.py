"""The outbox dispatcher against a real local HTTP gateway that fails sometimes: signed bodies, retries with
backoff, nothing lost, nothing sent twice, every attempt in the delivery log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from customers.config import CustomerSettings
from customers.delivery import backoff, deliver_all_due, deliver_due, message_id
from customers.models import Notification, NotificationDelivery
from customers.notify import Change, Recipient, enqueue
from customers.senders import LogSender, WebhookSender, sign, verify
from customers.sink import WebhookSink

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # noon in Beijing: no quiet hours
SETTINGS = CustomerSettings(backoff_base_seconds=30, backoff_max_seconds=600, max_attempts=20)


def fill(session: Session, n: int) -> None:
    people = [Recipient(f"c{i}", "zh" if i % 2 else "en", {"SMS": f"1390000{i:04d}"}) for i in range(n)]
    enqueue(session, Change("RESTORED", "i1", "1", {"restored": "12:00"}, incident_id=1), people, NOW, SETTINGS)
    session.commit()


def test_signatures_are_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"messages":[]}'
    assert sign("s3cret", body).startswith("sha256=") and verify("s3cret", body, sign("s3cret", body))
    assert not verify("other", body, sign("s3cret", body)) and not verify("s3cret", body, None)


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, SETTINGS).total_seconds() for n in (1, 2, 3, 6, 10)] == [30, 60, 120, 600, 600]


def test_the_log_sender_delivers_everything_once(db: Engine) -> None:
    with Session(db) as session:
        fill(session, 25)
    sender = LogSender(keep=True)
    stats = deliver_all_due(db, sender, NOW, SETTINGS)
    assert (stats.sent, stats.retrying, stats.failed) == (25, 0, 0)
    assert len({m.id for m in sender.sent}) == 25
    assert deliver_all_due(db, sender, NOW + timedelta(hours=1), SETTINGS).handled == 0  # nothing twice


def test_a_flaky_gateway_gets_everything_exactly_once_after_retries(db: Engine) -> None:
    with Session(db) as session:
        fill(session, 300)
    with WebhookSink("gw-secret", fail_rate=0.3, slow_rate=0.05, slow_seconds=0.4, seed=3) as sink:
        sender = WebhookSender(sink.url, "gw-secret", timeout=0.2, batch=20)
        now = NOW
        for _round in range(30):  # each round is later than every backoff so far
            deliver_all_due(db, sender, now, SETTINGS)
            now += timedelta(seconds=SETTINGS.backoff_max_seconds + 1)
        sender.close()
    with Session(db) as session:
        ids = session.exec(select(Notification.id)).all()
        statuses = dict(session.exec(select(Notification.status, func.count()).group_by(Notification.status)).all())
        attempts = session.exec(select(func.count()).select_from(NotificationDelivery)).one()
        failed_attempts = session.exec(select(func.count()).select_from(NotificationDelivery)
                                       .where(col(NotificationDelivery.ok).is_(False))).one()
    assert sink.failed > 0 and sink.bad_signatures == 0
    assert statuses == {"SENT": 300}
    assert set(sink.received) == {message_id(i) for i in ids}  # nothing lost
    assert sink.duplicates() == 0  # nothing twice
    assert attempts == 300 + failed_attempts and failed_attempts > 0  # every attempt logged


def test_a_gateway_that_never_answers_ends_in_failed_after_the_last_attempt(db: Engine) -> None:
    with Session(db) as session:
        fill(session, 3)
    settings = CustomerSettings(max_attempts=3, backoff_base_seconds=1)
    sender = WebhookSender("http://127.0.0.1:9/nothing-listens-here", "x", timeout=0.2)
    now = NOW
    with Session(db) as session:
        for _ in range(3):
            deliver_due(session, sender, now, settings)
            now += timedelta(minutes=5)
        rows = session.exec(select(Notification)).all()
    assert {(r.status, r.attempts) for r in rows} == {("FAILED", 3)}
    assert all(r.last_error for r in rows)


def test_quiet_hours_hold_a_message_until_morning_and_urgent_ones_go_at_once(db: Engine) -> None:
    night = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 23:00 in Beijing
    with Session(db) as session:
        people = [Recipient("c1", "zh", {"SMS": "1"}), Recipient("c2", "zh", {"SMS": "2"}, critical=True)]
        enqueue(session, Change("ETR_CHANGED", "i1", "a", {"etr": "03:00"}), people, night, SETTINGS)
        enqueue(session, Change("PLANNED_START", "p1", "1", {"title": "x", "end": "05:00"}),
                [Recipient("c3", "zh", {"SMS": "3"})], night, SETTINGS)
        session.commit()
    sender = LogSender(keep=True)
    deliver_all_due(db, sender, night, SETTINGS)
    assert sorted(m.recipient for m in sender.sent) == ["2", "3"]  # life support and an urgent kind
    deliver_all_due(db, sender, night + timedelta(hours=8, minutes=1), SETTINGS)  # 07:01 local
    assert sorted(m.recipient for m in sender.sent) == ["1", "2", "3"]


def test_the_background_worker_sends_what_is_enqueued(db: Engine) -> None:
    import time

    from customers.delivery import NotificationWorker

    sender = LogSender(keep=True)
    worker = NotificationWorker(db, sender, interval=0.05).start()
    try:
        with Session(db) as session:
            enqueue(session, Change("ETR_CHANGED", "i5", "a", {"etr": "10:00"}),
                    [Recipient("c1", "zh", {"SMS": "1"}, quiet_hours="")])
            session.commit()
        deadline = time.monotonic() + 30
        while not sender.sent and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert [m.recipient for m in sender.sent] == ["1"]
