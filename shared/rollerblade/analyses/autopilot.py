"""GKE Autopilot's admission rules for a job's pod, as pure functions.

Autopilot sizes nodes from the pod's requests, so requests must equal limits and lie
inside the ranges Google publishes for the compute class; below a minimum Autopilot
raises the request (we do it first, and say so in the job record), above a maximum it
rejects the pod (we refuse first, with the reason). Source, read in December 2026:
https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-resource-requests
(general-purpose compute class; GPU pods: "Autopilot GPU" tables).

Nothing here emulates Autopilot's own webhook, which no test can reach offline: the
numbers below are the published table, checked by unit tests against hand-worked cases.
"""

from __future__ import annotations

import dataclasses
import math

from rollerblade.analyses.spec import Resources
from rollerblade.errors import InputError

MIB = 1 << 20
GIB = 1 << 30

#: General-purpose class, per pod (the staging containers are small; the Analysis sets the size).
MIN_CPU_MILLI = 250  # non-bursting clusters; bursting clusters allow 50m, so 250m is valid on both
MAX_CPU_MILLI = 30_000
CPU_STEP_MILLI = 250  # CPU is provisioned in quarters of a vCPU
MIN_MEMORY = 512 * MIB
MAX_MEMORY = 110 * GIB
MIN_MEMORY_PER_CPU = 1 * GIB  # CPU:memory between 1:1 and 1:6.5 (vCPU:GiB)
MAX_MEMORY_PER_CPU = int(6.5 * GIB)
MIN_DISK = 10 * MIB
MAX_DISK = 10 * GIB
#: Spot pods get at most this grace period before preemption.
SPOT_GRACE_SECONDS = 15

#: Accelerators Autopilot schedules through ``cloud.google.com/gke-accelerator``, with the
#: GPU counts a pod may request. The per-count CPU and memory maxima of GPU pods are not
#: encoded: a pod over them is rejected by Autopilot's admission and ends as an ``error``.
ACCELERATORS: dict[str, tuple[int, ...]] = {
    "nvidia-tesla-t4": (1, 2, 4),
    "nvidia-l4": (1, 2, 4, 8),
    "nvidia-tesla-a100": (1, 2, 4, 8, 16),
    "nvidia-a100-80gb": (1, 2, 4, 8),
    "nvidia-h100-80gb": (1, 2, 4, 8),
}


class AutopilotRefusal(InputError):
    """Autopilot would reject this pod; the message says which limit and by how much."""


@dataclasses.dataclass(frozen=True)
class PodSize:
    """Requests (equal to limits) for the Analysis container, and what was changed."""

    cpu_milli: int
    memory: int
    disk: int
    gpu: int = 0
    node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()  # "cpu raised from 0.1 to 0.25 (Autopilot minimum)"

    @property
    def cpu(self) -> str:
        return f"{self.cpu_milli}m"


def fit(res: Resources) -> PodSize:
    """The Autopilot-valid size closest above ``res``; raises :class:`AutopilotRefusal`."""
    notes: list[str] = []
    selector: dict[str, str] = {}
    if res.gpu or res.accelerator:
        if not res.accelerator:
            raise AutopilotRefusal(
                f"{res.gpu} GPU(s) requested without resources.accelerator; one of: {', '.join(ACCELERATORS)}"
            )
        if res.accelerator not in ACCELERATORS:
            raise AutopilotRefusal(
                f"accelerator {res.accelerator!r} is not a GPU Autopilot offers; one of: {', '.join(ACCELERATORS)}"
            )
        counts = ACCELERATORS[res.accelerator]
        if res.gpu not in counts:
            raise AutopilotRefusal(
                f"{res.gpu} x {res.accelerator} is not a count Autopilot schedules "
                f"(allowed: {', '.join(map(str, counts))})"
            )
        selector["cloud.google.com/gke-accelerator"] = res.accelerator
    if res.spot:
        selector["cloud.google.com/gke-spot"] = "true"

    asked_cpu = math.ceil(res.cpu * 1000)
    cpu = max(asked_cpu, MIN_CPU_MILLI)
    cpu = math.ceil(cpu / CPU_STEP_MILLI) * CPU_STEP_MILLI
    if cpu > MAX_CPU_MILLI:
        raise AutopilotRefusal(f"cpu {res.cpu:g} is above Autopilot's maximum of {MAX_CPU_MILLI // 1000} vCPU per pod")
    memory = max(res.memory, MIN_MEMORY)
    if res.memory > MAX_MEMORY:
        raise AutopilotRefusal(f"memory {_gib(res.memory)} is above Autopilot's maximum of {_gib(MAX_MEMORY)} per pod")
    # the ratio: raise memory to 1 GiB per vCPU, or raise CPU to memory / 6.5 GiB
    if memory < cpu * MIN_MEMORY_PER_CPU // 1000:
        memory = cpu * MIN_MEMORY_PER_CPU // 1000
    if memory > cpu * MAX_MEMORY_PER_CPU // 1000:
        cpu = math.ceil(memory * 1000 / MAX_MEMORY_PER_CPU / CPU_STEP_MILLI) * CPU_STEP_MILLI
        if cpu > MAX_CPU_MILLI:
            raise AutopilotRefusal(
                f"memory {_gib(res.memory)} needs more than {MAX_CPU_MILLI // 1000} vCPU at Autopilot's "
                "maximum of 6.5 GiB per vCPU"
            )
    memory = math.ceil(memory / MIB) * MIB
    if cpu != asked_cpu:
        notes.append(
            f"cpu raised from {res.cpu:g} to {cpu / 1000:g} (Autopilot: quarters of a vCPU, at least 0.25, "
            "and at most 6.5 GiB of memory per vCPU)"
        )
    if memory != res.memory:
        notes.append(
            f"memory raised from {_mib(res.memory)} to {_mib(memory)} (Autopilot: at least 512 MiB, and 1 GiB per vCPU)"
        )
    if res.disk > MAX_DISK:
        raise AutopilotRefusal(
            f"disk {_gib(res.disk)} is above Autopilot's maximum of {_gib(MAX_DISK)} of ephemeral storage"
        )
    disk = max(res.disk, MIN_DISK)
    if disk != res.disk:
        notes.append(f"disk raised from {_mib(res.disk)} to {_mib(disk)} (Autopilot minimum)")
    return PodSize(cpu_milli=cpu, memory=memory, disk=disk, gpu=res.gpu, node_selector=selector, notes=tuple(notes))


def _gib(n: int) -> str:
    return f"{n / GIB:g} GiB"


def _mib(n: int) -> str:
    return f"{n / MIB:g} MiB"
