"""A FastAPI application with Conveyor's dashboard and REST API mounted under
``/conveyor``, next to a route of its own that sends a job.

Run it against your database (``CONVEYOR_DATABASE_URL`` or ``DATABASE_URL``)::

    CONVEYOR_DASHBOARD_TOKEN=change-me uvicorn examples.fastapi_mount:app

then ``curl -X POST localhost:8000/signups -H 'content-type: application/json'
-d '{"email": "ann@example.com"}'`` and open http://localhost:8000/conveyor/.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from pydantic import BaseModel

from conveyor import AsyncConveyor
from conveyor.web import WebSettings, create_app

conveyor = AsyncConveyor()


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # The outer app's lifespan is the one the server runs: it starts and stops the
    # client that both the application and the mounted dashboard use.
    async with conveyor:
        yield


app = FastAPI(lifespan=lifespan)
app.mount("/conveyor", create_app(conveyor, settings=WebSettings(
    # Without a token, anyone who can reach the app can retry or delete jobs.
    token=os.environ.get("CONVEYOR_DASHBOARD_TOKEN"),
)))


class Signup(BaseModel):
    email: str


@app.post("/signups", status_code=202)
async def sign_up(signup: Signup) -> dict[str, str | None]:
    """Accept a signup; the welcome email goes out from a worker."""
    job_id = await conveyor.send("welcome-email", {"to": signup.email})
    return {"job": job_id}
