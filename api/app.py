"""The Starlette application: GraphQL over HTTP and WebSocket at /graphql, and /healthz."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from ariadne.asgi import GraphQL
from ariadne.asgi.handlers import GraphQLHTTPHandler, GraphQLTransportWSHandler
from ariadne.explorer import ExplorerGraphiQL, ExplorerHttp405
from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

# Every session hook (customer updates, then the change log) is registered here, before a request or a
# background thread commits: registered by a module's first import while another thread commits, they fail
# that commit ("deque mutated during iteration": SQLAlchemy iterates the hooks as they are added).
import customers.updates  # noqa: F401
import mobile_sync.changes  # noqa: F401
from api.auth import principal_from_header
from api.context import RequestContext, Services
from api.errors import format_error
from api.graphql.schema import schema
from api.limits import BodySizeLimit, limit_rules
from api.metrics import OperationMiddleware, RequestMetrics, metrics_endpoint
from api.permissions import PermissionMiddleware
from api.query_cache import DocumentCache
from api.ratelimit import RateLimiter
from api.revocation import Revocations
from core.db import get_engine
from core.settings import Settings, get_settings
from dispatch.intake import IntakeContext
from dispatch.intake_queue import IntakeQueue
from dispatch.replanner import Replanner
from dispatch.rules import load_rules
from geo.areas import load_region
from geo.geocoding import make_geocoder
from mobile_sync.live import LiveUpdates
from web.pages import web_routes

CONTEXTS_KEY = "gridcrew.contexts"
PRINCIPAL_KEY = "gridcrew.principal"
# Ariadne logs every GraphQL error with a trace; expected ones (permissions, validation) are not news, and
# api.errors.format_error logs the unexpected ones with a reference.
logging.getLogger("gridcrew.ariadne").setLevel(logging.CRITICAL)


class GraphQLHandler(GraphQLHTTPHandler):
    """Ariadne's HTTP handler, answering a malformed body as a GraphQL error document (status 400)."""

    async def handle_request(self, request: Request) -> Response:
        response = await super().handle_request(request)
        if response.status_code == 400 and isinstance(response, PlainTextResponse):
            message = bytes(response.body).decode(errors="replace")
            return JSONResponse({"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]},
                                status_code=400)
        return response

    async def create_json_response(self, request: Request, result: dict, success: bool) -> Response:
        # Errors raised while executing fields (permissions, resolvers) carry a path: a 200 like any answer.
        # A request that never reached execution (syntax, validation, variable values) is a 400.
        errors = result.get("errors") or []
        rejected = bool(errors) and result.get("data") is None and not any("path" in e for e in errors)
        return JSONResponse(result, status_code=400 if rejected else 200)


def build_services(settings: Settings, engine: Engine | None = None, background: bool = False) -> Services:
    """What requests share; `background` starts the re-planning worker (the server does, tests mostly not)."""
    engine = engine or get_engine()
    intake = IntakeContext(rules=load_rules(settings.rules_file), region=load_region(settings.region_file),
                           geocoder=make_geocoder(settings.geocoder_url))
    replanner = Replanner(engine, min_interval_s=settings.replan_min_interval_seconds) if background else None
    services = Services(engine=engine, intake=intake, max_page_size=settings.max_page_size,
                        replanner=replanner, settings=settings,
                        sync_max_batch=settings.sync_max_batch,
                        live=LiveUpdates(engine, redis_url=settings.redis_url, mqtt_url=settings.mqtt_url),
                        rate_limiter=RateLimiter(settings.public_rate_limit_per_minute, settings.redis_url),
                        revocations=Revocations(engine, settings.revocation_refresh_seconds),
                        intake_queue=IntakeQueue(engine, intake, max_batch=settings.intake_max_batch,
                                                 writers=settings.intake_writers,
                                                 linger_seconds=settings.intake_linger_ms / 1000))
    if background:  # supervision (督办), risk-level tasks, callbacks, hotspot keywords: started by the lifespan
        from quality.supervision import make_supervisor

        services.supervisor = make_supervisor(engine, settings, intake.region)
    return services


class CloseContexts:
    """Closes the database sessions of the GraphQL contexts a request opened, after its response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[CONTEXTS_KEY] = []
        try:
            await self.app(scope, receive, send)
        finally:
            for context in scope[CONTEXTS_KEY]:
                context.close()


def create_app(settings: Settings | None = None, services: Services | None = None) -> Starlette:
    settings = settings or get_settings()
    services = services or build_services(settings, background=True)
    revoked = services.revocations.is_revoked if services.revocations is not None else None

    def context_value(request: Any, _data: Any = None) -> RequestContext:
        # A websocket authenticates in its connection_init payload (on_connect) or with its upgrade headers.
        principal = request.scope.get(PRINCIPAL_KEY) or principal_from_header(
            request.headers.get("authorization"), settings, revoked)
        context = RequestContext(services, principal, request)
        request.scope.setdefault(CONTEXTS_KEY, []).append(context)
        return context

    def on_connect(websocket: Any, payload: Any) -> None:
        if isinstance(payload, dict):
            header = payload.get("Authorization") or payload.get("authorization")
            if header is None and payload.get("token"):
                header = f"Bearer {payload['token']}"
            if header is not None:
                websocket.scope[PRINCIPAL_KEY] = principal_from_header(str(header), settings, revoked)

    documents = DocumentCache()
    graphql_app = CloseContexts(GraphQL(
        schema.graphql_schema,
        query_parser=documents.parse,
        query_validator=documents.validate,
        context_value=context_value,
        debug=False,
        logger="gridcrew.ariadne",
        introspection=not settings.production,  # production: no schema browsing by strangers
        validation_rules=limit_rules(settings.max_query_depth, settings.max_query_complexity),
        explorer=ExplorerHttp405() if settings.production else ExplorerGraphiQL(title="gridcrew"),
        error_formatter=format_error,
        http_handler=GraphQLHandler(middleware=[OperationMiddleware(), PermissionMiddleware()]),
        websocket_handler=GraphQLTransportWSHandler(on_connect=on_connect),
    ))

    async def healthz(_request: Request) -> JSONResponse:
        try:
            with services.engine.connect() as connection:
                connection.execute(text("select 1"))
        except Exception as exc:  # noqa: BLE001  (report, don't crash: this is what health checks are for)
            return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "database": services.engine.dialect.name})

    async def outages_geojson(_request: Request) -> JSONResponse:
        # Public storm-centre data: grid cells with counts, cached (customers.outage_map), cheap under load.
        from customers.outage_map import outage_map_for

        return JSONResponse(outage_map_for(services.engine).feature_collection(),
                            headers={"Cache-Control": "public, max-age=30"}, media_type="application/geo+json")

    async def root(_request: Request) -> RedirectResponse:
        return RedirectResponse("/graphql")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if services.live is not None:
            await services.live.start()
        supervisor = services.supervisor
        if supervisor is not None:
            supervisor.start()
        try:
            yield
        finally:
            if supervisor is not None:
                supervisor.stop()
            if services.replanner is not None:  # first: a re-plan it finishes still reaches the relay below
                services.replanner.stop()
            if services.live is not None:
                await services.live.stop()

    routes = [
        Route("/", root),
        Route("/healthz", healthz),
        Route("/outages.geojson", outages_geojson),
        Route("/graphql", graphql_app, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql_app),
        *web_routes(services.intake.region),  # /board, /track, their assets, /region.geojson
    ]
    if settings.metrics_enabled:
        routes.append(Route("/metrics", metrics_endpoint(services.engine, services.live)))
    app = Starlette(lifespan=lifespan, routes=routes, middleware=[
        Middleware(RequestMetrics, routes=[getattr(route, "path", "") for route in routes]),
        Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes),
    ])
    app.state.services = services
    return app
