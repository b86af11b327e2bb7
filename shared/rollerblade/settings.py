"""One ``Settings`` object, read once by an entry point and passed down.

Sources, each overriding the one before: defaults, ``ROLLERBLADE_*`` environment
variables, CLI flags / explicit arguments. The core never reads ``os.environ``; entry
points call :meth:`Settings.from_env` with the environment they were given. Unknown
``ROLLERBLADE_*`` variables and badly typed values fail at start-up with a hint.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from rollerblade.errors import SettingsError

Backend = Literal["local", "gcp"]
ExecutorName = Literal["docker", "process", "gke"]
ENV_PREFIX = "ROLLERBLADE_"
#: Variables of the build scripts (scripts/setup.sh, docker/*/build.sh), not settings.
SCRIPT_VARIABLES = frozenset({"ROLLERBLADE_CACHE", "ROLLERBLADE_SKIP_DOCKER", "ROLLERBLADE_SKIP_KUBE"})
#: Read by the CLI itself, not settings of a store: ``--server`` and its token.
CLIENT_VARIABLES = frozenset({"ROLLERBLADE_SERVER", "ROLLERBLADE_TOKEN", "ROLLERBLADE_CLOUD_RUN_TOKEN"})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where the embedded store lives and how hard to work."""

    home: Path = Path.home() / ".rollerblade"
    """Folder of the embedded store: ``bucket/`` (objects), ``index.sqlite``, ``events.sqlite``.
    Env: ``ROLLERBLADE_HOME``; CLI: ``--home``."""

    backend: Backend = "local"
    """Which adapters to use. ``local``: directory bucket, SQLite index, SQLite event queue.
    ``gcp``: Cloud Storage bucket, Firestore index, Pub/Sub (the standard
    ``STORAGE_EMULATOR_HOST``, ``FIRESTORE_EMULATOR_HOST``, ``PUBSUB_EMULATOR_HOST`` point the
    clients at local emulators). Env: ``ROLLERBLADE_BACKEND``."""

    gcp_project: str = ""
    """Google Cloud project of the ``gcp`` backend. Env: ``ROLLERBLADE_GCP_PROJECT``."""

    bucket: str = ""
    """Cloud Storage bucket of the ``gcp`` backend. Env: ``ROLLERBLADE_BUCKET``."""

    collection_prefix: str = ""
    """Prefix of every Firestore collection (several deployments in one database).
    Env: ``ROLLERBLADE_COLLECTION_PREFIX``."""

    topic_prefix: str = ""
    """Prefix of the deployment's Pub/Sub topics (Terraform's are ``rollerblade-``): set,
    the ``gcp`` backend publishes events such as rerun batches there (and creates nothing);
    empty, events go to a local queue under ``home``. Env: ``ROLLERBLADE_TOPIC_PREFIX``."""

    import_wait: float = 600.0
    """Seconds an ``import`` into a deployment (``topic_prefix`` set: its functions index
    what lands in the bucket) waits for the index to show every file.
    Env: ``ROLLERBLADE_IMPORT_WAIT``."""

    rerun_batch: int = 500
    """Objects re-indexed per rerun message; a larger selection is fanned out in messages
    of this many. Env: ``ROLLERBLADE_RERUN_BATCH``."""

    workers: int = 4
    """Parallel workers for reading files while re-indexing (capped at the CPU count).
    Env: ``ROLLERBLADE_WORKERS``."""

    import_lease: float = 30.0
    """Seconds an ``import`` holds its claim on a dataset name without renewing it (it
    renews it while it runs). A killed import can be finished by running it again once
    its claim has lapsed. Env: ``ROLLERBLADE_IMPORT_LEASE``."""

    executor: ExecutorName = "docker"
    """Where Analyses run: ``docker`` (the local engine, offline and locked down),
    ``process`` (plain processes on the host, for machines without Docker) or ``gke``
    (Kubernetes Jobs: GKE Autopilot in the cloud deployment, see docs/cloud.md).
    Env: ``ROLLERBLADE_EXECUTOR``; CLI: ``run --executor``."""

    max_jobs: int = 50
    """Jobs in flight at once on the ``gke`` executor, all Analyses together (an Analysis
    may set a lower ``resources.max_in_flight``); more wait in the job queue, not as
    Pending pods. Env: ``ROLLERBLADE_MAX_JOBS``."""

    gke_namespace: str = "rollerblade-jobs"
    """Kubernetes namespace of the ``gke`` executor's Jobs. Env: ``ROLLERBLADE_GKE_NAMESPACE``."""

    kubeconfig: str = ""
    """Kubeconfig file of the ``gke`` executor's cluster (tests, a workstation); empty: the
    in-cluster service account, or ``gke_endpoint`` with Google credentials.
    Env: ``ROLLERBLADE_KUBECONFIG``."""

    gke_endpoint: str = ""
    """API server address of the GKE cluster (Terraform output), reached with the Google
    credentials of the caller (the functions' service account). Env: ``ROLLERBLADE_GKE_ENDPOINT``."""

    gke_ca_cert: str = ""
    """The GKE cluster's CA certificate, base64 (Terraform output). Env: ``ROLLERBLADE_GKE_CA_CERT``."""

    stager_image: str = ""
    """Rollerblade's own image (pinned by digest), which stages each job's slice into its pod
    and stores its outputs. Env: ``ROLLERBLADE_STAGER_IMAGE``."""

    gke_pending_limit: float = 900.0
    """Seconds a job's pod may stay Pending (unschedulable, quota) before the job ends in
    error with the reason. Env: ``ROLLERBLADE_GKE_PENDING_LIMIT``."""

    function_actor: str = "cloud-function"
    """Actor that the Cloud Functions (functions/main.py) record on what they index and
    re-index. Env: ``ROLLERBLADE_FUNCTION_ACTOR``."""

    google_audience: str = ""
    """When set, the HTTP API also accepts Google-signed identity tokens with this audience
    (the Cloud Run service's URL), mapped to users by email (``user add --email``). Env:
    ``ROLLERBLADE_GOOGLE_AUDIENCE``."""

    google_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    """Where Google's token-signing certificates are fetched from (cached for an hour).
    Env: ``ROLLERBLADE_GOOGLE_CERTS_URL``."""

    @property
    def work_root(self) -> Path:
        return self.home / "work"

    @property
    def bucket_root(self) -> Path:
        return self.home / "bucket"

    @property
    def index_path(self) -> Path:
        return self.home / "index.sqlite"

    @property
    def bus_path(self) -> Path:
        return self.home / "events.sqlite"

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Settings:
        """Build settings from ``ROLLERBLADE_*`` variables, then ``overrides`` (None = unset)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for var, raw in env.items():
            if not var.startswith(ENV_PREFIX) or var in SCRIPT_VARIABLES | CLIENT_VARIABLES:
                continue
            name = var[len(ENV_PREFIX) :].lower()
            if name not in names:
                close = difflib.get_close_matches(name, sorted(names), n=1)
                hint = f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else ""
                raise SettingsError(
                    f"unknown setting {var}{hint}; known: " + ", ".join(ENV_PREFIX + n.upper() for n in sorted(names))
                )
            values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**{k: _convert(k, v) for k, v in values.items()})
        if settings.backend == "gcp" and not (settings.gcp_project and settings.bucket):
            raise SettingsError(f"{ENV_PREFIX}BACKEND=gcp needs {ENV_PREFIX}GCP_PROJECT and {ENV_PREFIX}BUCKET")
        return settings


def _convert(name: str, value: Any) -> Any:
    if name == "home":
        return Path(value).expanduser()
    if name in ("workers", "rerun_batch", "max_jobs"):
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be a whole number, not {value!r}") from None
        if number < 1:
            raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be at least 1, not {number}")
        return number
    if name in ("import_lease", "import_wait", "gke_pending_limit"):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be a number of seconds, not {value!r}") from None
        if not 0.1 <= seconds <= 86400:
            raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be between 0.1 and 86400 seconds, not {seconds}")
        return seconds
    if name == "executor":
        if value not in ("docker", "process", "gke"):
            raise SettingsError(f"{ENV_PREFIX}EXECUTOR must be 'docker', 'process' or 'gke', not {value!r}")
        return value
    if name == "backend":
        if value not in ("local", "gcp"):
            raise SettingsError(f"{ENV_PREFIX}BACKEND must be 'local' or 'gcp', not {value!r}")
        return value
    return value
