"""A real gridcrew server for the browser tests: a subprocess on a free port, on a migrated SQLite file holding
a small demo region; and where Debian's chromium is and what to do when it is missing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from api.auth import Role, issue_token
from core.clock import utcnow
from core.db import make_engine, migrate
from core.settings import Settings
from crews.roster import NewCrew, NewGenerator, create_crew, create_generator
from demo.generate import generate_demo
from dispatch.intake import IntakeContext, NewTicket, create_ticket

ROOT = Path(__file__).resolve().parents[2]
SECRET = "web-test-secret-" + "w" * 24
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The small demo: enough crews for every ticket, so the dispatcher's plan assigns work the test can follow.
DEMO_CREWS, DEMO_GENERATORS, DEMO_TICKETS = 10, 3, 36


def chromium_path() -> str | None:
    """CHROMIUM_PATH when set (and only it), else Debian's chromium."""
    if os.environ.get("CHROMIUM_PATH"):
        candidates = [os.environ["CHROMIUM_PATH"]]
    else:
        candidates = ["/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def browser_missing(reason: str) -> None:
    message = (f"{reason}: the browser tests need Debian's chromium (apt-get install -y chromium, or set "
               "CHROMIUM_PATH) and the playwright package (pip install -e '.[dev]'; never `playwright install`)")
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def artifacts_dir() -> Path:
    """Where screenshots go: $TEST_ARTIFACTS, else var/test-artifacts/ (gitignored)."""
    path = Path(os.environ.get("TEST_ARTIFACTS") or ROOT / "var" / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_small_demo(engine: Any, seed: int = 7) -> dict[str, int]:
    """The demo region's crews, generators and tickets in small numbers, loaded through the domain functions
    like `gridcrew demo`, but with no plan committed: the dispatcher in the test makes the first one."""
    from dispatch.rules import load_rules
    from geo.areas import load_region
    from geo.geocoding import make_geocoder

    now = utcnow()
    data = generate_demo(seed=seed, n_crews=DEMO_CREWS, n_generators=DEMO_GENERATORS, n_tickets=DEMO_TICKETS,
                         now=now)
    context = IntakeContext(rules=load_rules(), region=load_region(), geocoder=make_geocoder())
    with Session(engine, expire_on_commit=False) as session:
        for crew in data.crews:
            create_crew(session, NewCrew(name=crew.name, skills=crew.skills, home_lat=crew.home_lat,
                                         home_lng=crew.home_lng, shift_start=now - timedelta(hours=1),
                                         shift_end=now + timedelta(hours=11),
                                         can_tow_generator=crew.can_tow_generator, branch=crew.branch))
        for generator in data.generators:
            create_generator(session, NewGenerator(name=generator.name, capacity_kw=float(generator.capacity_kw),
                                                   lat=generator.lat, lng=generator.lng))
        for i, t in enumerate(data.tickets):
            create_ticket(session, context, NewTicket(
                kind=t.kind, channel=t.channel, summary=t.summary, description=t.description, address=t.address,
                lat=t.lat, lng=t.lng, priority=t.priority, required_skills=t.required_skills or None,
                needs_generator=t.needs_generator, critical_load_kw=t.critical_load_kw,
                customers_affected=t.customers_affected, account_number=t.account_number,
                contact_name=t.contact_name, contact_phone=t.contact_phone, preferred_channels=t.preferred_channels,
                reported_at=now - timedelta(minutes=t.reported_minutes_ago),
                client_request_id=f"web-demo-{seed}-{i}",
            ), source="dispatcher")
    return {"crews": len(data.crews), "generators": len(data.generators), "tickets": len(data.tickets)}


@dataclass
class Server:
    url: str
    database_url: str
    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path

    def token(self, role: Role = Role.DISPATCHER) -> str:
        return issue_token(role, subject="web-test", settings=self.settings)

    def gql(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                              headers=headers, timeout=30)
        body = response.json()
        assert response.status_code == 200 and not body.get("errors"), body
        return body["data"]

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@contextmanager
def running_server(directory: Path) -> Iterator[Server]:
    """`gridcrew serve` in a subprocess on a free port, on a migrated SQLite file holding the small demo."""
    database_url = f"sqlite:///{directory / 'web.sqlite'}"
    engine = make_engine(database_url)
    migrate(engine)
    load_small_demo(engine)
    engine.dispose()
    port = free_port()
    log = directory / "server.log"
    env = dict(os.environ, DATABASE_URL=database_url, SECRET_KEY=SECRET, GRIDCREW_ENV="test", LOG_LEVEL="WARNING")
    env.pop("REDIS_URL", None)
    env.pop("MQTT_URL", None)
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port",
                                    str(port), "--no-migrate", "--no-notify"], cwd=ROOT, env=env,
                                   stdout=sink, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", database_url, Settings(gridcrew_env="test", secret_key=SECRET),
                    process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {server.log_tail()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not come up: {server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
