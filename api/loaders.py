"""Dataloaders: each batches the lookups of one request into one query (no N+1 over lists)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiodataloader import DataLoader
from sqlmodel import Session, col, select

from crews.models import Crew, MobileGenerator
from crews.roster import busy_crew_ids
from dispatch.models import Assignment, Incident, Ticket
from dispatch.tickets import active_assignments_for, crew_assignments_for, events_for

SessionGetter = Callable[[], Session]


class ByIdLoader(DataLoader):  # type: ignore[misc]
    def __init__(self, session: SessionGetter, model: type[Any]) -> None:
        super().__init__()
        self._session, self._model = session, model

    async def batch_load_fn(self, keys: Sequence[int]) -> list[Any]:
        rows = self._session().exec(select(self._model).where(col(self._model.id).in_(list(keys))))
        found = {row.id: row for row in rows}
        return [found.get(key) for key in keys]


class FunctionLoader(DataLoader):  # type: ignore[misc]
    """Wraps a domain function `fetch(session, keys) -> {key: value}`."""

    def __init__(self, session: SessionGetter, fetch: Callable[[Session, Sequence[int]], dict[int, Any]],
                 default: Callable[[], Any] = lambda: None) -> None:
        super().__init__()
        self._session, self._fetch, self._default = session, fetch, default

    async def batch_load_fn(self, keys: Sequence[int]) -> list[Any]:
        found = self._fetch(self._session(), keys)
        return [found.get(key, self._default()) for key in keys]


def _routes(session: Session, crew_ids: Sequence[int]) -> dict[int, list[Assignment]]:
    rows = session.exec(select(Assignment).where(col(Assignment.crew_id).in_(list(crew_ids)),
                                                 col(Assignment.active).is_(True))
                        .order_by(col(Assignment.sequence)))
    grouped: dict[int, list[Assignment]] = {}
    for row in rows:
        grouped.setdefault(row.crew_id, []).append(row)
    return grouped


def _busy(session: Session, crew_ids: Sequence[int]) -> dict[int, bool]:
    busy = busy_crew_ids(session, crew_ids)
    return {crew_id: crew_id in busy for crew_id in crew_ids}


def _incident_tickets(session: Session, incident_ids: Sequence[int]) -> dict[int, list[Ticket]]:
    grouped: dict[int, list[Ticket]] = {}
    for row in session.exec(select(Ticket).where(col(Ticket.incident_id).in_(list(incident_ids)))
                            .order_by(col(Ticket.id))):
        grouped.setdefault(row.incident_id or 0, []).append(row)
    return grouped


class Loaders:
    def __init__(self, session: SessionGetter) -> None:
        self.ticket = ByIdLoader(session, Ticket)
        self.crew = ByIdLoader(session, Crew)
        self.generator = ByIdLoader(session, MobileGenerator)
        self.incident = ByIdLoader(session, Incident)
        self.events = FunctionLoader(session, events_for, list)
        self.assignment = FunctionLoader(session, active_assignments_for)
        self.crew_assignments = FunctionLoader(session, crew_assignments_for, list)
        self.route = FunctionLoader(session, _routes, list)
        self.crew_busy = FunctionLoader(session, _busy, lambda: False)
        self.incident_tickets = FunctionLoader(session, _incident_tickets, list)
