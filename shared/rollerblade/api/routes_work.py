"""``/v1`` analysis routes: Analyses, runs (start, progress, cancel), jobs and their logs,
pipeline rules, tagged derivatives."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response

from rollerblade.access.model import Principal
from rollerblade.api.identity import principal
from rollerblade.api.routes_data import Limit, record_page, services_of
from rollerblade.api.schemas import PAGE, Cancelled, Doc, JobPage, Progress, RecordPage, RuleOut, RunBody, RunStarted
from rollerblade.errors import InputError
from rollerblade.pipeline import usecases_work

router = APIRouter()
Who = Annotated[Principal, Depends(principal)]
Name = Annotated[str, Path(min_length=1, max_length=200)]
JOB_STATES = ("planned", "running", "succeeded", "failed")


@router.get("/analyses", response_model=list[Doc], tags=["analyses"])
def analyses(request: Request, who: Who) -> list[Doc]:
    """The registered Analyses you may run."""
    return usecases_work.list_analyses(services_of(request), who)


@router.get("/analyses/{name}", response_model=Doc, tags=["analyses"])
def analysis(request: Request, who: Who, name: Name) -> Doc:
    _, doc = usecases_work.get_analysis(services_of(request), who, name)
    return doc


@router.post("/runs", response_model=RunStarted, status_code=202, tags=["runs"])
def start_run(request: Request, who: Who, body: RunBody) -> Doc:
    """Queue an Analysis over the readable records a query selects; the event loop (or
    the deployment) runs the jobs. Follow them with ``GET /v1/runs/{analysis}``."""
    report = usecases_work.start_run(
        services_of(request), who, body.analysis, body.query, force=body.force, dry_run=body.dry_run
    )
    return {
        "analysis": body.analysis,
        "planned": len(report.planned),
        "queued": len(report.queued),
        "done": len(report.done),
        "cannot_run": len(report.problems),
        "jobs": [job.key for job in report.planned],
    }


@router.get("/runs/{analysis}", response_model=Progress, tags=["runs"])
def progress(request: Request, who: Who, analysis: Name) -> Doc:
    """How many of the Analysis's jobs (on readable datasets) are in each state."""
    return {"analysis": analysis, **usecases_work.run_progress(services_of(request), who, analysis)}


@router.post("/runs/{analysis}/cancel", response_model=Cancelled, tags=["runs"])
def cancel(request: Request, who: Who, analysis: Name) -> Doc:
    """End the Analysis's queued jobs (running ones finish)."""
    return {"analysis": analysis, "cancelled": usecases_work.cancel_run(services_of(request), who, analysis)}


@router.get("/jobs", response_model=JobPage, tags=["runs"])
def jobs(
    request: Request,
    who: Who,
    analysis: Annotated[str | None, Query(max_length=200)] = None,
    state: Annotated[str | None, Query(max_length=20)] = None,
    limit: Limit = PAGE,
    cursor: Annotated[int, Query(ge=0, description="Offset: the 'next' of the previous page.")] = 0,
) -> Doc:
    """Jobs on readable datasets, newest first."""
    if state is not None and state not in JOB_STATES:
        raise InputError(f"unknown job state {state!r}: expected one of {', '.join(JOB_STATES)}")
    found = usecases_work.list_jobs(services_of(request), who, analysis=analysis, state=state)
    page = found[cursor : cursor + limit]
    more = cursor + limit < len(found)
    return {"jobs": [j.to_doc() for j in page], "next": str(cursor + limit) if more else None}


@router.get("/jobs/{key}", response_model=Doc, tags=["runs"])
def job(request: Request, who: Who, key: Annotated[str, Path(min_length=4, max_length=64)]) -> Doc:
    """One job by its key (or a unique prefix of at least 4 characters)."""
    return usecases_work.get_job(services_of(request), who, key).to_doc()


@router.post("/jobs/{key}/retry", response_model=Doc, tags=["runs"])
def retry(request: Request, who: Who, key: Annotated[str, Path(min_length=4, max_length=64)]) -> Doc:
    """Queue a failed job again (needs ``run`` on its Analysis); returns the job."""
    return usecases_work.retry_job(services_of(request), who, key).to_doc()


@router.get(
    "/jobs/{key}/logs",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "The logs"}},
    tags=["runs"],
)
def logs(request: Request, who: Who, key: Annotated[str, Path(min_length=4, max_length=64)]) -> PlainTextResponse:
    """The stored logs of a job (head and tail when long)."""
    data = usecases_work.job_logs(services_of(request), who, key)
    return PlainTextResponse(data.decode("utf-8", "replace"))


@router.get("/rules", response_model=list[RuleOut], tags=["rules"])
def rules(request: Request, who: Who) -> list[Doc]:
    """The pipeline rules in force."""
    return [{"name": r.name, "doc": r.to_doc()} for r in usecases_work.list_rules(services_of(request), who)]


@router.get("/rules/{name}", response_model=RuleOut, tags=["rules"])
def rule(request: Request, who: Who, name: Name) -> Doc:
    found = usecases_work.get_rule(services_of(request), who, name)
    return {"name": found.name, "doc": found.to_doc()}


@router.get("/tags/{tag}", response_model=RecordPage, tags=["rules"])
def tagged(
    request: Request, who: Who, tag: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")], limit: Limit = PAGE
) -> Response:
    """Readable derivatives carrying a tag (``final``, ``display`` ...)."""
    return record_page(usecases_work.tagged(services_of(request), who, tag, limit=limit), None)
