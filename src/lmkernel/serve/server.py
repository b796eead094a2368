"""``lmkernel serve``: check the artifact, build the app, run uvicorn.

The artifact's card is read before uvicorn starts, so a wrong path or an unserved task is a
clean CLI error rather than a server that never becomes ready. uvicorn owns the signals: on
SIGTERM it stops accepting connections and lets in-flight requests finish; ``--drain-s`` later the
app ends those still running with an error (guards.Drain), then the lifespan shutdown drains the
batcher. uvicorn runs on the protocol of transport.py (header/body deadlines, size and connection
caps); X-Forwarded-For is believed only from ``--trusted-proxies``; the access log shows no query
strings (a client may put a key there).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any

from .settings import ServeSettings, openmp_wait_policy, worker_layout


def serve(path: str | Path, *, host: str, port: int, settings: ServeSettings, access_log: bool = False,
          knowledge: Any = None) -> None:
    """Serve the artifact at ``path`` until SIGINT/SIGTERM; ``knowledge`` (serve.knowledge.Knowledge) adds an
    index and/or an embedding model.

    Raises:
        LmkError: the path is not an artifact, its task has no endpoint, --precision does not fit it, or the
            --knowledge index is missing or made for another kind of model.
    """
    from ..artifact import find_model_dir, read_card
    from .app import create_app
    from .predictor import resolve_precision
    from .routes import load_predictor, serving_for
    from .runtime import check_runtime, runtime_model_dir

    model_dir = find_model_dir(path)
    card = read_card(model_dir)
    task = card["task"]
    serving = serving_for(task, where=str(model_dir))
    resolve_precision(settings.precision, card["weights"])  # refuse bf16 on int8/ONNX before starting
    check_runtime(settings.runtime, model_dir, card, settings.precision)
    if settings.guard is not None or card.get("guard") is not None:  # a bad guard fails before the server starts
        from ..trust.guardrun import guard_spec

        guard_spec(card, Path(settings.guard) if settings.guard else None)

    generation = getattr(serving.predictor, "kind", "") == "generate"
    _, threads = worker_layout(settings, generation)
    policy = openmp_wait_policy(generation)
    if policy is not None:  # read once, when torch loads OpenMP, which has not happened yet in `lmkernel serve`
        os.environ.setdefault("OMP_WAIT_POLICY", policy)

    def load():  # in the background: /healthz answers while an ONNX copy is built, /readyz once it is loaded
        import torch

        torch.set_num_threads(threads)  # ONNX Runtime sessions take torch's thread count
        served = runtime_model_dir(model_dir, settings.runtime)
        options = {"prepack": settings.prepack}
        return load_predictor(served, max_input_tokens=settings.max_input_tokens,
                              precision=settings.precision, threads=threads, **options)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    if settings.allowed_hosts is None:
        from .guards import default_allowed_hosts

        settings = dataclasses.replace(settings, allowed_hosts=default_allowed_hosts(host))
    if knowledge is not None:
        knowledge.check(generation=generation, qa=task == "qa")
    app = create_app(settings, task=task, load=load, knowledge=knowledge)
    __import__("lmkernel.serve.routes.explain", fromlist=["_"]).mount(app, model_dir, task)  # POST /v1/explain
    build_server(app, host=host, port=port, settings=settings, access_log=access_log).run()


DRAIN_MARGIN_S = 5  # after --drain-s, time for the error events to go out before uvicorn cancels what is left


def build_server(app: Any, *, host: str, port: int, settings: ServeSettings, access_log: bool = False,
                 log_level: str = "info") -> Any:
    """A uvicorn server for ``app`` (from create_app) with the limits of ``settings``; ``.run()`` serves."""
    import uvicorn

    from .transport import TransportLimits, protocol_for

    class DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            app.state.service.drain.begin()  # the clock of --drain-s starts with uvicorn's graceful shutdown
            await super().shutdown(sockets)

    config = uvicorn.Config(app, host=host, port=port, access_log=access_log, log_level=log_level,
                            http=protocol_for(TransportLimits.of(settings)),
                            proxy_headers=bool(settings.trusted_proxies),
                            forwarded_allow_ips=list(settings.trusted_proxies) or None,
                            timeout_graceful_shutdown=math.ceil(settings.drain_s) + DRAIN_MARGIN_S)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuery) for f in access.filters):
        access.addFilter(RedactQuery())
    return DrainingServer(config)


class RedactQuery(logging.Filter):
    """Access-log lines without query strings: ``/v1/models?key=...`` is logged as ``/v1/models?…``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?…", *args[3:])
        return True
