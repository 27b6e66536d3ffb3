"""A FastAPI application that hands slow work to Conveyor: ``POST /reports`` sends a
job and answers at once with its id; ``GET /jobs/{id}`` reports how it is going
(state, progress, and the output or error once it is done).

Run the API and, in another terminal, a worker for the same client
(``CONVEYOR_DATABASE_URL`` or ``DATABASE_URL`` names the database)::

    uvicorn examples.fastapi_jobs:app
    conveyor worker examples.fastapi_jobs:conveyor

then ``curl -X POST localhost:8000/reports -H 'content-type: application/json'
-d '{"customer_id": "c-1", "months": 3}'`` and ``curl localhost:8000/jobs/<id>``.
"""

# No `from __future__ import annotations`: pydantic reads these models' annotations at
# run time.
import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from conveyor import AsyncConveyor, Job

conveyor = AsyncConveyor()


@conveyor.task("monthly-report")
async def build_report(job: Job) -> dict[str, Any]:
    """The worker's side: one step per month, reporting progress as it goes."""
    months = job.data["months"]
    totals = []
    for month in range(months):
        await asyncio.sleep(0.5)  # stands in for the real queries
        totals.append({"month": month + 1, "total": 100 * (month + 1)})
        job.progress(100 * (month + 1) / months, f"month {month + 1} of {months}")
    return {"customer_id": job.data["customer_id"], "months": totals}


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with conveyor:
        yield


app = FastAPI(lifespan=lifespan)


class ReportRequest(BaseModel):
    customer_id: str
    months: int = Field(ge=1, le=24)


class JobStatus(BaseModel):
    id: str
    state: str
    progress: dict[str, Any]
    output: Any = None
    error: dict[str, Any] | None = None


@app.post("/reports", status_code=202)
async def request_report(request: ReportRequest) -> dict[str, str | None]:
    """Send the report job; the client polls ``GET /jobs/{id}`` for the result."""
    job_id = await build_report.send(request.model_dump(), retry_limit=2)
    return {"job": job_id}


@app.get("/jobs/{job_id}")
async def job_status(job_id: uuid.UUID) -> JobStatus:
    """Where the job is: ``created``, ``active`` (with progress), ``completed``
    (with its output), ``retry`` or ``failed`` (with the error)."""
    job = await conveyor.get_job(str(job_id))
    if job is None:
        raise HTTPException(status_code=404, detail=f"no job {job_id}")
    return JobStatus(id=job.id, state=job.state.value, progress=dict(job.progress),
                     output=job.output, error=job.error)
