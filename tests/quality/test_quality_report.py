"""The report (CSV + one HTML page with SVG charts) and the `gridcrew report` / `gridcrew supervise` commands."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

import core.db
from api.cli import app
from core.clock import utcnow
from core.settings import get_settings
from dispatch.rules import ServiceRules
from geo.areas import RegionConfig
from quality.models import QualityTask
from quality.report import write_report
from quality.rules import QualitySettings

runner = CliRunner()


@pytest.fixture
def cli_db(db: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Point the CLI's process-wide engine at the test database for one test."""
    monkeypatch.setitem(core.db._engines, (get_settings().database_url, None), db)
    return db


def test_the_report_writes_csv_and_an_html_page_with_charts(
        session: Session, make_ticket: object, service_rules: ServiceRules, region: RegionConfig,
        quality_settings: QualitySettings, tmp_path: Path) -> None:
    now = utcnow()
    make_ticket(created_at=now - timedelta(days=2), summary="电压低 low voltage", kind="COMPLAINT")  # type: ignore
    make_ticket(created_at=now - timedelta(days=1), branch=None, lat=None, lng=None)  # type: ignore[operator]
    files = write_report(session, service_rules, region, quality_settings, now - timedelta(days=7), now,
                         tmp_path / "out", now=now)
    page = files.html.read_text(encoding="utf-8")
    assert page.count("<svg") == 4 and "Tickets by kind" in page and "电压低" in page
    assert 'class="flag"' in page  # the default unit holds a ticket without location
    with files.branches_csv.open(encoding="utf-8") as handle:
        branches = {row["branch"]: row for row in csv.DictReader(handle)}
    assert branches["CITY"]["tickets"] == "1" and branches[quality_settings.default_unit.code]["flagged"] == "true"
    with files.summary_csv.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["section", "key", "metric", "value"]
    assert ["overall", "", "ticket_count", "2"] in rows and ["kind", "COMPLAINT", "tickets", "1"] in rows


def test_report_command_refuses_a_window_that_ends_before_it_starts(cli_db: Engine, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--from", "2026-11-30", "--to", "2026-11-01", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "is after" in result.output


def test_report_command_writes_the_files(cli_db: Engine, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--from", "2026-11-01", "--to", "2026-11-30", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in tmp_path.iterdir()} == {"service_summary.csv", "service_branches.csv",
                                                     "service_report.html"}


def test_supervise_once_escalates_and_says_what_it_did(cli_db: Engine, session: Session,
                                                       make_ticket: object) -> None:
    make_ticket(respond_by=utcnow() - timedelta(minutes=3))  # type: ignore[operator]
    result = runner.invoke(app, ["supervise", "--once"])
    assert result.exit_code == 0, result.output
    assert "overdue 1, escalations 2" in result.output
    assert len(session.exec(select(QualityTask)).all()) == 2
