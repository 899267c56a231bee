"""A small network and its customers for the customer tests: feeder F1 with fuses A (T1, T2, T3) and B (T4),
ten customers on each transformer, a few hundred metres apart."""

from __future__ import annotations

from sqlmodel import Session

from customers.directory import import_customers, import_network
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.models import Ticket

NETWORK_CSV = """device_id,kind,parent_id
F1,FEEDER,
A,FUSE,F1
B,FUSE,F1
T1,TRANSFORMER,A
T2,TRANSFORMER,A
T3,TRANSFORMER,A
T4,TRANSFORMER,B
"""
# Transformer positions: T1..T3 along a street, T4 two streets away.
SPOTS = {"T1": (30.600, 114.300), "T2": (30.602, 114.300), "T3": (30.604, 114.300), "T4": (30.600, 114.306)}


def phone_of(transformer: str, n: int) -> str:
    return f"1390000{int(transformer[1]):02d}{n:02d}"


def customers_csv() -> str:
    lines = ["account_number,name,phone,lat,lng,feeder,transformer,critical,language,preferred_channels,quiet_hours"]
    for transformer, (lat, lng) in SPOTS.items():
        for n in range(10):
            language = "en" if n % 2 else "zh"
            lines.append(f"{transformer}-{n:02d},Customer {transformer}-{n},{phone_of(transformer, n)},"
                         f"{lat + n * 0.0001:.4f},{lng:.4f},F1,{transformer},no,{language},SMS,none")
    return "\n".join(lines) + "\n"


def build_world(session: Session) -> None:
    assert not import_network(session, NETWORK_CSV).errors
    assert not import_customers(session, customers_csv()).errors


def call(session: Session, context: IntakeContext, transformer: str, n: int, **extra: object) -> Ticket:
    lat, lng = SPOTS[transformer]
    values: dict[str, object] = dict(kind="FAULT_REPAIR", channel="HOTLINE", summary="家里停电了",
                                     lat=lat + n * 0.0001, lng=lng, account_number=f"{transformer}-{n:02d}",
                                     contact_phone=phone_of(transformer, n), preferred_channels=["SMS"])
    values.update(extra)
    return create_ticket(session, context, NewTicket(**values), "dispatcher").ticket  # type: ignore[arg-type]
