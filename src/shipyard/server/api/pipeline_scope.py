"""Records a request creates inside a remote pipeline task are linked to that pipeline run.

A client running a pipeline task sends ``X-Shipyard-Pipeline-Run`` with the run's id. When
the caller started that run and it has not ended, the request is served with
``CURRENT_PIPELINE_RUN`` set, so the lineage hook links the runs, dataset versions and model
versions it creates to the pipeline run, as in a local project. A header naming another
user's run, an ended run or no run is refused: nobody can attach records to a run that is
not theirs.
"""

from __future__ import annotations

import re

from fastapi import Request

from shipyard.domain.pipelines import CURRENT_PIPELINE_RUN, PIPELINE_RUN_HEADER
from shipyard.errors import InvalidArgumentError
from shipyard.server.api.context import ApiContext, Caller
from shipyard.services.pipeline_intake import PipelineIntake

__all__ = ["pipeline_scope"]

_ID = re.compile(r"[0-9a-f]{32}")
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


async def pipeline_scope(request: Request) -> None:
    """Serve a write sent from inside a pipeline task within that run (a dependency).

    Async on purpose, as ``authorize``: the context variable it sets must reach the route's
    thread, which runs in a copy of this coroutine's context.

    Raises:
        InvalidArgumentError: for a header that is not a run id.
        PipelineRunNotFoundError, PermissionDeniedError, ConflictError: for a run that does
            not exist, is another user's, or has ended.
    """
    run_id = request.headers.get(PIPELINE_RUN_HEADER)
    who: Caller | None = getattr(request.state, "caller", None)
    if run_id is None or who is None or request.method in _READS:
        return
    if not _ID.fullmatch(run_id):
        raise InvalidArgumentError(
            f"the {PIPELINE_RUN_HEADER} header must be a pipeline run id (32 hex digits)"
        )
    context: ApiContext = request.app.state.context
    PipelineIntake(context.project.metadata, context.transfers, who.identity.user).require_open(
        run_id
    )
    CURRENT_PIPELINE_RUN.set(run_id)
