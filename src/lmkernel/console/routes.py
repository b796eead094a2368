"""/api: every console endpoint (each needs the key when keys are set); runs, jobs, playground, monitor."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..errors import LmkError
from ..serve.http_errors import ApiError
from . import chat, monitor_api, playground, runs_api, served, studies
from .app import Console, authorized
from .specs import check, problems

jobs_router = APIRouter()


class SpecIn(BaseModel):
    text: str = Field(max_length=256 * 1024)
    name: str = "check"
    data: bool = False


@jobs_router.post("/spec/check")
def check_spec(body: SpecIn, console: Console = Depends(authorized)) -> dict[str, Any]:
    """``lmkernel validate`` on the editor's text: ok with notes, or each problem with its line."""
    try:
        notes = check(body.text, console.base, console.root / "check", data=body.data)
    except LmkError as e:
        return {"ok": False, "problems": problems(e)}
    return {"ok": True, "notes": notes}


@jobs_router.get("/jobs")
def list_jobs(console: Console = Depends(authorized)) -> list[dict[str, Any]]:
    return console.jobs.all()


@jobs_router.post("/jobs")
def start_job(body: SpecIn, console: Console = Depends(authorized)) -> dict[str, Any]:
    return _job(lambda: console.jobs.start(body.name, body.text))


@jobs_router.post("/jobs/{name}/stop")
def stop_job(name: str, console: Console = Depends(authorized)) -> dict[str, Any]:
    return _job(lambda: console.jobs.stop(name))


@jobs_router.post("/jobs/{name}/resume")
def resume_job(name: str, console: Console = Depends(authorized)) -> dict[str, Any]:
    return _job(lambda: console.jobs.resume(name))


def _job(action) -> dict[str, Any]:
    try:
        return action()
    except LmkError as e:
        raise ApiError(409 if "already" in e.what or "still" in e.what else 422, e.render(), param=e.where) from e


@jobs_router.get("/system")
def system(console: Console = Depends(authorized)) -> dict[str, Any]:
    """What runs where (the page says so): the device a run started here trains on, the cores it may use,
    and the torch threads of the playground's models in this process."""
    import torch

    cuda = torch.cuda.is_available()
    return {"device": "cuda" if cuda else "cpu", "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "cpus": os.cpu_count(), "threads": console.threads or torch.get_num_threads(),
            "folder": str(console.root), "base": str(console.base)}


@jobs_router.get("/settings")
def settings(console: Console = Depends(authorized)) -> dict[str, Any]:
    """What the page starts from (no torch import, unlike /system): the server given by console --server."""
    return {"server": console.server, "server_key": bool(console.server_key)}


api_router = APIRouter()
for sub in (runs_api.router, jobs_router, playground.router, chat.router, monitor_api.router,
            served.router, studies.router):
    api_router.include_router(sub)
