"""The Executor port on a local Docker engine, through the Docker SDK.

Every container runs offline and locked down: ``--network none``, user 65534 (nobody),
read-only root filesystem, no capabilities, ``no-new-privileges``, ``--init``, memory
(without swap), CPU and PID limits; the slice is mounted read-only at ``/input`` and
the output folder writable at ``/output``, with a small ``/tmp``. Images are built with
``--network none`` from local base images only (no registry is ever contacted). Each
container carries the label ``rollerblade.store=<store id>`` so that a later run can
remove what a killed one left behind.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from rollerblade.adapters.local_exec import ExecResult, ExecSpec, LocalExecutor
from rollerblade.adapters.logcap import CappedLog, now
from rollerblade.errors import InputError, TemporaryError
from rollerblade.ports import Storage

STORE_LABEL = "rollerblade.store"
JOB_LABEL = "rollerblade.job"
USER = "65534:65534"


class DockerExecutor(LocalExecutor):
    name = "docker"

    def __init__(self, *, store_id: str, storage: Storage, workdir: Path, client: Any = None) -> None:
        super().__init__(storage=storage, workdir=workdir)
        self.store_id = store_id
        try:
            self._client = client or docker.from_env(timeout=600)
            self._client.ping()
        except (docker.errors.DockerException, requests.exceptions.ConnectionError) as e:
            raise TemporaryError(
                f"cannot reach the Docker engine ({e}); start dockerd, or use ROLLERBLADE_EXECUTOR=process"
            ) from e
        self._running: dict[str, Any] = {}
        self._stopped: set[str] = set()
        self._run_lock = threading.Lock()

    def prepare(self, *, folder: str, image_build: str | None, image_ref: str | None, tag: str) -> str:
        if image_ref:
            try:
                return str(self._client.images.get(image_ref).id)
            except docker.errors.ImageNotFound:
                raise InputError(
                    f"image {image_ref!r} is not in the local Docker engine; build or load it first"
                ) from None
        context = os.path.normpath(os.path.join(folder, image_build or "."))
        if not os.path.isfile(os.path.join(context, "Dockerfile")):
            raise InputError(f"{context}: no Dockerfile to build the image from")
        try:
            image, _ = self._client.images.build(
                path=context, tag=tag, network_mode="none", forcerm=True, pull=False, rm=True
            )
        except docker.errors.BuildError as e:
            lines = [str(chunk.get("stream") or chunk.get("error") or "").rstrip() for chunk in e.build_log]
            tail = "\n".join(line for line in lines if line)[-2000:]
            raise InputError(f"building the image from {context} failed: {e.msg}\n{tail}") from None
        except docker.errors.APIError as e:
            raise InputError(f"building the image from {context} failed: {e.explanation or e}") from None
        return str(image.id)

    def run(self, *, spec: ExecSpec) -> ExecResult:
        started = now()
        command = [part.replace("{input}", "/input").replace("{output}", "/output") for part in spec.command]
        os.chmod(spec.output_dir, 0o777)  # noqa: S103 - written by the unprivileged container user
        try:
            container = self._client.containers.create(
                image=spec.image,
                command=command,
                detach=True,
                network_mode="none",
                user=USER,
                read_only=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                init=True,
                mem_limit=spec.memory,
                memswap_limit=spec.memory,
                nano_cpus=int(spec.cpu * 1e9),
                pids_limit=spec.pids_limit,
                environment=dict(spec.env),
                working_dir="/app",
                tmpfs={"/tmp": "size=256m,mode=1777"},
                volumes={
                    spec.input_dir: {"bind": "/input", "mode": "ro"},
                    spec.output_dir: {"bind": "/output", "mode": "rw"},
                },
                labels={STORE_LABEL: self.store_id, JOB_LABEL: spec.job_key},
            )
        except docker.errors.ImageNotFound:
            return ExecResult(
                exit_code=None,
                started=started,
                ended=now(),
                error=f"image {spec.image} is missing from the Docker engine; register the analysis again",
            )
        except docker.errors.APIError as e:
            return ExecResult(exit_code=None, started=started, ended=now(), error=f"docker: {e.explanation or e}")
        with self._run_lock:
            self._running[spec.job_key] = container
        log = CappedLog(spec.log_path, spec.log_limit)
        timed_out = False
        try:
            container.start()
            try:
                code = int(container.wait(timeout=spec.timeout)["StatusCode"])
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                timed_out = True
                container.kill()
                code = int(container.wait(timeout=60)["StatusCode"])
            # read the logs once the container has exited: a following stream can end
            # before the engine has delivered a fast writer's last megabytes
            self._copy_logs(container, log)
            container.reload()
            oom = bool(container.attrs["State"].get("OOMKilled"))
        except docker.errors.APIError as e:
            return ExecResult(exit_code=None, started=started, ended=now(), error=f"docker: {e.explanation or e}")
        finally:
            log.close()
            with self._run_lock:
                self._running.pop(spec.job_key, None)
                interrupted = spec.job_key in self._stopped
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
        return ExecResult(
            exit_code=code,
            started=started,
            ended=now(),
            oom_killed=oom,
            timed_out=timed_out,
            interrupted=interrupted,
            log_bytes=log.total,
            log_truncated=log.truncated,
        )

    @staticmethod
    def _copy_logs(container: Any, log: CappedLog) -> None:
        try:
            for chunk in container.logs(stream=True, follow=False, stdout=True, stderr=True):
                log.write(chunk)
        except (docker.errors.APIError, requests.exceptions.RequestException):
            pass

    def _stop_runs(self) -> None:
        with self._run_lock:
            running = dict(self._running)
            self._stopped.update(running)
        for container in running.values():
            with contextlib.suppress(docker.errors.APIError):
                container.kill()

    def cleanup(self) -> int:
        orphans = self._client.containers.list(all=True, filters={"label": f"{STORE_LABEL}={self.store_id}"})
        for container in orphans:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
        return len(orphans)
