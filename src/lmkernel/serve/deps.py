"""The per-app state routers share, and the typed dependencies that hand it to them.

``Service`` lives on ``app.state`` (created by the app factory, filled by the lifespan), never
at module level, so every test builds an isolated app. The system routes declare what
they need (``ServiceDep``, ``Caller``); the inference routes call ``ready_service`` first thing,
which runs the checks in order: key, rate, readiness.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from .admission import Admission, count_tokens
from .batcher import Batcher, BatcherClosed, QueueFull
from .http_errors import ApiError
from .limits import ApiKeys, RateLimiter
from .metrics import Metrics
from .predictor import Predictor
from .settings import ServeSettings


@dataclass(eq=False)
class Service:
    """Everything one server process holds: settings, checks, metrics, and once loaded the model."""

    settings: ServeSettings
    keys: ApiKeys
    limiter: RateLimiter | None
    metrics: Metrics
    auth_failures: RateLimiter | None = None  # missing/wrong API keys per client address (--max-auth-failures)
    drain: Any = None  # guards.Drain: the requests in flight, ended --drain-s after shutdown begins
    predictor: Predictor | None = None
    batcher: Batcher | None = None
    engine: Any = None  # generation.engine.Engine for causal-LM artifacts (imported lazily: torch)
    admission: Admission | None = None  # None: --admission off (or not ready yet)
    guard: Any = None  # trust.guard.Guard: --guard FILE or the run's guard: section (loaded with the model)
    knowledge: Any = None  # serve.knowledge.Knowledge: --knowledge IDX / --embedder (loaded with the model)
    monitor: Any = None  # serve.monitoring.ServeMonitor: windows, alert rules, audit log (classification)
    status: str = "loading"  # loading -> ready | failed; stopping on shutdown
    detail: str | None = None

    async def infer(self, items: list[Any], tokens: int | None = None) -> list[Any]:
        """Run items (``tokens`` in all) through the batcher within the request deadline.

        Raises:
            ApiError: 413 / 429 when admission control estimates it past the deadline (before any compute),
                429 + Retry-After when the queue is full, 503 while stopping, 504 past the deadline.
        """
        assert self.batcher is not None, "infer() before the model is ready (bug, please report)"
        ticket = None
        if self.admission is not None:
            ids = bool(items) and not isinstance(items[0], str)
            ticket = self.admission.admit_forward(count_tokens(self.predictor, items) if tokens is None else tokens,
                                                  len(items), max(map(len, items)) if ids else None)
        try:
            return await asyncio.wait_for(self.batcher.submit(items), self.settings.timeout_s)
        except QueueFull as e:
            raise ApiError(429, f"server busy: the queue is full; retry after {e.retry_after}s",
                           type_="overloaded", headers={"Retry-After": str(e.retry_after)}) from e
        except BatcherClosed as e:
            raise ApiError(503, "server is shutting down", headers={"Retry-After": "1"}) from e
        except TimeoutError as e:
            raise ApiError(504, f"request took longer than the server deadline of {self.settings.timeout_s:g}s "
                           "(--timeout-s); send fewer texts or retry later") from e
        finally:
            if ticket is not None:
                self.admission.release(ticket)

    def submit_generation(self, prompt: list[int], params: Any, sink: Any, stream: bool = False) -> Any:
        """Queue a generation in the engine (a ``stream`` only has to start within the deadline).

        Raises:
            ApiError: 413 / 429 when admission control estimates it past the deadline, 429 + Retry-After
                when the wait queue is full, 503 while stopping.
        """
        assert self.engine is not None, "submit_generation() without an engine (bug, please report)"
        if self.admission is not None:
            self.admission.check_generation(len(prompt), params.max_new_tokens, stream,
                                            self.engine.pending_prompt_tokens)
        try:
            return self.engine.submit(prompt, params, sink)
        except QueueFull as e:
            raise ApiError(429, f"server busy: {self.engine.max_queue} requests already wait; retry after "
                           f"{e.retry_after}s", type_="overloaded", headers={"Retry-After": str(e.retry_after)}) from e
        except BatcherClosed as e:
            raise ApiError(503, "server is shutting down", headers={"Retry-After": "1"}) from e


# Dependencies are async on purpose: FastAPI runs sync ones in a thread pool, a hop per request.
async def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def check_caller(request: Request, service: Service) -> str:
    """Authenticate (401) and take a rate-limit token (429); returns the caller's identity."""
    who = service.keys.caller(request, service.auth_failures)
    if service.limiter is not None:
        service.limiter.check(who)
    return who


async def caller(request: Request, service: ServiceDep) -> str:
    return check_caller(request, service)


Caller = Annotated[str, Depends(caller)]


def ready_service(request: Request) -> Service:
    """The service once its model is loaded and warmed (503 + Retry-After before), after the caller's
    key (401) and rate (429) checks.

    The inference routes call this themselves rather than declaring dependencies: FastAPI's solver
    ran a quarter of the event loop's time per /v1/classify request (cProfile, with the model
    replaced by an instant one), and the event loop shares the model's cores.
    """
    service: Service = request.app.state.service
    check_caller(request, service)
    if service.status != "ready" or service.predictor is None:
        detail = f": {service.detail}" if service.detail else ""
        raise ApiError(503, f"model is {service.status}{detail}", headers={"Retry-After": "5"})
    return service
