"""Incident-level fan-out: an incident on a feeder with N affected customers is restored; every customer
hears once. Measures the time to enqueue (the restoring transaction, recipients included) and the delivery
rate to a local webhook sink (real HTTP, signed bodies), and checks 0 lost and 0 duplicate.

    python bench/fanout.py                          # 10 000 customers, SQLite in a temp dir
    python bench/fanout.py --customers 10000 --fail-rate 0.1
    python bench/fanout.py --database postgresql+psycopg://postgres@127.0.0.1:5432/gridcrew_fanout_bench

Goal (issue 7): enqueue < 1 s, deliver >= 2 000/s, 0 lost, 0 duplicate.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, text  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

import core.models  # noqa: E402, F401
from core.clock import utcnow  # noqa: E402
from core.db import make_engine, migrate  # noqa: E402
from customers.config import CustomerSettings  # noqa: E402
from customers.delivery import deliver_all_due, message_id  # noqa: E402
from customers.models import Customer, IncidentScope, NetworkDevice, Notification, TicketCustomer  # noqa: E402
from customers.senders import WebhookSender  # noqa: E402
from customers.sink import WebhookSink  # noqa: E402
from dispatch.enums import TicketStatus  # noqa: E402
from dispatch.models import Incident, Ticket  # noqa: E402
from dispatch.tickets import change_status  # noqa: E402

SECRET = "bench-secret"


def build(engine: object, customers: int, per_transformer: int = 20, per_fuse: int = 10) -> int:
    """Feeder F1 -> fuses -> transformers -> customers (all in quiet-hours-free mode); an incident on F1 whose
    lead ticket is on site. Returns the lead ticket id."""
    now = utcnow()
    transformers = (customers + per_transformer - 1) // per_transformer
    fuses = (transformers + per_fuse - 1) // per_fuse
    with Session(engine) as session:  # type: ignore[arg-type]
        devices = [{"id": "F1", "kind": "FEEDER", "parent_id": None, "feeder": "F1", "lat": None, "lng": None}]
        devices += [{"id": f"FU{f}", "kind": "FUSE", "parent_id": "F1", "feeder": "F1", "lat": None, "lng": None}
                    for f in range(fuses)]
        devices += [{"id": f"T{t}", "kind": "TRANSFORMER", "parent_id": f"FU{t // per_fuse}", "feeder": "F1",
                     "lat": None, "lng": None} for t in range(transformers)]
        session.execute(NetworkDevice.__table__.insert(), devices)  # type: ignore[attr-defined]
        rows = [{"account_number": f"B{i:06d}", "name": None, "phone": f"139{i:08d}", "email": None,
                 "lat": 30.6 + (i % 100) * 1e-4, "lng": 114.3 + (i // 100) * 1e-4, "feeder": "F1",
                 "transformer": f"T{i // per_transformer}", "critical": False, "language": "zh" if i % 3 else "en",
                 "preferred_channels": ["SMS"], "quiet_hours": "", "created_at": now, "updated_at": now}
                for i in range(customers)]
        session.execute(Customer.__table__.insert(), rows)  # type: ignore[attr-defined]
        incident = Incident(status="RESTORING", customers_affected=customers, cause="predicted feeder F1",
                            center_lat=30.6, center_lng=114.3, created_at=now)
        session.add(incident)
        session.flush()
        lead = Ticket(kind="FAULT_REPAIR", channel="HOTLINE", priority="HIGH", status=TicketStatus.ON_SITE.value,
                      summary="feeder F1 out", lat=30.6, lng=114.3, area_type="URBAN", customers_affected=customers,
                      incident_id=incident.id, created_at=now - timedelta(hours=1), responded_at=now,
                      contact_phone="13900000000", phone_last4="0000", preferred_channels=["SMS"])
        session.add(lead)
        session.flush()
        session.add(IncidentScope(incident_id=incident.id or 0, device="F1", device_kind="FEEDER",
                                  lead_ticket_id=lead.id))
        session.add(TicketCustomer(ticket_id=lead.id or 0, customer_id=1))  # the caller is customer B000000
        session.commit()
        return lead.id or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: a temp SQLite file)")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of gateway requests answered 500")
    parser.add_argument("--batch", type=int, default=200, help="messages per webhook POST")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    url = args.database or f"sqlite:///{Path(tmp.name) / 'fanout.sqlite'}"
    if url.startswith("postgres"):  # a scratch database of its own, created when missing
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        from core.db import normalise_url

        parsed = make_url(normalise_url(url))
        admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            if not connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"),
                                      {"d": parsed.database}).first():
                connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
        admin.dispose()
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    migrate(engine)
    lead_id = build(engine, args.customers)
    settings = CustomerSettings(quiet_hours="", delivery_batch=2000, backoff_base_seconds=0.05,
                                backoff_max_seconds=0.2, max_attempts=50)

    started = time.perf_counter()
    with Session(engine, expire_on_commit=False) as session:
        lead = session.get(Ticket, lead_id)
        assert lead is not None
        change_status(session, lead, TicketStatus.RESOLVED, "crew")  # the hook fans out to the incident
        session.commit()
    enqueue_s = time.perf_counter() - started

    with Session(engine) as session:
        queued = session.exec(select(func.count()).select_from(Notification)
                              .where(Notification.incident_id.is_not(None))).one()  # type: ignore[union-attr]

    with WebhookSink(SECRET, fail_rate=args.fail_rate) as sink:
        sender = WebhookSender(sink.url, SECRET, timeout=5, batch=args.batch)
        started = time.perf_counter()
        rounds = 0
        while True:
            rounds += 1
            stats = deliver_all_due(engine, sender, utcnow(), settings)
            with Session(engine) as session:
                pending = session.exec(select(func.count()).select_from(Notification)
                                       .where(Notification.status == "PENDING")).one()
            if pending == 0 or rounds > 200:
                break
            time.sleep(settings.backoff_max_seconds)
        deliver_s = time.perf_counter() - started
        sender.close()

    with Session(engine) as session:
        ids = set(session.exec(select(Notification.id)).all())
        sent = session.exec(select(func.count()).select_from(Notification)
                            .where(Notification.status == "SENT")).one()
    expected = {message_id(i) for i in ids}
    lost = len(expected - set(sink.received))
    load = os.getloadavg()
    print(f"database            {engine.dialect.name}")
    print(f"customers affected  {args.customers}")
    print(f"enqueued            {queued} in {enqueue_s:.3f} s (goal < 1 s)")
    print(f"delivered           {sent} in {deliver_s:.3f} s = {sent / deliver_s:,.0f}/s (goal >= 2 000/s), "
          f"{sink.requests} HTTP requests, {sink.failed} failed by the sink, {rounds} rounds, last {stats}")
    print(f"lost                {lost}")
    print(f"duplicate           {sink.duplicates()}")
    print(f"machine             {os.cpu_count()} cpus, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    engine.dispose()
    tmp.cleanup()
    if lost or sink.duplicates() or queued != args.customers:
        sys.exit(1)


if __name__ == "__main__":
    main()
