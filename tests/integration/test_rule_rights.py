"""Pipeline rules act with the rights of the user who applied them, checked each time they
fire: a grant or a revoke changes what the next event plans, and a refusal is audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollerblade.access.model import Principal
from rollerblade.errors import PermissionDenied
from rollerblade.pipeline import dispatch, sharing, usecases_data, usecases_work
from rollerblade.pipeline.messages import SCANS_TOPIC, ScanIndexed
from rollerblade.records import Actor
from rollerblade.settings import Settings
from rollerblade.stack import open_stack
from tests.conftest import ACTOR, ROOT, admins

ALICE = Principal("alice", "user")
ADMIN = Principal(ACTOR, "user", admin=True)
RULE = """rules:
  - name: mask-every-t1w
    on: scan.indexed
    when: suffix=T1w AND extension=.nii.gz AND NOT exists(analysis)
    run: brain-mask
"""


def planned_datasets(stack: object) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in stack.index.jobs(analysis="brain-mask"):  # type: ignore[attr-defined]
        counts[job.dataset] = counts.get(job.dataset, 0) + 1
    return counts


def fire(services: object, *datasets: str) -> None:
    """``scan.indexed`` for every record of ``datasets``, through the real dispatcher."""
    messages = [ScanIndexed(name, "").to_message() for name in datasets]
    dispatch.handle(services, SCANS_TOPIC, messages, actor=Actor("service:serve"))  # type: ignore[arg-type]


def test_rules_fire_only_where_their_applier_may_run_and_read(real_cohort: dict[str, Path], tmp_path: Path) -> None:
    stack = open_stack(Settings(home=tmp_path / "home", executor="process"))
    try:
        admins(stack.access)
        services = stack.services
        sharing.add_user(services, ADMIN, "alice")
        usecases_data.import_dataset(services, ALICE, real_cohort["site-a"], "mine")
        usecases_data.import_dataset(services, ADMIN, real_cohort["site-b"], "theirs")
        usecases_work.register_analysis(services, ALICE, ROOT / "analyses" / "brain-mask")
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "mask.yaml").write_text(RULE)
        usecases_work.apply_rules(services, ALICE, rules)  # alice manages brain-mask: she may
        t1w = {
            name: usecases_data.count(services, ADMIN, f"dataset={name} AND suffix=T1w AND extension=.nii.gz")
            for name in ("mine", "theirs")
        }
        assert t1w["mine"] > 0 and t1w["theirs"] > 0

        fire(services, "mine", "theirs")
        assert planned_datasets(stack) == {"mine": t1w["mine"]}  # nothing of "theirs": alice may not read it
        refused = [e for e in stack.access.entries(actor="alice") if e.outcome == "denied"]
        assert [(e.action, e.target) for e in refused] == [("rule-fire", "theirs")]
        assert "applied by alice" in refused[0].detail

        sharing.grant(services, ADMIN, "alice", "read", "theirs")  # takes effect on the next event
        fire(services, "theirs")
        assert planned_datasets(stack) == {"mine": t1w["mine"], "theirs": t1w["theirs"]}

        sharing.revoke(services, ADMIN, "alice", "read", "theirs")
        usecases_data.import_dataset(services, ADMIN, real_cohort["site-c"], "later")
        fire(services, "later")  # a new dataset alice cannot read: no job for it
        assert "later" not in planned_datasets(stack)
    finally:
        stack.close()


def test_a_user_who_manages_no_analysis_may_not_apply_rules(tmp_path: Path) -> None:
    stack = open_stack(Settings(home=tmp_path / "home", executor="process"))
    admins(stack.access)
    services = stack.services
    usecases_work.register_analysis(services, ADMIN, ROOT / "analyses" / "brain-mask")
    sharing.add_user(services, ADMIN, "bob")
    sharing.grant(services, ADMIN, "bob", "run", "brain-mask")  # run is not enough to automate it
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mask.yaml").write_text(RULE)
    with pytest.raises(PermissionDenied, match="bob may not manage analysis 'brain-mask'"):
        usecases_work.apply_rules(services, Principal("bob", "user"), rules)
    assert usecases_work.list_rules(services, ADMIN) == []
    stack.close()
