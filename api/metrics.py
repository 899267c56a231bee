"""`GET /metrics` in the Prometheus text format: what to watch during a storm.

* `gridcrew_requests_total{operation,status}` and `gridcrew_request_duration_seconds{operation}`: every HTTP
  request, labelled by the GraphQL root field it called (`Mutation.createTicket`; `multiple` for several,
  `invalid` for a document refused before running) or by its route (`/healthz`, ...; `other` for unknown paths),
  so the label set stays bounded whatever clients send.
* `gridcrew_graphql_errors_total{code}`: GraphQL errors by code (INTERNAL is the one to alert on).
* `gridcrew_websocket_connections`: open subscription sockets.
* `gridcrew_optimizer_solve_seconds{trigger}`: every optimizer solve of this process (manual, reoptimize, ...).
* `gridcrew_intake_batch_size`: reports written per intake transaction (dispatch/intake_queue.py); batches grow
  with the call rate.
* `gridcrew_replan_runs_total{outcome}`: background re-plans (dispatch/replanner.py): committed, unchanged,
  retried (lost a deadlock and ran again), failed (the committed plan stayed; alert when it grows), deferred (a
  plan of the region was committed less than the minimum interval ago, by any process).
* Read from the database at each scrape, so any worker answers for all: the notification outbox
  (`gridcrew_notification_outbox_pending`, `..._oldest_pending_seconds`, `..._failed`), the live-updates outbox
  (`gridcrew_live_outbox_backlog`: changes committed but not yet relayed; `..._oldest_seconds`) and sync lag
  (`gridcrew_sync_lag_seconds{stat}`: how long client mutations received in the last 5 minutes waited on the
  device, from its clock-corrected instant to arrival).

With several worker processes set PROMETHEUS_MULTIPROC_DIR to an empty directory shared by the workers: the
counters and histograms of all of them are then summed in every answer (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import anyio
from graphql import GraphQLResolveInfo
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.clock import as_utc, utcnow
from customers.models import Notification
from dispatch import intake_queue, planning, replanner
from mobile_sync.models import ClientMutation, SyncChange

OPERATION_KEY = "gridcrew.operations"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SOLVE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
SYNC_LAG_WINDOW = timedelta(minutes=5)
SYNC_LAG_ROWS = 5000

REQUESTS = Counter("gridcrew_requests", "HTTP requests by GraphQL root field (or route) and status",
                   ["operation", "status"])
LATENCY = Histogram("gridcrew_request_duration_seconds", "HTTP request latency by GraphQL root field (or route)",
                    ["operation"], buckets=LATENCY_BUCKETS)
GRAPHQL_ERRORS = Counter("gridcrew_graphql_errors", "GraphQL errors answered, by code", ["code"])
WEBSOCKETS = Gauge("gridcrew_websocket_connections", "open GraphQL subscription sockets",
                   multiprocess_mode="livesum")
SOLVES = Histogram("gridcrew_optimizer_solve_seconds", "optimizer solve time", ["trigger"], buckets=SOLVE_BUCKETS)


INTAKE_BATCHES = Histogram("gridcrew_intake_batch_size", "reports written per intake transaction (group commit)",
                           buckets=(1, 2, 4, 8, 16, 32, 64))
REPLANS = Counter("gridcrew_replan_runs", "background re-plans by outcome (committed, unchanged, retried, failed, "
                  "deferred)",
                  ["outcome"])


def observe_solve(_region: str, trigger: str, seconds: float) -> None:
    SOLVES.labels(trigger=trigger[:30]).observe(seconds)


def observe_replan(_region: str, outcome: str) -> None:
    REPLANS.labels(outcome=outcome[:30]).inc()


def observe_intake_batch(size: int) -> None:
    INTAKE_BATCHES.observe(size)


if observe_intake_batch not in intake_queue.BATCH_OBSERVERS:
    intake_queue.BATCH_OBSERVERS.append(observe_intake_batch)
if observe_solve not in planning.SOLVE_OBSERVERS:
    planning.SOLVE_OBSERVERS.append(observe_solve)
if observe_replan not in replanner.RUN_OBSERVERS:
    replanner.RUN_OBSERVERS.append(observe_replan)


def count_error(code: str | None) -> None:
    GRAPHQL_ERRORS.labels(code=(code or "NONE")[:30]).inc()


class OperationMiddleware:
    """graphql-core middleware: notes the root fields a request resolves, for the request metrics' label."""

    def resolve(self, next_: Any, root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        if info.path.prev is None and not info.field_name.startswith("__"):
            request = getattr(info.context, "request", None)
            scope = getattr(request, "scope", None)
            if isinstance(scope, dict) and scope.get("type") == "http":  # sockets are counted as connections
                scope.setdefault(OPERATION_KEY, []).append(f"{info.parent_type.name}.{info.field_name}")
        return next_(root, info, **args)


class RequestMetrics:
    """ASGI middleware timing every HTTP request and counting open websockets."""

    def __init__(self, app: ASGIApp, routes: Iterable[str]) -> None:
        self.app, self.routes = app, frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            WEBSOCKETS.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                WEBSOCKETS.dec()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            operation = self.operation(scope)
            LATENCY.labels(operation=operation).observe(time.perf_counter() - started)
            REQUESTS.labels(operation=operation, status=str(status)).inc()

    def operation(self, scope: Scope) -> str:
        fields = scope.get(OPERATION_KEY)
        if fields:
            return fields[0] if len(set(fields)) == 1 else "multiple"
        path = scope.get("path", "")
        if path == "/graphql":
            return "invalid"
        return path if path in self.routes else "other"


class DatabaseCollector(Collector):
    """Outbox backlogs and sync lag, read from the database at each scrape."""

    def __init__(self, engine: Engine, live: Any = None) -> None:
        self.engine, self.live = engine, live

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = utcnow()
        with Session(self.engine) as session:
            pending, oldest = session.exec(select(func.count(), func.min(Notification.created_at))
                                           .where(Notification.status == "PENDING")).one()
            failed = session.exec(select(func.count()).where(Notification.status == "FAILED")).one()
            last_seq = session.exec(select(func.max(SyncChange.seq))).one() or 0
            relayed = self._relayed(session)
            first_unrelayed = session.exec(select(func.min(SyncChange.at)).where(SyncChange.seq > relayed)).one()
            lags = [(as_utc(received) - as_utc(effective)).total_seconds() for received, effective in session.exec(
                select(ClientMutation.received_at, ClientMutation.effective_at)
                .where(col(ClientMutation.received_at) >= now - SYNC_LAG_WINDOW)
                .order_by(col(ClientMutation.id).desc()).limit(SYNC_LAG_ROWS))]
        yield GaugeMetricFamily("gridcrew_notification_outbox_pending", "customer notifications waiting to be sent",
                                value=pending)
        yield GaugeMetricFamily("gridcrew_notification_outbox_oldest_pending_seconds",
                                "age of the oldest notification waiting to be sent",
                                value=(now - as_utc(oldest)).total_seconds() if oldest is not None else 0.0)
        yield GaugeMetricFamily("gridcrew_notification_outbox_failed", "notifications given up after the last retry",
                                value=failed)
        yield GaugeMetricFamily("gridcrew_live_outbox_backlog", "changes committed but not yet relayed to subscribers",
                                value=max(0, last_seq - relayed))
        yield GaugeMetricFamily("gridcrew_live_outbox_oldest_seconds", "age of the oldest change not yet relayed",
                                value=(now - as_utc(first_unrelayed)).total_seconds() if first_unrelayed else 0.0)
        lag = GaugeMetricFamily("gridcrew_sync_lag_seconds", "device-to-server delay of client mutations received "
                                "in the last 5 minutes", labels=["stat"])
        lags.sort()
        lag.add_metric(["count"], len(lags))
        lag.add_metric(["p50"], lags[len(lags) // 2] if lags else 0.0)
        lag.add_metric(["p95"], lags[min(len(lags) - 1, int(len(lags) * 0.95))] if lags else 0.0)
        lag.add_metric(["max"], lags[-1] if lags else 0.0)
        yield lag

    def _relayed(self, session: Session) -> int:
        """The last change handed to subscribers: the Redis relay's row, else this process's hub."""
        if self.live is not None and getattr(self.live, "redis_url", None):
            row = session.connection().execute(text("SELECT value FROM sync_counter WHERE name = 'relay'")).first()
            return int(row[0]) if row is not None else 0
        if self.live is not None and self.live.started:
            return int(self.live.hub.delivered)
        return session.exec(select(func.max(SyncChange.seq))).one() or 0  # no relay here: nothing is waiting on it


def metrics_endpoint(engine: Engine, live: Any = None) -> Any:
    """The Starlette endpoint of /metrics for an app's database and live-updates relay."""
    database = CollectorRegistry(auto_describe=False)
    database.register(DatabaseCollector(engine, live))

    async def endpoint(_request: Request) -> Response:
        def render() -> bytes:
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                registry = CollectorRegistry()
                multiprocess.MultiProcessCollector(registry)
                process = generate_latest(registry)
            else:
                process = generate_latest(REGISTRY)
            return process + generate_latest(database)

        return Response(await anyio.to_thread.run_sync(render), media_type=CONTENT_TYPE_LATEST)

    return endpoint
