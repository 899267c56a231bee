"""The crew-device simulator against a real server: offline spells, lost answers, replays and reordering, and
still every change applied exactly once (checked from the database)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from api.cli import run_simulation
from core.settings import Settings
from mobile_sync.simulator import SimConfig


def test_simulated_devices_lose_nothing_and_duplicate_nothing(db: Engine, settings: Settings) -> None:
    config = SimConfig(devices=4, offline_rate=0.3, duration=3.0, step_seconds=0.1, lost_answer_rate=0.3,
                       duplicate_rate=0.5, subscribers=2, seed=11)
    report = run_simulation(config, engine=db, settings=settings)

    assert report.details == [] and (report.lost, report.duplicated, report.refused) == (0, 0, 0)
    per_job = 3 + config.gps_fixes + 1  # EN_ROUTE, ON_SITE, RESOLVED, the GPS fixes, a note
    assert report.mutations == config.devices * config.jobs_per_device * per_job
    assert report.answers_lost > 0  # the replays really happened
    assert report.field_to_subscriber  # customers saw field changes live


def test_devices_driven_from_several_processes_are_checked_together(db: Engine, settings: Settings) -> None:
    config = SimConfig(devices=4, offline_rate=0.3, duration=2.0, step_seconds=0.1, lost_answer_rate=0.3,
                       subscribers=2, seed=5, processes=2)
    report = run_simulation(config, engine=db, settings=settings)

    assert report.processes == 2
    assert report.details == [] and (report.lost, report.duplicated, report.refused) == (0, 0, 0)
    assert report.mutations == config.devices * config.jobs_per_device * (4 + config.gps_fixes)
    assert report.pushes == len(report.push_seconds) > 0
    assert report.field_to_subscriber  # customers of both processes saw field changes live
