"""The Terraform of the GCP deployment: formatted, and consistent with the code it deploys."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT

TERRAFORM = ROOT / "terraform"
#: Files of the repository root the configuration reads (file("${path.module}/../NAME")).
READ_BY_TERRAFORM = ("firestore.indexes.json", "firestore.rules")


def test_terraform_is_formatted() -> None:
    terraform = shutil.which("terraform")
    assert terraform, "terraform is on this machine image (see ../shared/notes/kubernetes-and-terraform.md)"
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_functions_and_settings_match_the_code() -> None:
    text = "".join(p.read_text() for p in TERRAFORM.glob("*.tf"))
    main = (ROOT / "functions" / "main.py").read_text()
    entries = re.findall(r'entry_point\s*=\s*"(\w+)"', text)
    entries += re.findall(
        r'^\s*(\w+)\s*=\s*"rollerblade-[\w-]+"\s*$', text.split("pipeline_functions = {", 1)[1].split("}", 1)[0], re.M
    )
    assert {"index_object", "rerun", "rule_engine", "job_events"} <= set(entries)
    for entry in entries:
        assert f"def {entry}(" in main, entry
    from rollerblade.settings import ENV_PREFIX, Settings

    fields = {f.upper() for f in Settings.__dataclass_fields__}
    for var in set(re.findall(r"ROLLERBLADE_(\w+)\s*=", text)):
        assert var in fields, f"{ENV_PREFIX}{var} is not a setting"


def test_state_is_remote_and_the_provider_bounded() -> None:
    """A partial GCS backend (the bucket comes from `init -backend-config`), and a provider
    constraint with an upper bound that admits the version the offline checks validate."""
    versions = (TERRAFORM / "versions.tf").read_text()
    assert re.search(r'^\s*backend\s+"gcs"\s*\{\s*\}', versions, re.M), "state must live in GCS (partial configuration)"
    constraint = re.search(r'^\s*version\s*=\s*"([^"]+)"', versions, re.M)
    assert constraint and "<" in constraint.group(1), "the google provider version must be bounded"
    standin = re.search(r"^VER=([\d.]+)$", (TERRAFORM / "offline" / "setup.sh").read_text(), re.M)
    assert standin
    version = tuple(int(x) for x in standin.group(1).split("."))
    for clause in constraint.group(1).split(","):
        match = re.fullmatch(r"\s*(>=|<|<=|>|=)?\s*([\d.]+)\s*", clause)
        assert match, clause
        op, bound = match.groups()
        limit = tuple(int(x) for x in bound.split("."))
        limit += (0,) * (3 - len(limit))
        assert {">=": version >= limit, "<": version < limit, "<=": version <= limit, ">": version > limit}.get(
            op or "=", version == limit
        ), f"the stand-in's provider {standin.group(1)} is outside {constraint.group(1)!r}"
    assert not list(TERRAFORM.glob(".terraform.lock.hcl")), "no lock file made against the offline stand-in"


def test_firestore_indexes_cover_the_structural_queries() -> None:
    indexes = json.loads((ROOT / "firestore.indexes.json").read_text())["indexes"]
    pairs = {(i["collectionGroup"], tuple(f["fieldPath"] for f in i["fields"])) for i in indexes}
    assert ("records", ("dataset", "path")) in pairs  # Index.records(dataset, prefix)
    assert ("metadata", ("dataset", "directory")) in pairs  # Index.metadata(dataset, directories)
    assert ("jobs", ("analysis", "state")) in pairs
    assert ("audit", ("actor", "time")) in pairs  # AuditLog.entries(actor=...), newest first


def _code(path: Path) -> str:
    """A .tf file without its comments (they may name what the code must not do)."""
    return "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())


def _block(text: str, kind: str, name: str) -> str:
    """The body of ``resource "KIND" "NAME" { ... }`` (braces balanced)."""
    start = re.search(rf'^resource\s+"{kind}"\s+"{name}"\s*\{{', text, re.M)
    assert start, f"terraform/ has no {kind}.{name}"
    depth, end = 1, start.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        end += 1
    return text[start.end() : end - 1]


def test_the_api_service_is_behind_google_identity_and_never_public() -> None:
    """Cloud Run checks every request (invoker IAM on), and run.invoker goes to the service
    accounts of the push subscriptions and to var.api_invoker_members only, a variable
    that refuses allUsers/allAuthenticatedUsers."""
    code = {p.name: _code(p) for p in sorted(TERRAFORM.glob("*.tf"))}
    everything = "\n".join(code.values())
    for public in ("allUsers", "allAuthenticatedUsers"):
        assert f'"{public}"' not in everything, f"{public} in terraform/"
        assert not re.search(rf"^\s*members?\s*=.*{public}", everything, re.M), f"{public} in terraform/"
    service = _block(code["api.tf"], "google_cloud_run_v2_service", "api")
    assert re.search(r"^\s*invoker_iam_disabled\s*=\s*false\s*$", service, re.M)
    assert re.search(r"^\s*image\s*=\s*var\.api_image\s*$", service, re.M)
    invokers = _block(code["api.tf"], "google_cloud_run_v2_service_iam_member", "api_invokers")
    assert re.search(r"toset\(var\.api_invoker_members\)", invokers) and re.search(
        r"^\s*member\s*=\s*each\.key\s*$", invokers, re.M
    ), "the API's invokers come from var.api_invoker_members"
    for name, text in code.items():
        for body in re.split(r'^resource\s+"', text, flags=re.M)[1:]:
            if '"roles/run.invoker"' in body:
                member = re.search(r"^\s*member\s*=\s*(.+?)\s*$", body, re.M)
                assert member and member.group(1) in (
                    '"serviceAccount:${google_service_account.invoker.email}"',
                    "each.key",
                ), f"{name}: run.invoker for {member.group(1) if member else '?'}"
    validation = re.search(r'variable\s+"api_invoker_members".*?can\(regex\("([^"]+)"', code["variables.tf"], re.S)
    assert validation, "api_invoker_members is validated"
    principal = re.compile(validation.group(1).replace("\\\\", "\\"))
    assert principal.search("group:lab@example.org") and principal.search("serviceAccount:ci@p.iam.gserviceaccount.com")
    assert not principal.search("allUsers") and not principal.search("allAuthenticatedUsers")


def test_the_api_service_runs_a_serve_command_the_cli_has() -> None:
    """The container's command is `rollerblade serve --http 0.0.0.0:8080 --no-events`: an
    existing command and options, on the port Cloud Run sends requests to."""
    from rollerblade.cli.main import cli

    service = _block(_code(TERRAFORM / "api.tf"), "google_cloud_run_v2_service", "api")
    command = re.search(r"^\s*command\s*=\s*(\[.*\])\s*$", service, re.M)
    args = re.search(r"^\s*args\s*=\s*(\[.*\])\s*$", service, re.M)
    assert command and args
    words = json.loads(command.group(1)) + json.loads(args.group(1))
    assert words == ["rollerblade", "serve", "--http", "0.0.0.0:8080", "--no-events"]
    serve = cli.commands["serve"]
    options = {opt for param in serve.params for opt in getattr(param, "opts", [])}
    assert {"--http", "--no-events"} <= options
    assert re.search(r"container_port\s*=\s*8080", service)


def test_the_firestore_rules_terraform_releases_are_the_committed_file() -> None:
    firestore = _code(TERRAFORM / "firestore.tf")
    ruleset = _block(firestore, "google_firebaserules_ruleset", "firestore")
    assert re.search(r'content\s*=\s*file\("\$\{path\.module\}/\.\./firestore\.rules"\)', ruleset)
    release = _block(firestore, "google_firebaserules_release", "firestore")
    assert re.search(r'^\s*name\s*=\s*"cloud\.firestore"\s*$', release, re.M)
    assert "google_firebaserules_ruleset.firestore.name" in release
    assert '"firebaserules.googleapis.com"' in (TERRAFORM / "services.tf").read_text()
    rules = "\n".join(line.split("//", 1)[0] for line in (ROOT / "firestore.rules").read_text().splitlines())
    assert re.findall(r"\ballow\b[^;]*;", rules) == ["allow read, write: if false;"], "the rules deny every client"


@pytest.fixture(scope="module")
def offline_terraform(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess[str]]:
    """terraform with the offline google provider stand-in (terraform/offline/setup.sh), run
    in a scratch copy of terraform/ so no .terraform or lock file lands in the repository."""
    setup = subprocess.run([str(TERRAFORM / "offline" / "setup.sh")], capture_output=True, text=True, timeout=600)
    assert setup.returncode == 0, setup.stderr[-3000:]
    config = setup.stdout.strip().splitlines()[-1]
    scratch = tmp_path_factory.mktemp("terraform")
    shutil.copytree(TERRAFORM, scratch / "terraform", ignore=shutil.ignore_patterns(".terraform*", "offline"))
    for name in READ_BY_TERRAFORM:
        shutil.copyfile(ROOT / name, scratch / name)
    env = {**os.environ, "TF_CLI_CONFIG_FILE": config, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}

    def run(*args: str, folder: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["terraform", *args, "-no-color"],
            cwd=folder or scratch / "terraform",
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    init = run("init", "-backend=false", "-input=false")
    assert init.returncode == 0, init.stdout + init.stderr
    return run


def test_terraform_validates_offline(offline_terraform: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    result = offline_terraform("validate")
    assert result.returncode == 0 and "The configuration is valid" in result.stdout, result.stdout + result.stderr


def test_terraform_validate_catches_a_misspelled_argument(
    offline_terraform: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    broken = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, broken, ignore=shutil.ignore_patterns(".terraform*", "offline", "tests"))
    for name in READ_BY_TERRAFORM:
        shutil.copyfile(ROOT / name, tmp_path / name)
    storage = broken / "storage.tf"
    storage.write_text(
        storage.read_text().replace("  location                    = var.region", "  locaton = var.region", 1)
    )
    assert offline_terraform("init", "-backend=false", "-input=false", folder=broken).returncode == 0
    result = offline_terraform("validate", folder=broken)
    assert result.returncode != 0 and 'An argument named "locaton" is not expected here' in result.stderr


def test_terraform_tests_pass_with_a_mocked_provider(
    offline_terraform: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = offline_terraform("test")
    assert result.returncode == 0 and "28 passed, 0 failed" in result.stdout, result.stdout + result.stderr
