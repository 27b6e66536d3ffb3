"""``job_links``: a job's edges in a flow, as the API and the dashboard read them.

The clients' ``get_dependencies`` and ``get_dependents`` give the jobs alone; the
web face also shows each edge's ref, failure policy and whether it settled, which
the ``links`` operation reads. This is the one place that runs it.
"""

from __future__ import annotations

from conveyor._ops import dependencies
from conveyor._ops.dependencies import Link
from conveyor.client import AsyncConveyor

__all__ = ["Link", "job_links"]


async def job_links(cv: AsyncConveyor, job_id: str, *, dependents: bool = False,
                    limit: int | None = None, after: str | None = None) -> list[Link]:
    """The edges of the job: what it waits for (or waited for), or with
    ``dependents`` what waits for it, oldest job first; the first ``limit`` after
    the job ``after``."""
    return await cv.run_operation(dependencies.links(
        cv.context, job_id, dependents=dependents, limit=limit, after=after))
