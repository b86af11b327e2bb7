"""checkov over the Terraform of the GCP deployment, offline (terraform/offline/checkov.sh).

checkov lives in its own cached venv (it pins old ``packaging``/``networkx``), made by the
script on first use. Every check the configuration does not meet is skipped next to its
resource with a reason; these tests hold that line: no failed check, no parsing error,
no skip without a reason, and a real misconfiguration is still caught.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

TERRAFORM = ROOT / "terraform"
SCRIPT = TERRAFORM / "offline" / "checkov.sh"


def run_checkov(folder: Path | None = None) -> dict[str, Any]:
    env = {"CHECKOV_TERRAFORM_DIR": str(folder)} if folder else {}
    result = subprocess.run(
        [str(SCRIPT), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=900,  # the first run makes the venv (a few minutes); later runs take seconds
        env={**os.environ, **env},
    )
    assert result.stdout.strip(), result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert isinstance(report, dict) and report["check_type"] == "terraform", result.stdout[:2000]
    return report


def test_checkov_finds_no_failed_check() -> None:
    report = run_checkov()
    failed = report["results"].get("failed_checks", [])
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    assert report["summary"]["passed"] > 50, report["summary"]  # it read the whole configuration
    assert report["summary"]["failed"] == 0, "\n".join(
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}" for c in failed
    )


def test_every_skipped_check_says_why() -> None:
    skips = []
    for path in sorted(TERRAFORM.glob("*.tf")):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                match = re.search(r"#\s*checkov:skip=(CKV2?_[A-Z]+_\d+):\s*(\S.{19,})$", line)
                assert match, f"{path.name}: a skip names one check and gives its reason: {line.strip()}"
                skips.append(match.group(1))
    assert skips, "the configuration is expected to skip a few checks, each with its reason"


def test_checkov_still_catches_a_public_bucket(tmp_path: Path) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, copy, ignore=shutil.ignore_patterns(".terraform*", "offline", "tests"))
    storage = copy / "storage.tf"
    text = storage.read_text()
    assert text.count('public_access_prevention    = "enforced"') == 2
    storage.write_text(
        text.replace('public_access_prevention    = "enforced"', 'public_access_prevention    = "inherited"', 1)
    )
    report = run_checkov(copy)
    failed = {(c["check_id"], c["resource"]) for c in report["results"].get("failed_checks", [])}
    assert ("CKV_GCP_114", "google_storage_bucket.abids") in failed, failed
