"""Supervision (督办): steps about to breach (WARNING) or breached (OVERDUE) are escalated once per step and level
to the owning unit and its manager, with a ticket event and a task row each; `gridcrew supervise --once` runs one
pass for cron, `Supervisor` runs passes in the server process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.clock import utcnow
from core.db import session_scope
from dispatch.enums import OPEN_STATUSES
from dispatch.models import Ticket
from dispatch.tickets import record_event
from geo.areas import RegionConfig
from quality.callbacks import create_callback_tasks
from quality.common import manager_of
from quality.handover import owners_of
from quality.hotspots import index_keywords
from quality.models import QualityTask
from quality.repeat_callers import sync_risk_levels
from quality.rules import QualitySettings, RiskRules, load_quality_settings, load_risk_rules

log = logging.getLogger(__name__)
STEPS = ("RESPOND", "RESOLVE")


@dataclass(frozen=True)
class Breach:
    ticket: Ticket
    step: str  # RESPOND (on site / first contact) or RESOLVE
    level: str  # WARNING or OVERDUE
    deadline: datetime
    unit: str
    manager: str
    defaulted_unit: bool


@dataclass
class SupervisionReport:
    warnings: list[Breach] = field(default_factory=list)
    overdue: list[Breach] = field(default_factory=list)
    tasks: list[QualityTask] = field(default_factory=list)


def find_breaches(session: Session, region: RegionConfig, settings: QualitySettings,
                  now: datetime | None = None) -> list[Breach]:
    """Open tickets whose pending step is overdue, or due within the warning time of its kind."""
    now = now or utcnow()
    horizon = now + timedelta(minutes=max([*settings.warning_minutes.values(), 60]))
    tickets = list(session.exec(select(Ticket).where(
        col(Ticket.status).in_([s.value for s in OPEN_STATUSES]),
        or_(and_(col(Ticket.responded_at).is_(None), col(Ticket.respond_by) < horizon),
            and_(col(Ticket.resolved_at).is_(None), col(Ticket.resolve_by) < horizon)),
    ).order_by(col(Ticket.id))))
    owners = owners_of(session, tickets, settings)
    found: list[Breach] = []
    for ticket in tickets:
        lead = timedelta(minutes=settings.warning_for(ticket.kind))
        owner = owners[ticket.id or 0]
        for step, deadline, done in (("RESPOND", ticket.respond_by, ticket.responded_at),
                                     ("RESOLVE", ticket.resolve_by, ticket.resolved_at)):
            if deadline is None or done is not None or deadline - now > lead:
                continue
            found.append(Breach(ticket, step, "OVERDUE" if deadline < now else "WARNING", deadline, owner.unit,
                                manager_of(owner.unit, region, settings), owner.defaulted))
    return found


def escalation_key(breach: Breach, role: str) -> str:
    return f"SUP:{breach.ticket.id}:{breach.step}:{breach.level}:{role}"


def supervise(session: Session, region: RegionConfig, settings: QualitySettings, now: datetime | None = None,
              source: str = "supervisor") -> SupervisionReport:
    """One pass: escalate each new warning and overdue step once (event + a task for unit and manager)."""
    now = now or utcnow()
    report = SupervisionReport()
    breaches = find_breaches(session, region, settings, now)
    keys = [escalation_key(b, role) for b in breaches for role in ("UNIT", "MANAGER")]
    done = set(session.exec(select(QualityTask.key).where(col(QualityTask.key).in_(keys)))) if keys else set()
    for breach in breaches:
        (report.overdue if breach.level == "OVERDUE" else report.warnings).append(breach)
        if escalation_key(breach, "UNIT") in done:
            continue
        what = "on site / first contact" if breach.step == "RESPOND" else "resolution"
        state = "overdue since" if breach.level == "OVERDUE" else "due at"
        flag = " (no location: default unit)" if breach.defaulted_unit else ""
        message = (f"督办 {breach.level}: ticket {breach.ticket.number} {what} {state} "
                   f"{breach.deadline:%Y-%m-%d %H:%M} UTC; unit {breach.unit}{flag}, manager {breach.manager}")
        record_event(session, breach.ticket, source, note=message, kind="SUPERVISION", at=now)
        for role, recipient in (("UNIT", breach.unit), ("MANAGER", breach.manager)):
            task = QualityTask(key=escalation_key(breach, role), kind=f"SUPERVISION_{breach.level}",
                               ticket_id=breach.ticket.id, recipient_role=role, recipient=recipient,
                               unit=breach.unit, step=breach.step, level=breach.level, message=message,
                               due_at=breach.deadline, created_at=now)
            session.add(task)
            report.tasks.append(task)
    session.flush()
    return report


# PostgreSQL advisory lock: one pass at a time across server workers and cron; per schema, so deployments (and
# test runs) sharing one database don't skip each other's passes.
SUPERVISOR_LOCK_KEY = {"key": ":gridcrew-supervisor"}
_LOCK = "hashtext(current_schema() || :key)"


@contextmanager
def _single_pass(engine: Engine) -> Iterator[bool]:
    """True when this process may run a pass now (always on SQLite; on PostgreSQL when nobody else is)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection:
        got = bool(connection.execute(text(f"select pg_try_advisory_lock({_LOCK})"), SUPERVISOR_LOCK_KEY).scalar())
        try:
            yield got
        finally:
            if got:
                connection.execute(text(f"select pg_advisory_unlock({_LOCK})"), SUPERVISOR_LOCK_KEY)
            connection.commit()


