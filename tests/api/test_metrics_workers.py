"""With several worker processes and PROMETHEUS_MULTIPROC_DIR, every worker's /metrics counts the requests of all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.auth import Role, issue_token
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "workers-test-secret-" + "x" * 32


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'workers.sqlite'}", SECRET_KEY=SECRET,
               GRIDCREW_ENV="test", LOG_LEVEL="WARNING", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
               PYTHONPATH=str(ROOT))
    env.pop("REDIS_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", "2",
                               "--no-notify"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # the server migrates, then starts two workers
            if server.poll() is not None:
                pytest.fail(f"server exited: {server.stderr.read().decode()[-2000:] if server.stderr else ''}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not answer /healthz")
        yield url, metrics_dir
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def me_count(text: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "gridcrew_requests_total" and s.labels.get("operation") == "Query.me")


def test_the_counts_of_every_worker_are_summed(two_workers: tuple[str, Path]) -> None:
    url, metrics_dir = two_workers
    token = issue_token(Role.DISPATCHER, settings=Settings(gridcrew_env="test", secret_key=SECRET))
    for _ in range(30):  # a new connection each time: the kernel spreads them over the workers
        with httpx.Client(base_url=url, timeout=30) as http:
            answer = http.post("/graphql", json={"query": "{ me { role } }"},
                               headers={"Authorization": f"Bearer {token}", "Connection": "close"})
            assert answer.json()["data"]["me"]["role"] == "DISPATCHER"
    counts = set()
    for _ in range(6):
        with httpx.Client(base_url=url, timeout=30) as http:
            counts.add(me_count(http.get("/metrics", headers={"Connection": "close"}).text))
    assert counts == {30.0}
    workers_counting = {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("counter_*.db")}
    assert len(workers_counting) == 2, "both workers answered requests"
