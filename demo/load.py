"""Loads the generated demo region into a database through the same domain functions the API uses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.clock import utcnow
from crews.roster import NewCrew, NewGenerator, create_crew, create_generator
from demo.generate import generate_demo
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.planning import optimize_and_store
from dispatch.rules import load_rules
from geo.areas import load_region
from geo.geocoding import make_geocoder


def _load_customers(session: Session, context: IntakeContext, data: object) -> int:
    """The network and a few thousand customers, callers included, so reports link and outages group."""
    from customers.demo_network import Caller, generate_network
    from customers.directory import import_customers, import_network

    callers = [Caller(t.account_number, t.contact_phone, t.lat, t.lng, t.preferred_channels)
               for t in data.tickets]  # type: ignore[attr-defined]
    network_csv, customers_csv = generate_network(context.region, callers, seed=data.seed)  # type: ignore[attr-defined]
    import_network(session, network_csv)
    report = import_customers(session, customers_csv)
    return report.created + report.updated


def load_demo(engine: Engine, seed: int = 7, plan_seconds: float = 5.0,
              progress: Callable[[str], None] = lambda _line: None) -> str:
    """Crews, generators and tickets of the demo region, then a committed first dispatch plan."""
    now = utcnow()
    data = generate_demo(seed=seed, now=now)
    context = IntakeContext(rules=load_rules(), region=load_region(), geocoder=make_geocoder())
    with Session(engine, expire_on_commit=False) as session:
        for crew in data.crews:
            create_crew(session, NewCrew(name=crew.name, skills=crew.skills, home_lat=crew.home_lat,
                                         home_lng=crew.home_lng, shift_start=crew.shift_start,
                                         shift_end=crew.shift_end, can_tow_generator=crew.can_tow_generator,
                                         branch=crew.branch))
        progress(f"  {len(data.crews)} crews")
        for generator in data.generators:
            create_generator(session, NewGenerator(name=generator.name, capacity_kw=float(generator.capacity_kw),
                                                   lat=generator.lat, lng=generator.lng))
        progress(f"  {len(data.generators)} mobile generators")
        customers = _load_customers(session, context, data)
        progress(f"  {customers} customers on a generated network (feeder -> fuse -> transformer)")
        unlocated = 0
        for i, t in enumerate(data.tickets):
            result = create_ticket(session, context, NewTicket(
                kind=t.kind, channel=t.channel, summary=t.summary, description=t.description, address=t.address,
                lat=t.lat, lng=t.lng, priority=t.priority, required_skills=t.required_skills or None,
                needs_generator=t.needs_generator, critical_load_kw=t.critical_load_kw,
                customers_affected=t.customers_affected, account_number=t.account_number,
                contact_name=t.contact_name, contact_phone=t.contact_phone, preferred_channels=t.preferred_channels,
                reported_at=now - timedelta(minutes=t.reported_minutes_ago), client_request_id=f"demo-{seed}-{i}",
            ), source="customer" if t.channel in {"APP", "WECHAT", "WEB", "SMS"} else "dispatcher")
            unlocated += result.ticket.lat is None
            if (i + 1) % 100 == 0:
                progress(f"  {i + 1}/{len(data.tickets)} tickets")
        progress(f"  optimising the first dispatch plan ({plan_seconds:g} s)...")
        plan = optimize_and_store(session, time_limit_s=plan_seconds, commit=True, source="system", trigger="demo")
    return (f"demo region loaded: {len(data.crews)} crews, {len(data.generators)} generators, "
            f"{len(data.tickets)} tickets ({unlocated} without location); plan {plan.id} committed with "
            f"{plan.late_tickets} late, {len(plan.unassigned)} unassigned, {plan.total_travel_minutes:.0f} min travel")
