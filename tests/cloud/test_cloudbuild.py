"""cloudbuild.yaml, checked offline: the Cloud Build API accepts it, and everything it names exists.

No Google project is used. The file is parsed into the Cloud Build API's ``Build``
message (``google-cloud-build``), rejecting unknown fields, so a misspelled field fails
here rather than at ``gcloud builds submit``. The rest reads the steps' scripts: every
substitution is declared and every declared one used, shell variables are escaped from
Cloud Build (``$$``), every Analysis with a Dockerfile is built, pushed and recorded by
digest, the paths, Terraform names and rollerblade commands the steps use exist.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shlex
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner
from google.cloud.devtools.cloudbuild_v1.types import Build, BuildOptions

from rollerblade.analyses.spec import parse_spec
from rollerblade.cli.main import cli
from tests.conftest import ROOT

CONFIG = ROOT / "cloudbuild.yaml"
DOC: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
STEPS: list[dict[str, Any]] = DOC["steps"]
BY_ID = {step["id"]: step for step in STEPS}
# Cloud Build's own substitutions (docs: "Substituting variable values")
BUILT_IN = {
    "PROJECT_ID",
    "BUILD_ID",
    "PROJECT_NUMBER",
    "LOCATION",
    "TRIGGER_NAME",
    "COMMIT_SHA",
    "REVISION_ID",
    "SHORT_SHA",
    "REPO_NAME",
    "REPO_FULL_NAME",
    "BRANCH_NAME",
    "TAG_NAME",
    "REF_NAME",
    "TRIGGER_BUILD_CONFIG_PATH",
    "SERVICE_ACCOUNT_EMAIL",
    "SERVICE_ACCOUNT",
}
REFERENCE = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
REGISTRY = "${_REGION}-docker.pkg.dev/$PROJECT_ID/${_REPO}"


def parse(doc: dict[str, Any]) -> Build:
    return Build.from_json(json.dumps(doc), ignore_unknown_fields=False)


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    return []


def references(text: str) -> list[str]:
    """Names Cloud Build substitutes in ``text``: $NAME and ${NAME}, but not the escaped $$."""
    found = []
    for chunk in text.split("$$"):
        for match in REFERENCE.finditer(chunk):
            found.append(match.group("braced") if match.group("braced") is not None else match.group("bare"))
    return found


def script(step: dict[str, Any]) -> str:
    return "\n".join(step.get("args", []))


def unescaped(text: str) -> str:
    """The text as the step's shell sees it, for one build's sample values."""
    values = {"PROJECT_ID": "example-project", "SHORT_SHA": "abc1234", **DOC["substitutions"]}
    out = []
    for chunk in text.split("$$"):
        out.append(REFERENCE.sub(lambda m: str(values[m.group("braced") or m.group("bare")]), chunk))
    return "$".join(out)


def load_deploy_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the Cloud Build API accepts it ---------------------------------------------------


def test_the_build_api_accepts_the_config() -> None:
    build = parse(DOC)
    assert [step.id for step in build.steps] == [step["id"] for step in STEPS]
    assert build.options.logging == BuildOptions.LoggingMode.CLOUD_LOGGING_ONLY
    assert build.timeout.total_seconds() >= 3600


@pytest.mark.parametrize(
    ("where", "damage"),
    [
        ("a misspelled step field", lambda d: d["steps"][1].__setitem__("waitfor", d["steps"][1].pop("waitFor"))),
        ("a misspelled option", lambda d: d["options"].__setitem__("machinetype", d["options"].pop("machineType"))),
        ("an unknown logging mode", lambda d: d["options"].__setitem__("logging", "CLOUD_LOGGING")),
    ],
)
def test_a_broken_copy_is_refused(where: str, damage: Any) -> None:
    broken = copy.deepcopy(DOC)
    damage(broken)
    with pytest.raises(Exception, match=r"waitfor|machinetype|CLOUD_LOGGING") as failure:
        parse(broken)
    assert "ParseError" in type(failure.value).__name__, where


def test_steps_have_unique_ids_and_wait_for_earlier_steps() -> None:
    ids = [step["id"] for step in STEPS]
    assert len(ids) == len(set(ids))
    for index, step in enumerate(STEPS):
        assert step.get("waitFor"), f"{step['id']}: say what it waits for"
        for other in step["waitFor"]:
            assert other == "-" or other in ids[:index], f"{step['id']} waits for {other}, not an earlier step"


def test_everything_waits_for_the_tests_before_touching_the_project() -> None:
    def ancestors(step_id: str) -> set[str]:
        found: set[str] = set()
        for other in BY_ID[step_id]["waitFor"]:
            if other != "-":
                found |= {other} | ancestors(other)
        return found

    for step in STEPS:
        text = script(step)
        if any(word in text for word in ("docker push", "terraform apply", "kubectl apply", "rollerblade ")):
            assert "lint-and-unit-tests" in ancestors(step["id"]), step["id"]
    assert "tests/unit" in script(BY_ID["lint-and-unit-tests"])


# -- substitutions -------------------------------------------------------------------


def test_every_substitution_is_declared_and_every_declared_one_used() -> None:
    declared = set(DOC["substitutions"])
    used = set()
    for text in strings(STEPS) + strings(DOC.get("images", [])) + strings(DOC["substitutions"]):
        for name in references(text):
            assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), (
                f"${{{name}}} is not a substitution: write $$ for the shell, or bash expansions run at submit time"
            )
            if name.startswith("_"):
                assert name in declared, f"${name} is used but not declared in substitutions:"
                used.add(name)
            else:
                assert name in BUILT_IN, f"${name} is neither a Cloud Build substitution nor escaped ($$)"
    assert declared == used, f"declared but unused (Cloud Build refuses them): {declared - used}"
    assert all(name.startswith("_") for name in declared)


def test_shell_variables_are_escaped() -> None:
    """A shell variable written $x would be replaced by Cloud Build (by nothing, or refused)."""
    for step in STEPS:
        for text in strings(step):
            for name in references(text):
                assert name.isupper(), f"{step['id']}: ${name} must be written $${name}"


def test_defaults_build_names_from_the_project() -> None:
    assert DOC["options"]["dynamicSubstitutions"] is True
    assert unescaped("${_STATE_BUCKET}") == "${PROJECT_ID}-tfstate", "terraform/versions.tf names the state bucket so"
    assert "SHORT_SHA" in script(BY_ID["check-inputs"])


# -- images --------------------------------------------------------------------------


def analyses_with_images() -> dict[str, Path]:
    """Analysis name -> build folder, for every analysis.yaml that builds its image."""
    found = {}
    for path in sorted((ROOT / "analyses").glob("*/analysis.yaml")):
        spec = parse_spec(path.read_text(), str(path))
        if spec.image.build:
            folder = (path.parent / spec.image.build).resolve()
            assert (folder / "Dockerfile").is_file(), f"{path}: image.build has no Dockerfile"
            found[spec.name] = folder
    return found


def built_images() -> dict[str, tuple[str, str]]:
    """Image name under the registry -> (step id, build context), from the docker build lines."""
    images = {}
    for step in STEPS:
        text = script(step)
        tag = re.search(r"^\s*image=(\S+)$", text, re.M)
        if not tag:
            continue
        prefix, _, name_tag = tag.group(1).partition(REGISTRY + "/")
        assert prefix == "" and name_tag.endswith(":$SHORT_SHA"), f"{step['id']}: tag images in the registry"
        build = re.search(r'docker build ((?:.* )?)-t "\$\$image" (\S+)$', text, re.M)
        assert build, f'{step["id"]}: docker build -t "$$image" CONTEXT'
        images[name_tag.removesuffix(":$SHORT_SHA")] = (step["id"], build.group(2))
        assert 'docker push -q "$$image"' in text, step["id"]
    return images


def test_every_analysis_image_is_built_from_its_folder_and_nothing_else() -> None:
    images = built_images()
    expected = {f"analyses/{name}": folder for name, folder in analyses_with_images().items()}
    assert expected, "the repository has example Analyses"
    assert set(images) == set(expected) | {"rollerblade"}, f"built {sorted(images)}, expected {sorted(expected)}"
    for image, folder in expected.items():
        step_id, context = images[image]
        assert (ROOT / context).resolve() == folder, image
        assert "image-base" in BY_ID[step_id]["waitFor"], "the analyses start FROM rollerblade/base:py311"
        assert "FROM rollerblade/base:py311" in (folder / "Dockerfile").read_text()


def test_rollerblades_image_is_built_from_its_dockerfile_with_the_wheels() -> None:
    step = BY_ID["image-rollerblade"]
    assert "docker build -f docker/rollerblade/Dockerfile " in script(step) and built_images()["rollerblade"][1] == "."
    assert (ROOT / "docker" / "rollerblade" / "Dockerfile").is_file()
    assert "pip wheel" in script(BY_ID["wheels"]) and "--wheel-dir docker/rollerblade/wheels '.[gcp]'" in script(
        BY_ID["wheels"]
    )
    assert "wheels" in step["waitFor"]


def test_every_pushed_image_is_recorded_by_digest() -> None:
    images = built_images()
    for image, (step_id, _) in images.items():
        assert (
            f"docker inspect --format '{{{{index .RepoDigests 0}}}}' \"$$image\" > /workspace/digests/{image}"
            in script(BY_ID[step_id])
        )
    digests = BY_ID["digests"]
    assert set(digests["waitFor"]) == {step_id for step_id, _ in images.values()}
    assert "/workspace/digests.json" in script(digests)


def test_the_analyses_base_image_uses_the_pinned_wheels_of_build_sh() -> None:
    text = unescaped(script(BY_ID["image-base"]))
    sed = re.search(r"sed -n '(s/\^REQS=.*?/p)'", text)
    assert sed, text
    reqs = re.findall(r'^REQS="(.*)"$', (ROOT / "docker" / "base" / "build.sh").read_text(), re.M)
    assert len(reqs) == 1 and "nibabel==" in reqs[0] and "scipy==" in reqs[0]
    assert "ARG REQS" in (ROOT / "deploy" / "base" / "Dockerfile").read_text()
    assert "-t rollerblade/base:py311 deploy/base" in text


# -- paths, Terraform, the CLI ---------------------------------------------------------

CREATED_BY_THE_BUILD = {"docker/rollerblade/wheels"}
PATH = re.compile(r"(?<![\w/.-])((?:functions|deploy|docker|terraform|pipeline_rules|analyses|tests)(?:/[\w.-]+)*)")


def test_every_path_a_step_names_exists() -> None:
    named = set()
    for step in STEPS:
        if "dir" in step:
            named.add(step["dir"])
        for text in strings(step.get("args", [])):
            named |= {p.rstrip(".") for p in PATH.findall(unescaped(text))}
    named -= CREATED_BY_THE_BUILD
    named.discard("deploy/k8s/")  # the loop builds deploy/k8s/$f.yaml: checked below
    assert {"functions/package.sh", "terraform", "pipeline_rules", "deploy/zip_functions.py"} <= named
    for path in sorted(named):
        assert (ROOT / path).exists(), f"cloudbuild.yaml names {path}, which does not exist"
    loop = re.search(r"for f in ([\w ]+);", script(BY_ID["cluster-manifests"]))
    assert loop
    for name in loop.group(1).split():
        assert (ROOT / "deploy" / "k8s" / f"{name}.yaml").is_file()


def terraform_text() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "terraform").glob("*.tf")))


def test_the_terraform_names_the_build_uses_exist() -> None:
    text = terraform_text()
    assert re.search(r'backend\s+"gcs"\s*\{', text), 'terraform/ needs backend "gcs" {} for -backend-config'
    for target in re.findall(r"-target=(\S+)", "\n".join(strings(STEPS))):
        kind, name = target.split(".")
        assert re.search(rf'resource\s+"{kind}"\s+"{name}"', text), f"-target={target} is not in terraform/"
    read = set()
    for text_ in strings(STEPS):
        read |= set(re.findall(r"\$\$\(out (\w+)\)", text_)) | set(re.findall(r'outputs\["(\w+)"\]', text_))
    read |= set(re.findall(r'\["(cli_environment)"\]', "\n".join(strings(STEPS))))
    assert {"artifact_registry", "cluster_name", "cluster_location", "functions_service_account", "bucket"} <= read
    for name in read:
        assert re.search(rf'output\s+"{name}"', text), f"the build reads output {name}, which terraform/ lacks"


def terraform_variables() -> dict[str, bool]:
    """Variable name -> whether it has a default."""
    blocks = re.findall(r'variable\s+"(\w+)"\s*\{(.*?)\n\}', terraform_text(), re.S)
    return {name: bool(re.search(r"^\s*default\s*=", body, re.M)) for name, body in blocks}


def test_every_terraform_variable_given_is_declared_and_every_required_one_given() -> None:
    """Terraform ignores a TF_VAR_ of an undeclared variable: a misspelled one would be lost silently."""
    variables = terraform_variables()
    required = {name for name, has_default in variables.items() if not has_default}
    assert required
    for step_id in ("artifact-registry", "terraform-plan"):
        given = {item.split("=", 1)[0] for item in BY_ID[step_id]["env"]}
        given |= set(re.findall(r"export (TF_VAR_\w+)=", script(BY_ID[step_id])))
        names = {item.removeprefix("TF_VAR_") for item in given if item.startswith("TF_VAR_")}
        assert names <= set(variables), f"{step_id} sets undeclared variables {names - set(variables)}"
        assert required <= names, f"{step_id} misses {required - names}"
    assert "TF_VAR_stager_image" in script(BY_ID["terraform-plan"]), "the functions submit Jobs with this image"
    assert "TF_VAR_api_image" in script(BY_ID["terraform-plan"]), "the API's Cloud Run service runs this image"


def test_the_api_service_is_deployed_with_the_pushed_image_and_checked() -> None:
    """Terraform deploys the HTTP API's Cloud Run service from Rollerblade's image as just
    pushed (like the stager image), and a step checks the live revision: its image is that
    digest, and it answers through Cloud Run's IAM and the app's Google identity check."""
    plan = script(BY_ID["terraform-plan"])
    digest = "/workspace/digests/rollerblade"
    assert f'export TF_VAR_api_image="$$(cat {digest})"' in plan
    assert f"> {digest}" in script(BY_ID["image-rollerblade"]), "the file holds Rollerblade's pushed digest"
    for step_id in ("artifact-registry", "terraform-plan"):
        assert "TF_VAR_api_invoker_members=${_API_MEMBERS}" in BY_ID[step_id]["env"], step_id
    assert re.search(r'variable\s+"api_invoker_members"', terraform_text())
    check = BY_ID["api-check"]
    text = script(check)
    assert check["waitFor"] == ["terraform-apply"]
    assert {"api_url", "api_service", "api_audience"} <= set(re.findall(r"\$\$\(out (\w+)\)", text))
    assert f'test "$$deployed" = "$$(cat {digest})"' in text, "the live revision runs the pushed digest"
    assert 'print-identity-token --audiences="$$audience"' in text, "a token for the API's audience"
    paths = json.loads((ROOT / "docs" / "openapi.json").read_text())["paths"]
    for path in re.findall(r'"\$\$url(/[\w/]+)"', text):
        assert path in paths, f"api-check calls {path}, which the API does not serve"
    assert "/health" in text and "/v1/me" in text
    assert "is not a Rollerblade user" in (ROOT / "shared" / "rollerblade" / "pipeline" / "sharing.py").read_text()


def cli_invocations() -> list[tuple[str, list[str]]]:
    """Every ``rollerblade ...`` the build runs, directly or through deploy/register_analyses.py."""
    found = []
    for step in STEPS:
        for line in script(step).splitlines():
            if line.strip().startswith("rollerblade "):
                found.append((step["id"], shlex.split(line.strip())[1:]))
    register = (ROOT / "deploy" / "register_analyses.py").read_text()
    for match in re.findall(r'\["rollerblade", ((?:"[\w-]+", )+)', register):
        found.append(("deploy/register_analyses.py", re.findall(r'"([\w-]+)"', match)))
    return found


def resolve(words: list[str]) -> list[str]:
    """The command path of ``words`` in the CLI (groups, then one command); fails if one is unknown."""
    command: click.Command = cli
    path = []
    for word in words:
        if not isinstance(command, click.Group):
            break
        assert word in command.commands, f"rollerblade {' '.join([*path, word])}: no such command"
        command = command.commands[word]
        path.append(word)
    assert not isinstance(command, click.Group), f"rollerblade {' '.join(path)} is a group, not a command"
    return path


def test_every_rollerblade_command_the_build_runs_exists() -> None:
    invocations = cli_invocations()
    paths = {tuple(resolve(words)) for _, words in invocations}
    assert {("analysis", "register"), ("rules", "apply")} <= paths
    runner = CliRunner()
    for path in sorted(paths):
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, f"rollerblade {' '.join(path)} --help: {result.output}"


def test_the_cli_environment_written_for_the_build_is_made_of_settings() -> None:
    """Settings refuse unknown ROLLERBLADE_* variables: the register step would fail on a typo."""
    from rollerblade.settings import Settings

    names = set(re.findall(r'"(ROLLERBLADE_[A-Z_]+)"', script(BY_ID["cluster-credentials"])))
    assert {"ROLLERBLADE_EXECUTOR", "ROLLERBLADE_GKE_NAMESPACE", "ROLLERBLADE_STAGER_IMAGE"} <= names
    fields = {f"ROLLERBLADE_{name.upper()}" for name in Settings.__dataclass_fields__}
    assert names <= fields, f"not settings: {names - fields}"


# -- the helper scripts of deploy/ ----------------------------------------------------


def test_the_functions_zip_is_reproducible_with_main_at_the_root(tmp_path: Path) -> None:
    zip_functions = load_deploy_script("zip_functions")
    staged = tmp_path / "staged"
    (staged / "rollerblade").mkdir(parents=True)
    (staged / "main.py").write_text("def index_object(request): ...\n")
    (staged / "requirements.txt").write_text("rollerblade\n")
    (staged / "rollerblade" / "__init__.py").write_text("")
    assert zip_functions.main([str(staged), str(tmp_path / "a.zip")]) == 0
    (staged / "main.py").touch()  # a new mtime changes nothing
    assert zip_functions.main([str(staged), str(tmp_path / "b.zip")]) == 0
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert zipfile.ZipFile(tmp_path / "a.zip").namelist() == ["main.py", "requirements.txt", "rollerblade/__init__.py"]
    assert zip_functions.main([str(tmp_path), str(tmp_path / "c.zip")]) == 1, "refuses an unstaged folder"


def test_registration_pins_every_built_image_to_its_pushed_digest(tmp_path: Path) -> None:
    register = load_deploy_script("register_analyses")
    registry = "europe-west1-docker.pkg.dev/example-project/rollerblade"
    digests = {f"analyses/{name}": f"{registry}/analyses/{name}@sha256:{'0' * 64}" for name in analyses_with_images()}
    for folder in sorted(p.parent for p in (ROOT / "analyses").glob("*/analysis.yaml")):
        target = register.prepare(folder, digests, tmp_path)
        spec = parse_spec((target / "analysis.yaml").read_text(), str(target))
        original = parse_spec((folder / "analysis.yaml").read_text(), str(folder))
        assert spec.image.ref == digests[f"analyses/{spec.name}"] and spec.image.build is None
        assert dataclass_without_image(spec) == dataclass_without_image(original)
        assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in folder.iterdir())
    with pytest.raises(SystemExit, match="pushed none"):
        register.prepare(ROOT / "analyses" / "brain-mask", {}, tmp_path)


def dataclass_without_image(spec: Any) -> dict[str, Any]:
    doc = spec.to_doc()
    doc.pop("image")
    return doc


def deploy_guide() -> str:
    text = (ROOT / "docs" / "cloud.md").read_text()
    return text.split("## Deploy from an empty project", 1)[1].split("\n## ", 1)[0]


def test_the_deploy_guide_matches_the_build() -> None:
    guide = deploy_guide()
    blocks = "\n".join(re.findall(r"```sh\n(.*?)```", guide, re.S))
    submitted = re.search(r'--substitutions="([^"]*(?:\\"[^"]*)*)"', blocks)
    assert submitted and "gcloud builds submit --config cloudbuild.yaml" in blocks
    given = set(re.findall(r"(?:^|,)(_[A-Z_]+)=", submitted.group(1)))
    assert given and given <= set(DOC["substitutions"]), given - set(DOC["substitutions"])
    for name in re.findall(r"`(_[A-Z_]+)`", guide):
        assert name in DOC["substitutions"], name
    assert "gs://$PROJECT-tfstate" in blocks and DOC["substitutions"]["_STATE_BUCKET"] == "${PROJECT_ID}-tfstate"
    assert "-backend-config=prefix=rollerblade" in blocks and "-backend-config=prefix=rollerblade" in script(
        BY_ID["terraform-init"]
    )
    paths = set()
    for line in blocks.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("rollerblade "):
            paths.add(tuple(resolve(shlex.split(line)[1:])))
    assert {("import",), ("status",)} <= paths
    for variable in re.findall(r"-var (\w+)=", blocks):
        assert variable in terraform_variables(), variable
