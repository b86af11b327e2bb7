"""A real single-node Kubernetes cluster for the gke executor's tests and bench: etcd,
kube-apiserver, kube-controller-manager (the real Job controller), kube-scheduler and a
kubelet that runs pods on the local Docker engine. Binaries: ``scripts/kube/build.sh``
(built offline from Debian's source package, cached). Everything binds 127.0.0.1 on free
ports; pods get no network at all (no network plugin: each pod has only ``lo``).

The kubelet rewrites three sysctls and leaves pod logs and ``kubepods`` cgroups behind:
:meth:`Cluster.stop` restores and removes them (../shared/notes/kubernetes-and-terraform.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.emulators import free_port

ROOT = Path(__file__).resolve().parents[1]
PAUSE_IMAGE = "rollerblade/pause:1.20"
SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
NODE = "localhost"


def binaries() -> Path:
    """Build (once, cached) and return the folder with the four binaries and pause.tar."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kube" / "build.sh")], capture_output=True, text=True, timeout=3600
    )
    if result.returncode != 0:
        raise RuntimeError(f"building Kubernetes failed:\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _certs(folder: Path) -> None:
    """A CA, the API server's serving cert, the kubelet's client cert, service-account keys."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=rollerblade-test-ca",
             "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.crt"))  # fmt: skip
    (folder / "san.cnf").write_text(
        "[ext]\nsubjectAltName=IP:127.0.0.1,IP:198.18.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default\n"
    )
    for name, subject, ext in (
        ("apiserver", "/CN=kube-apiserver", ["-extfile", str(folder / "san.cnf"), "-extensions", "ext"]),
        ("kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", []),
    ):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                 "-keyout", str(folder / f"{name}.key"), "-out", str(folder / f"{name}.csr"))  # fmt: skip
        _openssl("x509", "-req", "-in", str(folder / f"{name}.csr"), "-CA", str(folder / "ca.crt"),
                 "-CAkey", str(folder / "ca.key"), "-CAcreateserial", "-days", "2",
                 "-out", str(folder / f"{name}.crt"), *ext)  # fmt: skip
    _openssl("genrsa", "-out", str(folder / "sa.key"), "2048")
    _openssl("rsa", "-in", str(folder / "sa.key"), "-pubout", "-out", str(folder / "sa.pub"))


@dataclasses.dataclass
class Cluster:
    """A running cluster; ``kubeconfig`` is an admin's (the tests pass it explicitly)."""

    folder: Path
    bins: Path
    api_port: int
    kubeconfig: Path
    processes: dict[str, subprocess.Popen[bytes]] = dataclasses.field(default_factory=dict)
    commands: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    saved_sysctls: dict[str, str] = dataclasses.field(default_factory=dict)

    # -- processes --------------------------------------------------------------------

    def _start(self, name: str) -> None:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - kept open by the child
        self.processes[name] = subprocess.Popen(
            self.commands[name], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()

    def _stop(self, name: str, timeout: float = 20.0) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def kubectl_get(self, path: str) -> dict[str, object]:
        """GET an API path with the admin token (raw: no client library in the way)."""
        doc: dict[str, object] = json.loads(self.get(path))
        return doc

    def get(self, path: str) -> bytes:
        import ssl
        import urllib.request

        context = ssl.create_default_context(cafile=str(self.folder / "pki" / "ca.crt"))
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.api_port}{path}", headers={"Authorization": "Bearer admin-token"}
        )
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            body: bytes = response.read()
            return body

    def wait_api(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                if self.get("/readyz") == b"ok":
                    return
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited: {self.log_tail(name)}")
            time.sleep(0.2)
        raise RuntimeError(f"kube-apiserver not ready in {timeout} s: {self.log_tail('kube-apiserver')}")

    def wait_node(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                node = self.kubectl_get(f"/api/v1/nodes/{NODE}")
                spec = node.get("spec") or {}
                conditions = (node.get("status") or {}).get("conditions") or []  # type: ignore[attr-defined]
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
                if ready and not spec.get("taints"):  # type: ignore[attr-defined]
                    return
            if self.processes["kubelet"].poll() is not None:
                raise RuntimeError(f"kubelet exited: {self.log_tail('kubelet')}")
            time.sleep(0.5)
        raise RuntimeError(f"node not Ready in {timeout} s: {self.log_tail('kubelet')}")

    def restart_apiserver(self, down: float = 1.0) -> None:
        """Stop the API server, wait ``down`` seconds, start it again (a restart mid-watch)."""
        self._stop("kube-apiserver")
        time.sleep(down)
        self._start("kube-apiserver")
        self.wait_api()

    def log_tail(self, name: str, size: int = 3000) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    def stop(self) -> None:
        for name in ("kubelet", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            self._stop(name)
        # the pods' containers (the kubelet does not remove them when it stops)
        listed = subprocess.run(
            ["docker", "ps", "-aq", "--filter", "label=io.kubernetes.pod.namespace"], capture_output=True, text=True
        )
        ids = listed.stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        for key, value in self.saved_sysctls.items():
            with contextlib.suppress(OSError):
                Path("/proc/sys", key).write_text(value)
        for folder in ("/var/log/pods", "/var/log/containers"):
            shutil.rmtree(folder, ignore_errors=True)
        for root in Path("/sys/fs/cgroup").glob("*/kubepods"):
            _remove_cgroup(root)
        with contextlib.suppress(FileNotFoundError):
            _remove_cgroup(Path("/sys/fs/cgroup/kubepods"))
        subprocess.run(["umount", "-R", str(self.folder / "kubelet")], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def _remove_cgroup(path: Path) -> None:
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


def start(folder: Path) -> Cluster:
    """Start a cluster whose state lives in ``folder``; raises with the logs if it cannot."""
    bins = binaries()
    if subprocess.run(["docker", "image", "inspect", PAUSE_IMAGE], capture_output=True).returncode != 0:
        subprocess.run(
            ["docker", "import", "--change", 'ENTRYPOINT ["/pause"]', str(bins / "pause.tar"), PAUSE_IMAGE],
            check=True,
            capture_output=True,
        )
    folder.mkdir(parents=True, exist_ok=True)
    pki = folder / "pki"
    _certs(pki)
    (folder / "tokens.csv").write_text(
        f'admin-token,admin,admin,"system:masters"\nkubelet-token,system:node:{NODE},kubelet,"system:nodes"\n'
    )
    api_port, etcd_port, peer_port = free_port(), free_port(), free_port()
    kubelet_port, healthz_port = free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    for who, token in (("admin", "admin-token"), ("kubelet", "kubelet-token")):
        (folder / f"{who}.kubeconfig").write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "test", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}
                    ],
                    "users": [{"name": who, "user": {"token": token}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": who}}],
                    "current-context": "test",
                }
            )
        )
    cgroup_driver = subprocess.run(
        ["docker", "info", "--format", "{{.CgroupDriver}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    admin = str(folder / "admin.kubeconfig")
    cluster = Cluster(folder=folder, bins=bins, api_port=api_port, kubeconfig=Path(admin))
    cluster.commands = {
        "etcd": [
            "etcd", "--data-dir", str(folder / "etcd"), "--name", "test",
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"test=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",
        ],
        "kube-apiserver": [
            str(bins / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}", "--insecure-port=0",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}", f"--token-auth-file={folder / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            "--service-cluster-ip-range=198.18.0.0/24", "--endpoint-reconciler-type=none",
            "--disable-admission-plugins=ServiceAccount",
            f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'kubelet-client.key'}",
            "--kubelet-preferred-address-types=Hostname",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--allow-privileged=false",
            # Jobs watched straight from etcd, compacted every 5 s: a watch from an old
            # resourceVersion expires (410 Gone) within seconds, as it does after a while
            # on a production API server
            "--watch-cache-sizes=jobs.batch#0", "--etcd-compaction-interval=5s",
        ],
        "kube-controller-manager": [
            str(bins / "kube-controller-manager"), f"--kubeconfig={admin}",
            "--controllers=job,garbagecollector,namespace,nodelifecycle,podgc,resourcequota",
            "--leader-elect=false", "--port=0", "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            "--node-monitor-period=2s",
        ],
        "kube-scheduler": [
            str(bins / "kube-scheduler"), f"--kubeconfig={admin}",
            "--leader-elect=false", "--port=0", "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
        ],
        "kubelet": [
            str(bins / "kubelet"), f"--kubeconfig={folder / 'kubelet.kubeconfig'}",
            "--container-runtime=docker", f"--cgroup-driver={cgroup_driver}",
            "--fail-swap-on=false", f"--pod-infra-container-image={PAUSE_IMAGE}",
            "--address=127.0.0.1", f"--port={kubelet_port}", "--read-only-port=0",
            "--healthz-bind-address=127.0.0.1", f"--healthz-port={healthz_port}",
            "--make-iptables-util-chains=false",
            "--image-gc-high-threshold=100", "--image-gc-low-threshold=99",
            f"--hostname-override={NODE}", f"--root-dir={folder / 'kubelet'}", f"--cert-dir={folder / 'kubelet-pki'}",
            f"--client-ca-file={pki / 'ca.crt'}", "--authorization-mode=AlwaysAllow", "--anonymous-auth=false",
            "--eviction-hard=memory.available<100Mi,nodefs.available<1%,imagefs.available<1%",
            "--sync-frequency=2s", "--node-status-update-frequency=2s",
            f"--volume-plugin-dir={folder / 'volume-plugins'}", "--serialize-image-pulls=false",
        ],
    }  # fmt: skip
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            cluster.saved_sysctls[key] = Path("/proc/sys", key).read_text().strip()
    try:
        cluster._start("etcd")
        cluster._start("kube-apiserver")
        cluster.wait_api()
        for name in ("kube-controller-manager", "kube-scheduler", "kubelet"):
            cluster._start(name)
        cluster.wait_node()
    except BaseException:
        keep = folder.with_name(folder.name + "-failed")
        shutil.rmtree(keep, ignore_errors=True)
        with contextlib.suppress(OSError):
            shutil.copytree(folder, keep, ignore=shutil.ignore_patterns("etcd", "kubelet"))
        cluster.stop()
        raise
    return cluster
