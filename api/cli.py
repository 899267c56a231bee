"""The `gridcrew` command: serve, migrate, schema, demo, token, import, notify, register-device, device-token,
simulate-crews."""

from __future__ import annotations

import gc
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from core.settings import Settings
    from mobile_sync.simulator import SimConfig, SimReport

app = typer.Typer(help="gridcrew: utility field repair backend", no_args_is_help=True, add_completion=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate", help="alembic upgrade head first")] = True,
    notify: Annotated[bool, typer.Option("--notify/--no-notify",
                                         help="send customer notifications from this process")] = True,
    graceful_timeout: Annotated[int, typer.Option(help="seconds a stopping worker gives open requests and "
                                                       "subscriptions before closing them")] = 30,
) -> None:
    """Serve the API (GraphQL at /graphql, health at /healthz, metrics at /metrics).

    With `--workers N` uvicorn runs N processes on one socket; they share state only through the database
    (and Redis, when REDIS_URL is set, for live updates and rate limits), so any number of them, on any number
    of hosts, may serve one database. See docs/operations.md.
    """
    import shutil
    import tempfile

    import uvicorn

    from api.logs import configure_logging
    from core.db import migrate
    from core.settings import get_settings

    if workers < 1:
        raise typer.BadParameter("--workers must be at least 1")
    settings = get_settings()
    configure_logging(settings.log_level)
    if workers > 1 and settings.database_url.startswith("sqlite"):
        typer.echo("warning: several workers on SQLite queue every write behind one lock; use PostgreSQL",
                   err=True)
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # /metrics of any worker then counts the requests of all of them (prometheus_client multiprocess mode).
        metrics_dir = tempfile.mkdtemp(prefix="gridcrew-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    if migrate_first:
        migrate()
    typer.echo(f"gridcrew API on http://{host}:{port}/graphql ({workers} worker{'s' if workers > 1 else ''})")
    if notify:  # one sender thread in the serving process (the uvicorn supervisor when there are workers)
        import api.app  # noqa: F401 - the session hooks, before the thread commits (see there)
        from core.db import get_engine
        from customers.delivery import NotificationWorker

        NotificationWorker(get_engine()).start()
    try:
        uvicorn.run("api.cli:worker_app", factory=True, host=host, port=port, workers=workers, log_config=None,
                    log_level=settings.log_level.lower(), access_log=False,
                    timeout_graceful_shutdown=graceful_timeout,
                    # longer than the idle timeout of the usual proxies and load balancers (60 s), so an idle
                    # connection is closed by them, never by us while they send a request on it
                    timeout_keep_alive=65)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def worker_app() -> Any:
    """The ASGI app of one `serve` worker. Workers are fresh processes: their logging is configured here like
    the parent's (JSON lines at LOG_LEVEL), else they would log as plain text and at Python's default level."""
    from api.app import create_app
    from api.logs import configure_logging
    from core.settings import get_settings

    configure_logging(get_settings().log_level)
    app = create_app()
    # What a started server holds (modules, the schema, the region, the engine) lives as long as it does; out of
    # the collector's sight, a full collection walks only what requests left behind. It had walked ~230 000
    # objects, 100-125 ms with every thread stopped, five times in 25 s of the intake bench.
    gc.freeze()
    return app


@app.command("migrate")
def migrate_command(revision: Annotated[str, typer.Argument()] = "heads") -> None:
    """Bring the database (DATABASE_URL) to the newest schema with Alembic."""
    from core.db import get_engine, migrate

    migrate(revision=revision)
    typer.echo(f"migrated {get_engine().url.render_as_string(hide_password=True)} to {revision}")


@app.command()
def schema() -> None:
    """Print the served GraphQL schema as SDL."""
    from api.graphql.schema import schema_sdl

    typer.echo(schema_sdl())


@app.command()
def token(
    role: Annotated[str, typer.Option(help="admin, dispatcher or crew")] = "dispatcher",
    crew: Annotated[int | None, typer.Option(help="crew id (crew tokens)")] = None,
    device: Annotated[str | None, typer.Option(help="device id (crew tokens)")] = None,
    hours: Annotated[float | None, typer.Option(help="lifetime in hours")] = None,
) -> None:
    """Print a signed bearer token."""
    from datetime import timedelta

    from api.auth import Role, issue_token

    try:
        chosen = Role(role.upper())
        if chosen == Role.PUBLIC:
            raise ValueError("public callers need no token")
        typer.echo(issue_token(chosen, crew_id=crew, device_id=device,
                               ttl=timedelta(hours=hours) if hours else None))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    database: Annotated[str, typer.Option(help="SQLite file of the demo")] = "var/demo.sqlite",
    fresh: Annotated[bool, typer.Option("--fresh/--keep", help="start from an empty database")] = True,
    serve_api: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Migrate an embedded SQLite file, load the demo region, serve it and print the URL and a token."""
    from pathlib import Path

    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(database + suffix).unlink(missing_ok=True)
    os.environ["DATABASE_URL"] = f"sqlite:///{Path(database).resolve()}"
    from api.auth import Role, issue_token
    from core.db import get_engine, migrate
    from core.settings import get_settings
    from demo.load import load_demo

    get_settings.cache_clear()
    migrate()
    summary = load_demo(get_engine(), seed=seed, progress=typer.echo)
    typer.echo(summary)
    typer.echo(f"\ndispatcher token:\n{issue_token(Role.DISPATCHER, subject='demo-dispatcher')}\n")
    if serve_api:
        serve(host=host, port=port, workers=1, migrate_first=False)


import_app = typer.Typer(help="import customers or the network from CSV", no_args_is_help=True)
app.add_typer(import_app, name="import")


def _import(kind: str, path: str) -> None:
    from pathlib import Path

    from sqlmodel import Session

    from core.db import get_engine, migrate
    from customers.directory import import_customers, import_network

    file = Path(path)
    if not file.is_file():
        raise typer.BadParameter(f"no such file: {path}")
    migrate()
    with Session(get_engine(), expire_on_commit=False) as session:
        text = file.read_text(encoding="utf-8-sig")
        report = import_customers(session, text) if kind == "customers" else import_network(session, text)
    for error in report.errors:
        typer.echo(f"{file.name}:{error.line}: {error.column or '-'}: {error.message}", err=True)
    typer.echo(f"{kind}: {report.summary()}")
    if report.errors:
        raise typer.Exit(code=1 if not (report.created or report.updated) else 0)


@import_app.command("customers")
def import_customers_command(path: Annotated[str, typer.Argument(help="CSV: account_number,name,phone,email,lat,"
                                                                       "lng,feeder,transformer,critical,language,"
                                                                       "preferred_channels,quiet_hours")]) -> None:
    """Create or update customers by account number; every broken row is reported with its line."""
    _import("customers", path)


@import_app.command("network")
def import_network_command(
        path: Annotated[str, typer.Argument(help="CSV: device_id,kind,parent_id[,lat,lng]")]) -> None:
    """Network devices: transformer -> fuse or line section -> feeder."""
    _import("network", path)


@app.command()
def notify(
    once: Annotated[bool, typer.Option("--once/--loop", help="one round, or keep running")] = False,
    interval: Annotated[float, typer.Option(help="seconds between rounds")] = 1.0,
) -> None:
    """Send due customer notifications (and planned-outage notices) through the configured sender."""
    import time

    from core.db import get_engine, migrate
    from customers.delivery import make_sender, run_once

    migrate()
    sender = make_sender()
    while True:
        stats = run_once(get_engine(), sender)
        if once or stats.handled:
            typer.echo(f"notifications: {stats.sent} sent, {stats.retrying} to retry, {stats.failed} failed")
        if once:
            return
        time.sleep(interval)


def _quality_context() -> tuple:
    from core.settings import get_settings
    from dispatch.rules import load_rules
    from geo.areas import load_region
    from quality.rules import RulesError, load_quality_settings, load_risk_rules

    settings = get_settings()
    try:
        return (load_rules(settings.rules_file), load_region(settings.region_file),
                load_risk_rules(settings.risk_rules_file), load_quality_settings(settings.quality_settings_file))
    except (RulesError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command()
def supervise(
    once: Annotated[bool, typer.Option("--once/--loop", help="one pass (for cron), or keep running")] = False,
    interval: Annotated[float | None, typer.Option(help="seconds between passes (default: quality settings)")] = None,
) -> None:
    """Supervision (督办): escalate steps about to breach or breached, risk-level tasks, callbacks, keywords."""
    import time

    from core.db import get_engine, migrate
    from quality.supervision import run_once

    _rules, region, risk_rules, quality = _quality_context()
    migrate()
    while True:
        counts = run_once(get_engine(), region, risk_rules, quality)
        typer.echo("supervision: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if once:
            return
        time.sleep(interval if interval is not None else quality.supervision_interval_seconds)


@app.command()
def report(
    from_: Annotated[str, typer.Option("--from", help="start date or time (ISO), inclusive")],
    to: Annotated[str, typer.Option("--to", help="end date or time (ISO), exclusive; a date means its end")],
    out: Annotated[str, typer.Option(help="directory for the CSV and HTML files")] = "var/report",
    branch: Annotated[str | None, typer.Option(help="one branch only")] = None,
) -> None:
    """Write the service-quality report of a window as CSV and a one-page HTML with charts."""
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from sqlmodel import Session

    from core.db import get_engine, migrate
    from core.errors import DomainError
    from quality.report import write_report

    def parse(value: str, name: str, end: bool) -> datetime:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise typer.BadParameter(f"{name}: '{value}' is not an ISO date or time") from exc
        if end and len(value) == 10:  # a date: up to the end of that day
            moment += timedelta(days=1)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    rules, region, _risk, quality = _quality_context()
    start, end = parse(from_, "--from", False), parse(to, "--to", True)
    migrate()
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            files = write_report(session, rules, region, quality, start, end, Path(out), branch=branch)
        except DomainError as exc:
            raise typer.BadParameter(str(exc)) from exc
        session.commit()
    typer.echo(f"wrote {files.summary_csv}, {files.branches_csv} and {files.html}")


@app.command("register-device")
def register_device_command(
    crew: Annotated[int, typer.Option(help="crew id")],
    device: Annotated[str, typer.Option(help="device id, e.g. a UUID")],
    name: Annotated[str | None, typer.Option(help="a name people recognise")] = None,
    hours: Annotated[float | None, typer.Option(help="token lifetime in hours")] = None,
) -> None:
    """Register a crew device and print its token (bound to the crew and the device)."""
    _device_token(crew, device, name, hours, register=True)


@app.command("device-token")
def device_token_command(
    device: Annotated[str, typer.Option(help="a registered device id")],
    hours: Annotated[float | None, typer.Option(help="token lifetime in hours")] = None,
) -> None:
    """Print a new token for a registered device."""
    _device_token(None, device, None, hours, register=False)


def _device_token(crew: int | None, device: str, name: str | None, hours: float | None, register: bool) -> None:
    from datetime import timedelta

    from sqlmodel import Session

    from api.auth import Role, issue_token
    from core.db import get_engine, migrate
    from core.errors import DomainError
    from mobile_sync.models import Device
    from mobile_sync.protocol import register_device

    migrate()
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            if register:
                found = register_device(session, crew or 0, device, name)
            else:
                found = session.get(Device, device)
                if found is None:
                    raise DomainError.one("device", f"device {device} is not registered")
        except DomainError as exc:
            raise typer.BadParameter(str(exc)) from exc
        typer.echo(issue_token(Role.CREW, subject=f"device:{found.id}", crew_id=found.crew_id, device_id=found.id,
                               ttl=timedelta(hours=hours) if hours else None))


@app.command("simulate-crews")
def simulate_crews(
    devices: Annotated[int, typer.Option(help="simulated crew devices")] = 10,
    offline_rate: Annotated[float, typer.Option(help="share of time a device is offline")] = 0.3,
    duration: Annotated[float, typer.Option(help="seconds of field work")] = 60.0,
    url: Annotated[str | None, typer.Option(help="a running server (same DATABASE_URL and SECRET_KEY); "
                                                 "none: serve one here")] = None,
    subscribers: Annotated[int, typer.Option(help="customers following tickets live")] = 0,
    seed: Annotated[int, typer.Option()] = 7,
    processes: Annotated[int | None, typer.Option(help="OS processes driving the devices; default: half the "
                                                       "CPUs, at most one per 100 devices")] = None,
) -> None:
    """Drive simulated crew devices against the server, then check from the database that every change was
    applied exactly once; exits 1 unless lost = duplicated = refused = 0."""
    from mobile_sync.simulator import SimConfig, default_processes

    config = SimConfig(devices=devices, offline_rate=offline_rate, duration=duration, subscribers=subscribers,
                       seed=seed, processes=processes or default_processes(devices))
    if not 0 <= offline_rate < 1 or devices < 1 or duration < 0 or (processes is not None and processes < 1):
        raise typer.BadParameter("devices >= 1, 0 <= offline-rate < 1, duration >= 0, processes >= 1")
    report = run_simulation(config, url)
    for line in report.lines():
        typer.echo(line)
    for line in report.details[:20]:
        typer.echo(line, err=True)
    if report.lost or report.duplicated or report.refused:
        raise typer.Exit(code=1)


def run_simulation(config: SimConfig, url: str | None = None, engine: Engine | None = None,
                   settings: Settings | None = None) -> SimReport:
    """The simulator against `url`, or against a server started here in a thread (same database)."""
    import socket
    import threading
    import time

    import uvicorn

    from api.app import build_services, create_app
    from api.auth import Role, issue_token
    from core.db import get_engine, migrate
    from core.settings import get_settings
    from mobile_sync.simulator import run

    settings = settings or get_settings()
    engine = engine or get_engine()
    migrate(engine)

    def token_for(crew_id: int, device_id: str) -> str:
        return issue_token(Role.CREW, crew_id=crew_id, device_id=device_id, settings=settings)

    if url is not None:
        return run(url, engine, config, token_for)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app_ = create_app(settings, build_services(settings, engine))
    server = uvicorn.Server(uvicorn.Config(app_, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        return run(f"http://127.0.0.1:{port}", engine, config, token_for)
    finally:
        server.should_exit = True
        thread.join(15)


if __name__ == "__main__":
    app()
