"""GKE Autopilot's resource rules for a job's pod, against hand-worked cases from Google's
published table (general-purpose class: 0.25 vCPU steps, at least 0.25 vCPU and 512 MiB,
1 to 6.5 GiB of memory per vCPU, at most 30 vCPU / 110 GiB / 10 GiB of disk)."""

from __future__ import annotations

import pytest

from rollerblade.analyses.autopilot import AutopilotRefusal, fit
from rollerblade.analyses.spec import Resources

MIB, GIB = 1 << 20, 1 << 30


@pytest.mark.parametrize(
    ("cpu", "memory", "want_cpu_milli", "want_memory"),
    [
        (1.0, 1 * GIB, 1000, 1 * GIB),  # valid as declared: unchanged
        (0.1, 128 * MIB, 250, 512 * MIB),  # both below the minimums
        (0.3, 512 * MIB, 500, 512 * MIB),  # 0.3 -> the next quarter; 512 MiB per 0.5 vCPU = 1 GiB/vCPU, fine
        (2.0, 1 * GIB, 2000, 2 * GIB),  # 1 GiB per vCPU at least
        (0.5, 8 * GIB, 1250, 8 * GIB),  # at most 6.5 GiB per vCPU: 8/6.5 = 1.23 -> 1.25 vCPU
        (30.0, 110 * GIB, 30000, 110 * GIB),  # the maxima themselves
    ],
)
def test_requests_are_raised_to_what_autopilot_provisions(
    cpu: float, memory: int, want_cpu_milli: int, want_memory: int
) -> None:
    size = fit(Resources(cpu=cpu, memory=memory))
    assert (size.cpu_milli, size.memory) == (want_cpu_milli, want_memory)
    changed = (want_cpu_milli, want_memory) != (round(cpu * 1000), memory)
    assert bool(size.notes) == changed  # every change is said, for the job record
    if want_cpu_milli != round(cpu * 1000):
        assert any(note.startswith(f"cpu raised from {cpu:g} to {want_cpu_milli / 1000:g}") for note in size.notes)


@pytest.mark.parametrize(
    ("resources", "reason"),
    [
        (Resources(cpu=31), "above Autopilot's maximum of 30 vCPU"),
        (Resources(memory=111 * GIB, cpu=20), "above Autopilot's maximum of 110 GiB"),
        (Resources(memory=100 * GIB, cpu=1), None),  # 100 GiB needs 15.5 vCPU: raised, allowed
        (Resources(disk=11 * GIB), "above Autopilot's maximum of 10 GiB of ephemeral storage"),
        (Resources(gpu=1), "without resources.accelerator"),
        (Resources(gpu=1, accelerator="nvidia-gtx-1080"), "not a GPU Autopilot offers"),
        (Resources(gpu=3, accelerator="nvidia-l4"), "allowed: 1, 2, 4, 8"),
    ],
)
def test_what_autopilot_would_reject_is_refused_with_the_reason(resources: Resources, reason: str | None) -> None:
    if reason is None:
        size = fit(resources)
        assert size.cpu_milli == 15500 and size.memory == 100 * GIB
        return
    with pytest.raises(AutopilotRefusal, match=reason):
        fit(resources)


def test_gpu_and_spot_select_their_nodes() -> None:
    size = fit(Resources(cpu=4, memory=16 * GIB, gpu=2, accelerator="nvidia-l4", spot=True))
    assert size.gpu == 2
    assert size.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4", "cloud.google.com/gke-spot": "true"}
    assert fit(Resources()).node_selector == {}
