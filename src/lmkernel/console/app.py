"""The console's FastAPI app: static page, JSON API under /api, the serving app's keys and Host checks.

The page itself (/, /static/*) carries no data and is served to anyone that passes the Host check; every
/api call needs the Bearer key when keys are set, which the page asks for once and keeps in sessionStorage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse

from ..serve.guards import Drain, GuardMiddleware, default_allowed_hosts
from ..serve.http_errors import ApiError, install_error_handlers
from ..serve.limits import ApiKeys, RateLimiter

STATIC = Path(__file__).parent / "static"
PAGES = {"index.html": "text/html", "app.js": "text/javascript", "i18n.js": "text/javascript",
         "app.css": "text/css"}
MAX_AUTH_FAILURES_PER_MINUTE = 20


@dataclass
class Console:
    """What the routes share: the runs folder, the folder relative spec paths start from, loaded models."""

    root: Path
    base: Path
    keys: ApiKeys
    failures: RateLimiter
    models: dict[str, Any] = field(default_factory=dict)  # run id -> lmkernel.load(run)
    engines: dict[str, Any] = field(default_factory=dict)  # run id -> (predictor, engine): playground chat
    jobs: Any = None
    threads: int | None = None  # torch threads of the playground's models (None: torch's default, all cores)
    server: str | None = None  # a running `lmkernel serve` (console --server): the playground's and monitor's default
    server_key: str | None = None  # its API key; sent to that URL only


def console_of(request: Request) -> Console:
    return request.app.state.console


def authorized(request: Request) -> Console:
    """Dependency of every /api route: the Bearer key when the console has keys (401 / 429 otherwise)."""
    console = console_of(request)
    console.keys.caller(request, console.failures)
    return console


def create_console(root: Path, *, base: Path | None = None, api_keys: frozenset[str] = frozenset(),
                   host: str = "127.0.0.1", allowed_hosts: tuple[str, ...] | None = None,
                   threads: int | None = None, server: str | None = None, server_key: str | None = None) -> FastAPI:
    """The console over the runs under ``root``; ``base``: where relative paths in a new spec start (cwd);
    ``threads``: torch threads for the playground's models; ``server``: a running ``lmkernel serve`` the
    playground and monitor use by default (``server_key``: its API key)."""
    from .jobs import Jobs
    from .routes import api_router

    root = Path(root).resolve()
    console = Console(root=root, base=Path(base or Path.cwd()).resolve(), keys=ApiKeys(api_keys),
                      failures=RateLimiter(MAX_AUTH_FAILURES_PER_MINUTE / 60), threads=threads,
                      server=server, server_key=server_key)
    console.jobs = Jobs(root, console.base)
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        from .chat import close_engines

        yield
        console.jobs.close()  # runs started here stop with the console (resumable from their checkpoint)
        close_engines(console)

    app = FastAPI(title="lmkernel console", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.console = console
    install_error_handlers(app)
    hosts = allowed_hosts if allowed_hosts is not None else default_allowed_hosts(host)
    app.add_middleware(GuardMiddleware, hosts=hosts, origins=(), drain=Drain(1.0))
    app.include_router(_page_router())
    app.include_router(api_router, prefix="/api", dependencies=[Depends(authorized)])
    return app


def _page_router() -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return _page("index.html")

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        return _page(name)

    return router


def _page(name: str) -> FileResponse:
    if name not in PAGES:  # a fixed list: no path from the request reaches the filesystem
        raise ApiError(404, f"no page {name!r}")
    return FileResponse(STATIC / name, media_type=PAGES[name], headers={"Cache-Control": "no-cache"})
