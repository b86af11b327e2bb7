"""Schemathesis fuzzes the live API from its committed OpenAPI document: whatever it sends
(valid and invalid parameters and bodies, with a token), no 5xx, every status is
documented, every body matches its schema. Run as an admin, so every route is reached
past the access checks (the permission matrix covers the other principals)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Site
from tests.conftest import ACTOR, ROOT

schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_error_and_every_response_matches_the_schema(case: schemathesis.Case, embedded_site: Site) -> None:
    case.call_and_validate(
        base_url=embedded_site.url,
        headers=embedded_site.headers(ACTOR),
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        timeout=120,
    )
