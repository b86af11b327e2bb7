"""The Terraform of the GCP deployment: formatted, and consistent with the code it deploys."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from tests.conftest import ROOT

TERRAFORM = ROOT / "terraform"


def test_terraform_is_formatted() -> None:
    terraform = shutil.which("terraform")
    assert terraform, "terraform is on this machine image (see ../shared/notes/kubernetes-and-terraform.md)"
    result = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_functions_and_settings_match_the_code() -> None:
    text = "".join(p.read_text() for p in TERRAFORM.glob("*.tf"))
    main = (ROOT / "functions" / "main.py").read_text()
    for entry in re.findall(r'entry_point\s*=\s*"(\w+)"', text):
        assert f"def {entry}(" in main, entry
    from rollerblade.settings import ENV_PREFIX, Settings

    fields = {f.upper() for f in Settings.__dataclass_fields__}
    for var in set(re.findall(r"ROLLERBLADE_(\w+)\s*=", text)):
        assert var in fields, f"{ENV_PREFIX}{var} is not a setting"


def test_firestore_indexes_cover_the_structural_queries() -> None:
    indexes = json.loads((ROOT / "firestore.indexes.json").read_text())["indexes"]
    pairs = {(i["collectionGroup"], tuple(f["fieldPath"] for f in i["fields"])) for i in indexes}
    assert ("records", ("dataset", "path")) in pairs  # Index.records(dataset, prefix)
    assert ("metadata", ("dataset", "directory")) in pairs  # Index.metadata(dataset, directories)
    assert ("jobs", ("analysis", "state")) in pairs
