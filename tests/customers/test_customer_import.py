"""Customer and network imports from CSV: good rows kept, every broken row reported with its line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlmodel import Session, select

from customers.directory import import_customers, import_network, load_network
from customers.models import Customer, NetworkDevice

HEADER = "account_number,name,phone,lat,lng,feeder,transformer,critical,language,preferred_channels,quiet_hours\n"


def test_good_rows_are_kept_and_each_broken_row_is_reported(session: Session) -> None:
    text = HEADER + "\n".join([
        "A1,王女士,13800000001,30.6,114.3,F1,T1,no,zh,SMS;WECHAT,22:00-07:00",  # line 2: fine
        ",无账号,13800000002,30.6,114.3,F1,T1,no,zh,SMS,",  # 3: no account
        "A3,Bob,12ab,91,114.3,F1,T1,maybe,fr,PIGEON,late",  # 4: five problems
        "A4,医院,13800000004,30.61,114.31,F1,T2,yes,zh,SMS,none",  # 5: fine, critical, no quiet hours
        "A5,Extra,13800000005,30.6,114.3,F1,T1,no,zh,SMS,,surplus",  # 6: a cell too many
    ]) + "\n"
    report = import_customers(session, text)
    assert (report.created, report.updated) == (2, 0)
    assert {e.line for e in report.errors} == {3, 4, 6}
    assert {e.column for e in report.errors if e.line == 4} == {"phone", "lat/lng", "critical", "language",
                                                                 "preferred_channels", "quiet_hours"}
    hospital = session.exec(select(Customer).where(Customer.account_number == "A4")).one()
    assert hospital.critical and hospital.quiet_hours == "" and hospital.preferred_channels == ["SMS"]
    again = import_customers(session, HEADER + "A1,王女士,13800000001,30.6,114.3,F1,T9,no,en,APP,\n")
    assert (again.created, again.updated, again.errors) == (0, 1, [])
    moved = session.exec(select(Customer).where(Customer.account_number == "A1")).one()
    session.refresh(moved)
    assert (moved.transformer, moved.language, moved.preferred_channels) == ("T9", "en", ["APP"])


def test_a_file_without_the_account_column_is_refused_whole(session: Session) -> None:
    report = import_customers(session, "name,phone\nx,1\n")
    assert report.created == 0 and report.errors[0].line == 1


def test_the_network_imports_with_parents_checked_and_feeders_derived(session: Session) -> None:
    report = import_network(session, "device_id,kind,parent_id\nF1,FEEDER,\nA,FUSE,F1\nT1,TRANSFORMER,A\n"
                                     "T2,TRANSFORMER,NOPE\nT3,BUCKET,A\nS1,SECTION,\n")
    assert report.created == 3
    assert {(e.line, e.column) for e in report.errors} == {(5, "parent_id"), (6, "kind"), (7, "parent_id")}
    assert session.get(NetworkDevice, "T1").feeder == "F1"  # type: ignore[union-attr]
    import_customers(session, HEADER + "C1,,13800000009,30.6,114.3,F1,T1,no,zh,SMS,\n")
    network = load_network(session, "F1")
    assert network is not None and network.customers_under("F1") == 1 and network.ancestors("T1") == ["A", "F1"]


def test_the_cli_imports_a_file_and_prints_the_row_errors(tmp_path: Path) -> None:
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text(HEADER + "A1,x,13800000001,30.6,114.3,F1,T1,no,zh,SMS,\nA2,x,bad,30.6,114.3,F1,T1,no,zh,SMS,\n",
                        encoding="utf-8")
    database = tmp_path / "cli.sqlite"
    result = subprocess.run([sys.executable, "-m", "api.cli", "import", "customers", str(csv_file)],
                            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                            env={"DATABASE_URL": f"sqlite:///{database}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "1 created, 0 updated, 1 rows rejected" in result.stdout
    assert "customers.csv:3: phone:" in result.stderr


def test_notify_once_sends_what_is_due_through_the_log_sender(tmp_path: Path) -> None:
    from sqlmodel import Session as PlainSession

    from core.db import make_engine, migrate
    from customers.notify import Change, Recipient, enqueue

    database = tmp_path / "notify.sqlite"
    engine = make_engine(f"sqlite:///{database}")
    migrate(engine)
    with PlainSession(engine) as session:
        enqueue(session, Change("ETR_CHANGED", "i1", "x", {"etr": "12:00"}),
                [Recipient("c1", "en", {"SMS": "13800000001"}, quiet_hours="")])
        session.commit()
    engine.dispose()
    result = subprocess.run([sys.executable, "-m", "api.cli", "notify", "--once"],
                            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                            env={"DATABASE_URL": f"sqlite:///{database}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "notifications: 1 sent, 0 to retry, 0 failed" in result.stdout
