"""The app factory: settings and a predictor loader in, a FastAPI app out.

Nothing happens at import. The lifespan starts loading the model in a background thread and
returns at once, so /healthz answers and /readyz says 503 "loading" while weights load and a
warm-up batch runs; then the batcher's worker starts and /readyz turns 200. On shutdown
(uvicorn stops on SIGTERM after in-flight requests finish) the batcher drains its queue.
Tests pass their own ``load`` (a tiny artifact or a fake predictor).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from .. import __version__
from ..errors import LmkError
from .admission import Admission, calibrate, count_tokens
from .batcher import Batcher
from .deps import Service
from .guards import Drain, GuardMiddleware
from .http_errors import install_error_handlers
from .limits import ApiKeys, RateLimiter
from .metrics import Metrics, MetricsMiddleware
from .predictor import Predictor
from .routes import serving_for, system
from .schemas import add_body_schemas
from .settings import ServeSettings, parse_rate, worker_layout

log = logging.getLogger("lmkernel.serve")


def create_app(settings: ServeSettings, *, task: str, load: Callable[[], Predictor], knowledge: Any = None,
               router: APIRouter | None = None) -> FastAPI:
    """An app serving ``task``; ``load()`` returns the predictor (runs in a background thread).
    ``knowledge`` (serve.knowledge.Knowledge) adds /v1/embeddings, and with an index /v1/search and grounded
    chat completions; it is loaded in the same thread. ``router``: the endpoints, when they are not a task's
    (an application's: ``lmkernel app serve``).

    Raises:
        LmkError: no endpoint serves ``task``.
    """
    limiter = RateLimiter(parse_rate(settings.rate_limit)) if settings.rate_limit else None
    service = Service(settings, ApiKeys(settings.api_keys), limiter, Metrics(),
                      auth_failures=RateLimiter(settings.max_auth_failures / 60), drain=Drain(settings.drain_s),
                      knowledge=knowledge)
    from .monitoring import monitor_for

    service.monitor = monitor_for(task, settings, service.metrics, own_router=router is not None)  # bad rules: here

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # daemon: a SIGTERM during a slow load must not wait for it
        threading.Thread(target=_load, args=(service, load), name="lmkernel-load", daemon=True).start()
        try:
            yield
        finally:
            service.status = "stopping"
            if service.batcher is not None:
                service.batcher.close(timeout=settings.timeout_s)
            if service.engine is not None:
                service.engine.close(timeout=settings.timeout_s)
            if service.monitor is not None:
                service.monitor.close()

    app = FastAPI(title="lmkernel", version=__version__, lifespan=lifespan,
                  description="Serve an lmkernel artifact. Errors: {\"error\": {\"message\", \"type\", \"param\"}}.")
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(GuardMiddleware, hosts=settings.allowed_hosts, origins=settings.allowed_origins,
                       drain=service.drain)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)  # outermost: counts the guards' refusals too
    app.include_router(system.router)
    task_router = router if router is not None else serving_for(task).router
    app.include_router(task_router)
    if knowledge is not None:
        from .routes import knowledge as routes

        if task_router is not routes.embeddings_router:
            app.include_router(routes.embeddings_router)
        if knowledge.has_index:
            app.include_router(routes.search_router)
        if knowledge.answers_by_qa:
            from .routes.grounded import qa_router

            app.include_router(qa_router)
    _document_bodies(app)
    return app


def _document_bodies(app: FastAPI) -> None:
    """Routes parse their bodies themselves (limits.parse_body); name those models in the schema too."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = add_body_schemas(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_PATH = re.compile(r"(?<![\w.~])(?:[A-Za-z]:)?[/\\][^\s'\"`,;()<>]*")


def without_paths(text: str) -> str:
    """``text`` with each filesystem path cut to its last part (``…/config.json``): responses name no
    server paths (the log has them whole)."""
    def last(m: re.Match) -> str:
        parts = [p for p in re.split(r"[/\\]", m.group(0)) if p]
        return "…/" + parts[-1] if parts else m.group(0)

    return _PATH.sub(last, text)


def _load(service: Service, load: Callable[[], Predictor]) -> None:
    """Load, warm up, start the batcher; on failure /readyz reports why and stays 503."""
    s = service.settings
    try:
        if service.knowledge is not None:
            service.knowledge.load()
        predictor = load()
        if service.knowledge is not None:
            service.knowledge.attach(predictor)
        predictor.warm_up()
        from .content_guard import build_guard

        service.guard = build_guard(predictor, s.guard)
        admission = calibrate(predictor, s.timeout_s) if s.admission == "on" else None
        if getattr(predictor, "kind", "batch") == "generate":  # continuous batching of decode steps
            worker = predictor.make_engine(max_batch=s.max_batch, max_queue=s.max_queue,
                                           on_step=_steps(service.metrics, admission))
        else:  # dynamic batching of whole forward passes
            workers, _ = worker_layout(s, generation=False)
            run = predictor if admission is None else \
                admission.timed(predictor, lambda items: count_tokens(predictor, items), workers)
            worker = Batcher(run, max_batch=s.max_batch, max_wait_ms=s.max_wait_ms, max_queue=s.max_queue,
                             length=len, on_start=predictor.setup_thread, on_batch=service.metrics.on_batch,
                             group_by_length=not getattr(predictor, "unpadded", False), workers=workers)
    except LmkError as e:
        service.status, service.detail = "failed", without_paths(e.what)
        log.error("could not load the model: %s", e.render())
        return
    except Exception as e:  # a damaged artifact must show in /readyz and the log, not vanish in a thread
        service.status, service.detail = "failed", without_paths(f"{type(e).__name__}: {e}")
        log.exception("could not load the model")
        return
    if service.status == "stopping":
        return
    worker.start()
    service.metrics.track_queue(lambda: worker.depth)
    if isinstance(worker, Batcher):
        service.batcher = worker
    else:
        service.metrics.track_running(lambda: worker.running)
        service.engine = worker
    service.predictor = predictor
    service.admission = admission
    service.status = "ready"
    log.info("model %s ready (%s, torch threads %s each, OMP_WAIT_POLICY %s%s)", predictor.name,
             f"{worker.workers} workers" if isinstance(worker, Batcher) else "1 engine thread",
             getattr(predictor, "threads", None) or "default", os.environ.get("OMP_WAIT_POLICY", "default"),
             ", unpadded batches" if getattr(predictor, "unpadded", False) else "")


def _steps(metrics: Metrics, admission: Admission | None) -> Callable[[int, float, int], None]:
    """The engine's per-step callback: metrics, and admission control's decode rate."""
    if admission is None:
        return metrics.on_decode_step

    def on_step(rows: int, seconds: float, tokens: int) -> None:
        metrics.on_decode_step(rows, seconds, tokens)
        admission.on_decode_step(rows, seconds, tokens)

    return on_step
