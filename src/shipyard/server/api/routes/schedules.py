"""Schedules: definitions stored for remote clients, and claims for remote schedulers.

A client loads a schedule's pipeline target where it runs and checks the parameters
against it; the server checks every field of the definition again
(``ScheduleDefinition.parse``: names, target text, trigger, policy, parameters as a JSON
object) and stores it, audited as the caller. The server never loads or runs a target.

Remote schedulers claim due schedules here with the same compare-and-set as local ones
(``SqlLeaseBook``), so each due run is launched once however many schedulers run; a lease
is recorded under ``USER:OWNER`` so only the caller's own scheduler renews or releases it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from shipyard.domain.ids import utcnow
from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import (
    NamePath,
    ScheduleBody,
    ScheduleChangeBody,
    ScheduleClaimBody,
    ScheduleLeaseBody,
    ScheduleReleaseBody,
)
from shipyard.services.schedule_book import ScheduleChange, ScheduleDefinition, SqlScheduleBook
from shipyard.services.schedule_leases import Claim, SqlLeaseBook

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["schedules"])
Who = Annotated[Caller, Depends(caller)]


def _book(request: Request, who: Caller) -> SqlScheduleBook:
    project = request.app.state.context.project
    return SqlScheduleBook(project.metadata, project.audit, user=who.identity.user)


def _leases(request: Request) -> SqlLeaseBook:
    context: ApiContext = request.app.state.context
    return SqlLeaseBook(context.project.metadata)


def _owner(who: Caller, owner: str) -> str:
    return f"{who.identity.user}:{owner}"


@router.get("/schedules")
def list_schedules(request: Request, who: Who) -> JSONResponse:
    """Every schedule, by name."""
    return JSONResponse([s.to_dict() for s in _book(request, who).list()])


@router.post("/schedules", status_code=201)
def create_schedule(request: Request, body: ScheduleBody, who: Who) -> JSONResponse:
    """Store a schedule the client checked; 409 if the name is taken, 422 if a field is bad."""
    definition = ScheduleDefinition.parse(
        body.name,
        body.pipeline,
        body.target,
        cron=body.cron,
        every=body.every,
        params=body.params,
        missed=body.missed,
        enabled=body.enabled,
    )
    created = _book(request, who).create(definition, body.now)
    return JSONResponse(created.to_dict(), status_code=201)


@router.get("/schedules/{name}")
def get_schedule(request: Request, name: NamePath, who: Who) -> JSONResponse:
    """One schedule, with its lease if a scheduler holds it."""
    return JSONResponse(_book(request, who).get(name).to_dict())


@router.patch("/schedules/{name}")
def update_schedule(
    request: Request, name: NamePath, body: ScheduleChangeBody, who: Who
) -> JSONResponse:
    """Change a schedule; what the body leaves out stays as it was."""
    change = ScheduleChange.parse(
        pipeline=body.pipeline,
        target=body.target,
        cron=body.cron,
        every=body.every,
        params=body.params,
        missed=body.missed,
        enabled=body.enabled,
    )
    return JSONResponse(_book(request, who).change(name, change, body.now).to_dict())


@router.delete("/schedules/{name}")
def remove_schedule(request: Request, name: NamePath, who: Who) -> JSONResponse:
    """Delete a schedule (the runs it launched stay); what was removed."""
    return JSONResponse(_book(request, who).delete(name).to_dict())


@router.post("/schedules/claims")
def claim_due_schedules(request: Request, body: ScheduleClaimBody, who: Who) -> JSONResponse:
    """Claim the schedules due at ``now`` for the caller's scheduler; what it won.

    Each claim is one compare-and-set update: of schedulers racing for a due schedule,
    exactly one gets it. The caller launches the runs, renews the lease, then releases it.
    """
    claims = _leases(request).claim_due(
        _owner(who, body.owner), body.now or utcnow(), body.limit, body.lease_seconds
    )
    return JSONResponse([_claim(c) for c in claims])


@router.post("/schedules/{name}/lease")
def renew_schedule_lease(
    request: Request, name: NamePath, body: ScheduleLeaseBody, who: Who
) -> JSONResponse:
    """Hold the caller's scheduler's lease until ``until``; ``held`` is false if it is not."""
    held = _leases(request).renew(name, _owner(who, body.owner), body.until)
    return JSONResponse({"held": held})


@router.post("/schedules/{name}/release")
def release_schedule_lease(
    request: Request, name: NamePath, body: ScheduleReleaseBody, who: Who
) -> JSONResponse:
    """Clear the caller's scheduler's lease, recording the last run it launched."""
    held = _leases(request).release(name, _owner(who, body.owner), body.run_id)
    return JSONResponse({"held": held})


def _claim(claim: Claim) -> dict[str, object]:
    return {
        "schedule": claim.schedule.to_dict(),
        "due": [d.isoformat() for d in claim.due],
        "skipped": claim.skipped,
        "lease_until": claim.lease_until.isoformat(),
    }
