"""The crew roster and the generator fleet: registration with validation, listing, derived crew status."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from core.clock import utcnow
from core.errors import DomainError, ErrorCode, Problems
from crews.models import Crew, CrewStatus, GeneratorStatus, MobileGenerator
from dispatch.enums import IN_PROGRESS_STATUSES
from dispatch.models import Assignment, AssignmentRole, Ticket
from dispatch.tickets import release_assignments
from geo.points import validate_lat_lng

SKILL_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_SKILLS = 30


@dataclass
class NewCrew:
    name: str
    skills: list[str]
    home_lat: float
    home_lng: float
    shift_start: datetime | None = None
    shift_end: datetime | None = None
    can_tow_generator: bool = False
    region: str = "default"
    branch: str | None = None


@dataclass
class NewGenerator:
    name: str
    capacity_kw: float
    lat: float
    lng: float
    region: str = "default"


def _check_name(problems: Problems, name: str) -> None:
    if not (name or "").strip():
        problems.add("name", "name is required", ErrorCode.REQUIRED)
    elif len(name) > 200:
        problems.add("name", "name may be at most 200 characters")


def create_crew(session: Session, new: NewCrew) -> Crew:
    problems = Problems()
    _check_name(problems, new.name)
    if len(new.skills) > MAX_SKILLS:
        problems.add("skills", f"at most {MAX_SKILLS} skills")
    for skill in new.skills:
        if not SKILL_PATTERN.match(skill):
            problems.add("skills", f"'{skill[:40]}' is not a skill tag (lower case letters, digits, _)")
    for message in validate_lat_lng(new.home_lat, new.home_lng):
        problems.add("home", message)
    if new.shift_start and new.shift_end and new.shift_end <= new.shift_start:
        problems.add("shiftEnd", "shiftEnd must be after shiftStart")
    problems.raise_if_any()
    crew = Crew(name=new.name.strip(), skills=sorted(set(new.skills)), home_lat=new.home_lat, home_lng=new.home_lng,
                lat=new.home_lat, lng=new.home_lng, shift_start=new.shift_start, shift_end=new.shift_end,
                can_tow_generator=new.can_tow_generator, region=new.region, branch=new.branch)
    session.add(crew)
    session.commit()
    return crew


def create_generator(session: Session, new: NewGenerator) -> MobileGenerator:
    problems = Problems()
    _check_name(problems, new.name)
    if not math.isfinite(new.capacity_kw) or not 0 < new.capacity_kw <= 100_000:
        problems.add("capacityKw", "capacityKw must be a positive number of kW (at most 100 000)")
    for message in validate_lat_lng(new.lat, new.lng):
        problems.add("location", message)
    problems.raise_if_any()
    generator = MobileGenerator(name=new.name.strip(), capacity_kw=new.capacity_kw, lat=new.lat, lng=new.lng,
                                status=GeneratorStatus.AVAILABLE.value, region=new.region)
    session.add(generator)
    session.commit()
    return generator


def require_crew(session: Session, crew_id: int, field: str = "crewId") -> Crew:
    crew = session.get(Crew, crew_id)
    if crew is None:
        raise DomainError.one(field, f"crew {crew_id} does not exist", ErrorCode.NOT_FOUND)
    return crew


def on_shift(crew: Crew, now: datetime) -> bool:
    """No shift given means always on call."""
    if crew.shift_start and now < crew.shift_start:
        return False
    return not (crew.shift_end and now >= crew.shift_end)


def busy_crew_ids(session: Session, crew_ids: Sequence[int] | None = None) -> set[int]:
    """Crews with a job under way (EN_ROUTE or ON_SITE), in one query."""
    query = (select(Assignment.crew_id).join(Ticket, col(Ticket.id) == col(Assignment.ticket_id))
             .where(col(Assignment.active).is_(True),
                    col(Ticket.status).in_([s.value for s in IN_PROGRESS_STATUSES])))
    if crew_ids is not None:
        query = query.where(col(Assignment.crew_id).in_(list(crew_ids)))
    return set(session.exec(query))


def crew_status(crew: Crew, busy: bool, now: datetime | None = None) -> CrewStatus:
    if crew.unavailable:
        return CrewStatus.UNAVAILABLE
    if not on_shift(crew, now or utcnow()):
        return CrewStatus.OFF_SHIFT
    return CrewStatus.BUSY if busy else CrewStatus.AVAILABLE


def list_crews(session: Session, statuses: Sequence[str] | None = None, region: str | None = None,
               now: datetime | None = None) -> list[tuple[Crew, CrewStatus]]:
    now = now or utcnow()
    query = select(Crew).order_by(col(Crew.id))
    if region:
        query = query.where(Crew.region == region)
    crews = list(session.exec(query))
    busy = busy_crew_ids(session)
    rows = [(crew, crew_status(crew, crew.id in busy, now)) for crew in crews]
    if statuses:
        wanted = set(statuses)
        rows = [row for row in rows if row[1].value in wanted]
    return rows


def list_generators(session: Session, region: str | None = None) -> list[MobileGenerator]:
    query = select(MobileGenerator).order_by(col(MobileGenerator.id))
    if region:
        query = query.where(MobileGenerator.region == region)
    return list(session.exec(query))


REGION_PATTERN = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def lend_crew(session: Session, crew_id: int, region: str) -> Crew:
    """Mutual aid: move a crew to another dispatch region's board. Its unstarted jobs in the old region are
    released (they go back to that region's pool at its next plan); work under way stays with it."""
    if not REGION_PATTERN.match(region or ""):
        raise DomainError.one("region", "region must be 1 to 64 letters, digits, '_' or '-'")
    crew = require_crew(session, crew_id)
    if crew.region == region:
        return crew
    unstarted = session.exec(select(Assignment).join(Ticket, col(Ticket.id) == col(Assignment.ticket_id)).where(
        col(Assignment.active).is_(True), Assignment.crew_id == crew_id,
        col(Ticket.status).not_in([s.value for s in IN_PROGRESS_STATUSES])))
    led: list[int] = []
    for assignment in unstarted:
        assignment.active = False
        session.add(assignment)
        if assignment.role == AssignmentRole.LEAD:
            led.append(assignment.ticket_id)
    release_assignments(session, led)  # a job it led loses its assisting crews too (re-planned whole)
    if crew.home_region is None:  # lent for the first time: remember where it belongs (lending cost, reasons)
        crew.home_region = crew.region
    crew.region = region
    session.add(crew)
    session.commit()
    return crew