def run_once(engine: Engine, region: RegionConfig, risk_rules: RiskRules, settings: QualitySettings,
             now: datetime | None = None) -> dict[str, int]:
    """Everything the quality scheduler does, each part in its own transaction: supervision, risk-level tasks,
    callback tasks and keyword extraction for hotspots. Skipped ({"skipped": 1}) while another pass runs."""
    with _single_pass(engine) as mine:
        if not mine:
            return {"skipped": 1}
        return _run(engine, region, risk_rules, settings, now or utcnow())


def _run(engine: Engine, region: RegionConfig, risk_rules: RiskRules, settings: QualitySettings,
         now: datetime) -> dict[str, int]:
    counts: dict[str, int] = {}
    with session_scope(engine) as session:
        report = supervise(session, region, settings, now)
        counts.update(warnings=len(report.warnings), overdue=len(report.overdue), escalations=len(report.tasks))
    with session_scope(engine) as session:
        counts["risk_tasks"] = len(sync_risk_levels(session, risk_rules, settings, region, now))
    with session_scope(engine) as session:
        counts["callbacks"] = len(create_callback_tasks(session, settings, now))
    with session_scope(engine) as session:
        counts["keywords_indexed"] = index_keywords(session, limit=20000)
    return counts


class Supervisor:
    """Runs `run_once` every `interval` seconds on a daemon thread (the server starts one; `stop()` ends it)."""

    def __init__(self, engine: Engine, region: RegionConfig, risk_rules: RiskRules, settings: QualitySettings,
                 interval: float | None = None) -> None:
        self.engine, self.region, self.risk_rules, self.settings = engine, region, risk_rules, settings
        self.interval = interval if interval is not None else settings.supervision_interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    def start(self) -> Supervisor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="gridcrew-supervisor", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                counts = run_once(self.engine, self.region, self.risk_rules, self.settings)
                log.info("supervision pass", extra=counts)
            except Exception:  # noqa: BLE001  (a failed pass is logged; the next one tries again)
                log.exception("supervision pass failed")
            self.passes += 1
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def make_supervisor(engine: Engine, app_settings: Any, region: RegionConfig) -> Supervisor:
    """The server's supervisor, configured from the application settings (RISK_RULES_FILE, ...)."""
    return Supervisor(engine, region, load_risk_rules(app_settings.risk_rules_file),
                      load_quality_settings(app_settings.quality_settings_file))


def list_quality_tasks(session: Session, open_only: bool | None = None, unit: str | None = None,
                       limit: int = 100) -> list[QualityTask]:
    """Escalations and risk-level tasks, newest first; `open_only` True/False filters on OPEN."""
    query = select(QualityTask).order_by(col(QualityTask.id).desc())
    if open_only is not None:
        query = query.where((col(QualityTask.status) == "OPEN") == open_only)
    if unit is not None:
        query = query.where(col(QualityTask.unit) == unit)
    return list(session.exec(query.limit(limit)))
