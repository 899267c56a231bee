"""The gridcrew command: tokens, schema, migrations and the demo region."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
from pathlib import Path

from sqlmodel import Session, func, select
from typer.testing import CliRunner

from api.auth import Role, principal_from_token
from api.cli import app, worker_app
from core.db import make_engine
from core.settings import get_settings
from crews.models import Crew, MobileGenerator
from demo.load import load_demo
from dispatch.models import DispatchPlan, Ticket

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def test_token_prints_a_signed_token_for_the_role() -> None:
    result = runner.invoke(app, ["token", "--role", "crew", "--crew", "7", "--device", "phone-1"])
    assert result.exit_code == 0
    principal = principal_from_token(result.stdout.strip(), get_settings())
    assert (principal.role, principal.crew_id, principal.device_id) == (Role.CREW, 7, "phone-1")


def test_a_crew_token_needs_a_crew() -> None:
    result = runner.invoke(app, ["token", "--role", "crew"])
    assert result.exit_code != 0 and "crew_id" in result.output


def test_schema_prints_sdl() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0 and "type Query" in result.stdout and "createTicket" in result.stdout


def test_a_served_app_keeps_what_it_started_with_out_of_the_collectors_way() -> None:
    # A full garbage collection stops every thread; in the server it walks only what requests leave behind.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # (a worker configures logging for the process)
    gc.unfreeze()
    try:
        worker_app()
        assert gc.get_freeze_count() > 10_000  # the modules, the schema, the region, the engine
    finally:
        gc.unfreeze()
        root.handlers[:], root.level = handlers, level


def test_the_served_app_registers_every_session_hook_before_any_request() -> None:
    # A hook registered by a module's first import while another thread commits fails that commit: the app's
    # module registers them all as it is imported (checked in a fresh interpreter, where nothing else has).
    check = ("import sys, api.app; "
             "print(all(m in sys.modules for m in ('customers.updates', 'mobile_sync.changes')))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "True"


def test_the_demo_region_loads_crews_generators_tickets_and_a_committed_plan(tmp_path: Path) -> None:
    from core.db import migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'demo.sqlite'}")
    migrate(engine)
    lines: list[str] = []
    summary = load_demo(engine, plan_seconds=1, progress=lines.append)
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Crew)).one() == 30
        assert session.exec(select(func.count()).select_from(MobileGenerator)).one() == 6
        assert session.exec(select(func.count()).select_from(Ticket)).one() == 300
        kinds = set(session.exec(select(Ticket.kind)).all())
        plan = session.exec(select(DispatchPlan)).one()
    assert kinds == {"FAULT_REPAIR", "EMERGENCY", "COMPLAINT", "INQUIRY", "REPORT", "SUGGESTION"}
    assert plan.status == "COMMITTED"
    assert "300 tickets" in summary and any("tickets" in line for line in lines)
    engine.dispose()
