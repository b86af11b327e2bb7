"""Request and response bodies of the HTTP API (what its OpenAPI document describes).

Records, jobs and Analyses are sent as the same JSON documents the CLI prints with
``--json`` (``ScanRecord.to_doc`` ...), so they are open objects here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

#: The longest aBIDS query accepted (characters).
MAX_QUERY = 4000
#: Page sizes: the default and the most one request may ask for.
PAGE = 100
MAX_PAGE = 1000

Doc = dict[str, Any]


class ErrorDetail(BaseModel):
    status: int
    type: str
    message: str
    position: int | None = None
    token: str | None = None
    suggestions: list[str] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class Me(BaseModel):
    name: str
    kind: str
    admin: bool


class DatasetOut(BaseModel):
    name: str
    owner: str
    created: str
    description: Doc
    state: str
    records: int
    errors: int
    warnings: int


class Problem(BaseModel):
    path: str
    error: str | None
    warning: str | None


class DatasetSummaryOut(DatasetOut):
    participants: int
    sessions: int
    ages: list[float] = Field(description="One per participant with a numeric age, ascending.")
    sex: dict[str, int] = Field(description="Participants per value of participants.tsv's sex column.")
    problems: list[Problem] = Field(description="Files with an index error or warning (at most 500).")
    managers: list[str]


class Count(BaseModel):
    count: int


class RecordPage(BaseModel):
    records: list[Doc]
    next: str | None = Field(None, description="Cursor of the next page; null on the last one.")


class Fields(BaseModel):
    fields: list[str]


class QueryBody(BaseModel):
    query: str = Field("", max_length=MAX_QUERY, description="An aBIDS query (empty: everything readable).")


class RunBody(BaseModel):
    analysis: str = Field(..., min_length=1, max_length=200)
    query: str = Field("", max_length=MAX_QUERY)
    force: bool = False
    dry_run: bool = False


class RunStarted(BaseModel):
    analysis: str
    planned: int
    queued: int
    done: int
    cannot_run: int
    jobs: list[str]


class Progress(BaseModel):
    analysis: str
    planned: int
    running: int
    succeeded: int
    failed: int


class Cancelled(BaseModel):
    analysis: str
    cancelled: int


class JobPage(BaseModel):
    jobs: list[Doc]
    next: str | None = None


class GrantBody(BaseModel):
    user: str = Field(..., min_length=1, max_length=128)
    right: str = Field(..., min_length=1, max_length=20)
    target: str = Field(..., min_length=1, max_length=300, description="NAME, dataset:NAME or analysis:NAME")


class GrantOut(BaseModel):
    kind: str
    resource: str
    user: str
    right: str
    granted_by: str
    granted_at: float


class RevokeOut(BaseModel):
    kind: str
    resource: str
    user: str
    right: str | None = Field(None, description="What the user holds afterwards (null: nothing).")


class AccessOut(BaseModel):
    kind: str
    name: str
    managers: list[str]
    grants: list[GrantOut]


class AuditOut(BaseModel):
    time: float
    actor: str
    action: str
    outcome: str
    kind: str
    target: str
    detail: str


class TokenBody(BaseModel):
    expires_in: float | None = Field(None, gt=0, le=10 * 365 * 86400, description="Lifetime in seconds (null: never).")
    label: str = Field("", max_length=200)


class TokenOut(BaseModel):
    id: str
    user: str
    created: float
    expires: float
    revoked: float
    last_used: float
    label: str


class TokenMade(TokenOut):
    token: str = Field(..., description="The token itself: shown only in this response.")


class UserBody(BaseModel):
    name: str = Field(..., min_length=1, max_length=128)
    email: str = Field("", max_length=320)
    admin: bool = False


class UserOut(BaseModel):
    name: str
    created: float
    email: str
    admin: bool


class RuleOut(BaseModel):
    name: str
    doc: Doc
