"""The cluster manifests of deploy/k8s: valid against a current Kubernetes schema, hardened, isolating.

The placeholders are filled in with the real ``envsubst`` and an explicit variable list,
as the ``cluster-manifests`` step of cloudbuild.yaml does, and every document is
validated strictly (an unknown field fails) with PyPI ``kubernetes-validate`` against
Kubernetes 1.33 and the newest schema the package ships.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
NAMESPACE = "rollerblade-jobs"
VERSIONS = ("1.33.0", kubernetes_validate.latest_version())
APPLY_ORDER = ("namespace", "serviceaccounts", "rbac", "networkpolicy", "watcher")
SAMPLE = {
    "PROJECT": "example-project",
    "FUNCTIONS_SA": "rollerblade-functions@example-project.iam.gserviceaccount.com",
    "ROLLERBLADE_IMAGE": "europe-west1-docker.pkg.dev/example-project/rollerblade/rollerblade@sha256:" + "ab" * 32,
    "BUCKET": "example-project-abids",
    "COLLECTION_PREFIX": "",
    "API_SERVER_CIDR": "10.128.0.2/32",
    "API_SERVER_PORT": "443",
}
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
HARDENING = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
ANALYSIS_SELECTOR = {"matchLabels": {"rollerblade.dev/role": "analysis"}}


def render(text: str, values: dict[str, str] = SAMPLE) -> str:
    """Fill the placeholders as Cloud Build does: envsubst with only these variables."""
    envsubst = shutil.which("envsubst")
    assert envsubst, "envsubst (gettext-base) is needed, as in the Cloud Build step"
    shell_format = " ".join("${" + name + "}" for name in sorted(values))
    result = subprocess.run(
        [envsubst, shell_format], input=text, capture_output=True, text=True, env=values, timeout=30, check=True
    )
    return result.stdout


def manifest_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in manifest_files():
        for doc in yaml.safe_load_all(render(path.read_text())):
            if doc is not None:
                docs.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


DOCS = documents()


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in DOCS if doc["kind"] == kind]


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    return [(name, doc["spec"]["template"]["spec"]) for name, doc in DOCS if "template" in doc.get("spec", {})]


def test_the_manifests_are_the_ones_cloud_build_applies() -> None:
    assert [p.stem for p in manifest_files()] == sorted(APPLY_ORDER)
    step = (ROOT / "cloudbuild.yaml").read_text()
    assert "for f in " + " ".join(APPLY_ORDER) + ";" in step, "cloudbuild.yaml applies the files in this order"


def test_placeholders_are_the_documented_ones_and_all_get_a_value() -> None:
    used = {name for path in manifest_files() for name in PLACEHOLDER.findall(path.read_text())}
    assert used == set(SAMPLE)
    readme = (K8S / "README.md").read_text()
    assert set(re.findall(r"^\| `\$\{([A-Z_]+)\}` \|", readme, re.M)) == used
    # cloudbuild.yaml escapes $ as $$ from Cloud Build's own substitution
    listed = re.search(r"vars='([^']*)'", (ROOT / "cloudbuild.yaml").read_text())
    assert listed, "the cluster-manifests step lists envsubst's variables in vars='...'"
    assert set(re.findall(r"\$\$\{([A-Z_]+)\}", listed.group(1))) == used
    for path in manifest_files():
        assert "${" not in render(path.read_text()), path.name


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[name for name, _ in DOCS])
def test_every_document_is_valid_strictly(name: str, doc: dict[str, Any], version: str) -> None:
    assert kubernetes_validate.validate(doc, version, strict=True)


def test_the_newest_schema_is_used() -> None:
    assert tuple(int(x) for x in VERSIONS[-1].split(".")[:2]) >= (1, 37)


def test_a_misspelled_field_fails_validation(tmp_path: Path) -> None:
    """The check is real: the CLI, as documented (-k 1.33 --strict), refuses a typo that kubectl would drop."""
    text = render((K8S / "watcher.yaml").read_text())
    good = tmp_path / "watcher.yaml"
    good.write_text(text)
    broken = tmp_path / "watcher-broken.yaml"
    broken.write_text(text.replace("readOnlyRootFilesystem", "readOnlyRootFileSystem"))
    cli = [sys.executable, "-m", "kubernetes_validate", "-k", "1.33", "--strict"]
    ok = subprocess.run([*cli, str(good)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run([*cli, str(broken)], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert "readOnlyRootFileSystem" in bad.stdout + bad.stderr
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(yaml.safe_load(broken.read_text()), "1.33.0", strict=True)


def test_everything_lives_in_the_jobs_namespace() -> None:
    (namespace,) = of_kind("Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, doc in DOCS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, name


@pytest.mark.parametrize(("name", "spec"), pod_specs(), ids=[name for name, _ in pod_specs()])
def test_every_container_is_hardened(name: str, spec: dict[str, Any]) -> None:
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 65534
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    containers = spec["containers"] + spec.get("initContainers", [])
    assert containers
    for container in containers:
        context = container["securityContext"]
        for key, value in HARDENING.items():
            assert context.get(key) == value, f"{name} {container['name']}: securityContext.{key}"
        resources = container["resources"]
        assert resources["requests"] == resources["limits"], "Autopilot: requests equal limits"


def test_the_watcher_deployment() -> None:
    (deployment,) = of_kind("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "rollerblade-watcher"
    (container,) = pod["containers"]
    assert container["image"] == SAMPLE["ROLLERBLADE_IMAGE"]
    assert container["command"] == ["rollerblade", "gke", "watch"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["ROLLERBLADE_GKE_NAMESPACE"] == NAMESPACE and env["ROLLERBLADE_EXECUTOR"] == "gke"
    assert env["ROLLERBLADE_BUCKET"] == SAMPLE["BUCKET"] and env["ROLLERBLADE_GCP_PROJECT"] == SAMPLE["PROJECT"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert env["HOME"] in mounts and env["ROLLERBLADE_HOME"].startswith(env["HOME"] + "/"), "writable home"


def test_the_watcher_environment_loads_as_settings() -> None:
    """Settings refuse unknown ROLLERBLADE_* variables: the watcher would crash at start-up on a typo."""
    from rollerblade.settings import Settings

    (deployment,) = of_kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    settings = Settings.from_env(env)
    assert settings.executor == "gke" and settings.bucket == SAMPLE["BUCKET"]


def test_service_accounts_use_workload_identity() -> None:
    accounts = {sa["metadata"]["name"]: sa for sa in of_kind("ServiceAccount")}
    assert set(accounts) == {"rollerblade-job", "rollerblade-watcher"}
    for name, sa in accounts.items():
        assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == (
            f"{name}@{SAMPLE['PROJECT']}.iam.gserviceaccount.com"
        )
    assert accounts["rollerblade-job"]["automountServiceAccountToken"] is False


def test_rbac_is_namespaced_and_least_privilege() -> None:
    roles = {role["metadata"]["name"]: role["rules"] for role in of_kind("Role")}
    assert not of_kind("ClusterRole") and not of_kind("ClusterRoleBinding")

    def verbs(role: str, group: str, resource: str) -> set[str]:
        return {
            verb
            for rule in roles[role]
            if group in rule["apiGroups"] and resource in rule["resources"]
            for verb in rule["verbs"]
        }

    # patch: the executor annotates a Job once its end is reported (GkeExecutor.mark_reported)
    assert verbs("rollerblade-watcher", "batch", "jobs") == {"get", "list", "watch", "patch", "delete"}
    assert (
        verbs("rollerblade-watcher", "", "pods")
        == verbs("rollerblade-watcher", "", "pods/log")
        == {
            "get",
            "list",
            "watch",
        }
    )
    assert verbs("rollerblade-submitter", "batch", "jobs") == {"create", "get", "list", "watch", "patch", "delete"}
    assert (
        verbs("rollerblade-submitter", "", "pods")
        == verbs("rollerblade-submitter", "", "pods/log")
        == {
            "get",
            "list",
        }
    )
    bindings = {b["metadata"]["name"]: b for b in of_kind("RoleBinding")}
    assert bindings["rollerblade-watcher"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "rollerblade-watcher", "namespace": NAMESPACE}
    ]
    assert bindings["rollerblade-submitter"]["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": SAMPLE["FUNCTIONS_SA"]}
    ]
    for name, binding in bindings.items():
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}


def policy_selecting(selector: dict[str, Any]) -> dict[str, Any]:
    (policy,) = [p for p in of_kind("NetworkPolicy") if p["spec"]["podSelector"] == selector]
    return policy


def destinations(policy: dict[str, Any]) -> set[tuple[str, str, int]]:
    """(peer, protocol, port) for every egress rule; a peer is a CIDR or namespace/pod labels."""
    found = set()
    for rule in policy["spec"]["egress"]:
        for peer in rule["to"]:
            if "ipBlock" in peer:
                assert set(peer["ipBlock"]) == {"cidr"}, "no except clauses"
                where = peer["ipBlock"]["cidr"]
            else:
                where = repr((peer["namespaceSelector"], peer["podSelector"]))
            for port in rule["ports"]:
                found.add((where, port["protocol"], port["port"]))
    return found


KUBE_DNS = repr(
    ({"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}, {"matchLabels": {"k8s-app": "kube-dns"}})
)
DNS = {(peer, protocol, 53) for peer in (KUBE_DNS, "169.254.20.10/32") for protocol in ("UDP", "TCP")}
GOOGLE = {
    ("199.36.153.8/30", "TCP", 443),  # private.googleapis.com
    ("169.254.169.254/32", "TCP", 80),  # metadata server
    ("169.254.169.252/32", "TCP", 988),  # gke-metadata-server (Workload Identity, Dataplane V2)
}


def test_analysis_pods_get_no_ingress_and_only_google_apis_metadata_and_dns() -> None:
    policy = policy_selecting(ANALYSIS_SELECTOR)
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in policy["spec"], "no ingress rule: nothing may connect to an Analysis pod"
    assert destinations(policy) == GOOGLE | DNS


def test_everything_else_in_the_namespace_is_denied() -> None:
    policy = policy_selecting({})
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in policy["spec"] and "egress" not in policy["spec"]


def test_the_watcher_reaches_the_api_server_google_and_dns_only() -> None:
    (deployment,) = of_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (policy,) = [
        p
        for p in of_kind("NetworkPolicy")
        if p["spec"]["podSelector"].get("matchLabels")
        and p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ]
    assert "ingress" not in policy["spec"] and set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    api = (SAMPLE["API_SERVER_CIDR"], "TCP", int(SAMPLE["API_SERVER_PORT"]))
    assert destinations(policy) == GOOGLE | DNS | {api}


def test_the_watcher_command_exists() -> None:
    import click

    from rollerblade.cli.main import cli

    (deployment,) = of_kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    program, *words = container["command"]
    assert program == "rollerblade"
    command: click.Command = cli
    for word in words:
        assert isinstance(command, click.Group) and word in command.commands, f"rollerblade {' '.join(words)}"
        command = command.commands[word]
    assert not isinstance(command, click.Group)


def test_the_vpc_resolves_google_apis_to_the_address_the_policies_allow() -> None:
    """The policies open only private.googleapis.com (199.36.153.8/30). Pods resolve
    storage.googleapis.com through the VPC's DNS, so the VPC needs a private googleapis.com
    zone pointing there, or stage-in and store-out are cut off from the bucket."""
    text = "\n".join(p.read_text() for p in sorted((ROOT / "terraform").glob("*.tf")))
    assert re.search(r'resource\s+"google_dns_managed_zone"', text) and "googleapis.com." in text
    for address in ("199.36.153.8", "199.36.153.9", "199.36.153.10", "199.36.153.11"):
        assert address in text, f"terraform/: private.googleapis.com A record {address}"


def test_rbac_allows_every_call_the_gke_executor_makes() -> None:
    """Read from the adapter's source: each ``<verb>_namespaced_<resource>`` call it makes.
    The watcher may do all of them but create; the functions (submit, then report and
    release what ended) all of them but watch."""
    source = (ROOT / "shared" / "rollerblade" / "adapters" / "gke_exec.py").read_text()
    calls = set(re.findall(r"\.(create|list|read|patch|delete)_namespaced_(job|pod_log|pod)\b", source))
    verb = {"create": "create", "list": "list", "read": "get", "patch": "patch", "delete": "delete"}
    resource = {"job": ("batch", "jobs"), "pod": ("", "pods"), "pod_log": ("", "pods/log")}
    needed = {(verb[v], *resource[r]) for v, r in calls}
    assert ("create", "batch", "jobs") in needed and ("patch", "batch", "jobs") in needed
    if "watch.Watch()" in source:
        needed.add(("watch", "batch", "jobs"))
    roles = {role["metadata"]["name"]: role["rules"] for role in of_kind("Role")}

    def allowed(role: str) -> set[tuple[str, str, str]]:
        return {
            (v, g, r)
            for rule in roles[role]
            for v in rule["verbs"]
            for g in rule["apiGroups"]
            for r in rule["resources"]
        }

    assert {n for n in needed if n[0] != "create"} <= allowed("rollerblade-watcher")
    assert {n for n in needed if n[0] != "watch"} <= allowed("rollerblade-submitter")
