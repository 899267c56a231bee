"""Starlette routes of the browser pages: /board, /track, their static ES modules and /region.geojson.

The pages are plain HTML files and ES modules under web/static (no build step, nothing from a CDN); they talk
to the API like any client, over POST /graphql and graphql-transport-ws on the same origin. A Content Security
Policy limits them to this origin, so a page can't load or send anything elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from geo.areas import RegionConfig
from web.region import region_feature_collection

STATIC = Path(__file__).with_name("static")
STATIC_PREFIX = "/web"
PAGES = {"/board": "board.html", "/track": "track.html"}


def security_headers(host: str) -> dict[str, str]:
    """Same origin only: scripts, styles, fetches and the WebSocket of /graphql (`host` as the browser asked)."""
    policy = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              f"connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; form-action 'self'; "
              "frame-ancestors 'none'")
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def _page(filename: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return FileResponse(STATIC / filename, media_type="text/html; charset=utf-8",
                            headers=security_headers(request.headers.get("host", "")))

    return endpoint


class _Static(StaticFiles):
    """The page assets with the pages' headers, revalidated on every load (ETag) so a deployed change shows."""

    def file_response(self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(security_headers(Headers(scope=scope).get("host", "")))
        return response


def web_routes(region: RegionConfig) -> list[BaseRoute]:
    """The routes to add to the API app; `region` is the one intake uses (REGION_FILE or the demo)."""
    geojson = region_feature_collection(region)

    async def region_endpoint(_request: Request) -> JSONResponse:
        return JSONResponse(geojson, media_type="application/geo+json",
                            headers={"Cache-Control": "public, max-age=300"})

    routes: list[BaseRoute] = [Route(path, _page(name)) for path, name in PAGES.items()]
    routes.append(Route("/region.geojson", region_endpoint))
    routes.append(Mount(STATIC_PREFIX, app=_Static(directory=STATIC), name="web-static"))
    return routes
