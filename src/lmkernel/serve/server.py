"""``lmkernel serve``: check the artifact, build the app, run uvicorn.

The artifact's card is read before uvicorn starts, so a wrong path or an unserved task is a
clean CLI error rather than a server that never becomes ready. uvicorn owns the signals: on
SIGTERM it stops accepting connections, lets in-flight requests finish (up to the request
deadline plus a margin), then runs the lifespan shutdown that drains the batcher.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .settings import ServeSettings, openmp_wait_policy, worker_layout


def serve(path: str | Path, *, host: str, port: int, settings: ServeSettings, access_log: bool = False) -> None:
    """Serve the artifact at ``path`` until SIGINT/SIGTERM.

    Raises:
        LmkError: the path is not an artifact, its task has no endpoint, or --precision does not fit it.
    """
    import uvicorn

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
    app = create_app(settings, task=task, load=load)
    config = uvicorn.Config(app, host=host, port=port, access_log=access_log, log_level="info",
                            timeout_graceful_shutdown=int(settings.timeout_s) + 5)
    uvicorn.Server(config).run()
