"""analysis.yaml validation (file, line, key in every error), output patterns, job keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollerblade.analyses.jobs import plan_jobs
from rollerblade.analyses.patterns import PatternError, derivative_path, render
from rollerblade.analyses.spec import AnalysisSpecError, load_spec, parse_spec
from rollerblade.records import ScanRecord

ROOT = Path(__file__).resolve().parents[2]
GOOD = """name: brain-mask
version: 1.0.0
image:
  build: .
command: python3 brain_mask.py --level 2
slice: scan
input: suffix=T1w
resources:
  cpu: 0.5
  memory: 2g
  timeout: 60
outputs:
  - sub-{sub}[_ses-{ses}]_desc-brain_mask.nii.gz
params:
  threshold: 0.3
"""


def test_a_valid_spec() -> None:
    spec = parse_spec(GOOD)
    assert spec.command == ("python3", "brain_mask.py", "--level", "2")
    assert spec.resources.memory == 2 << 30 and spec.resources.cpu == 0.5 and spec.params == {"threshold": 0.3}


@pytest.mark.parametrize("name", ["brain-mask", "tissue-volumes", "qc-snapshot", "mean-anat"])
def test_the_example_analyses_are_valid(name: str) -> None:
    spec = load_spec(ROOT / "analyses" / name / "analysis.yaml")
    assert spec.name == name and (ROOT / "analyses" / name / "Dockerfile").is_file()
    assert (ROOT / "analyses" / name / "README.md").is_file()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("slice: scan", "slise: scan"), "analysis.yaml:6: slise: unknown key (did you mean 'slice'?)"),
        (("  memory: 2g", "  memory: lots"), "analysis.yaml:10: resources.memory: 'lots' is not a size"),
        (("  cpu: 0.5", "  cpu: -1"), "analysis.yaml:9: resources.cpu: -1 must be a positive number of cores"),
        (("  cpu: 0.5", "  cpus: 1"), "analysis.yaml:9: resources.cpus: unknown key"),
        (("slice: scan", "slice: study"), "analysis.yaml:6: slice: 'study' is not one of scan, session, subject"),
        (("input: suffix=T1w", "input: sufix=T1w"), "analysis.yaml:7: input: unknown field 'sufix'"),
        (
            ("  - sub-{sub}[_ses-{ses}]_desc-brain_mask.nii.gz", "  - ../sub-{sub}.nii.gz"),
            "analysis.yaml:13: outputs.0: output pattern '../sub-{sub}.nii.gz' must be a relative path",
        ),
        (
            ("  - sub-{sub}[_ses-{ses}]_desc-brain_mask.nii.gz", "  - sub-{sub}[_ses-{ses}_x.nii.gz"),
            "outputs.0: output pattern 'sub-{sub}[_ses-{ses}_x.nii.gz' has unbalanced or nested [ ]",
        ),
        (("name: brain-mask", "name: ../evil"), "analysis.yaml:1: name: invalid dataset name"),
        (("command: python3 brain_mask.py --level 2", "command: []"), "analysis.yaml:5: command: must not be empty"),
        (("image:\n  build: .", "image:\n  pull: x"), "image: give either 'build"),
        (("version: 1.0.0\n", ""), "missing required key 'version'"),
        (("  timeout: 60", "  timeout: [60"), "invalid YAML"),
    ],
)
def test_invalid_specs_say_file_line_and_key(change: tuple[str, str], expected: str) -> None:
    with pytest.raises(AnalysisSpecError) as info:
        parse_spec(GOOD.replace(*change))
    assert expected in str(info.value)


def test_patterns() -> None:
    values = {"sub": "01", "ses": "2", "datatype": "anat"}
    assert render("sub-{sub}[_ses-{ses}][_run-{run}]_desc-x_mask.nii.gz", values) == "sub-01_ses-2_desc-x_mask.nii.gz"
    assert derivative_path("sub-{sub}[_ses-{ses}]_mask.nii.gz", values) == "sub-01/ses-2/anat/sub-01_ses-2_mask.nii.gz"
    assert derivative_path("sub-{sub}/figures/sub-{sub}.png", values) == "sub-01/figures/sub-01.png"
    with pytest.raises(PatternError, match=r"needs \{task\}, which the source does not have"):
        render("sub-{sub}_task-{task}_bold.nii.gz", values)


def _reference_render(pattern: str, values: dict[str, str]) -> str | None:
    """The definition, by two regular-expression passes: keep a [group] when each of its
    {keys} has a value, then fill every {key}; None when a required key has none."""

    def keep(group: re.Match[str]) -> str:
        return group[1] if all(values.get(k) for k in re.findall(r"\{(\w+)\}", group[1])) else ""

    kept = re.sub(r"\[([^\[\]]*)\]", keep, pattern)
    if any(not values.get(k) for k in re.findall(r"\{(\w+)\}", kept)):
        return None
    return re.sub(r"\{(\w+)\}", lambda m: values[m[1]], kept)


_literal = st.text(alphabet="ab_-.", min_size=1, max_size=3)
_field = st.sampled_from(["{sub}", "{ses}", "{run}", "{task}"])
_flat = st.lists(st.one_of(_literal, _field), min_size=1, max_size=4).map("".join)


@given(
    pattern=st.lists(st.one_of(_flat, _flat.map(lambda x: f"[{x}]")), min_size=1, max_size=4).map("".join),
    values=st.dictionaries(st.sampled_from(["sub", "ses", "run", "task"]), st.sampled_from(["", "01", "x"])),
)
def test_pattern_rendering_matches_its_definition(pattern: str, values: dict[str, str]) -> None:
    expected = _reference_render(pattern, values)
    if expected is None:
        with pytest.raises(PatternError):
            render(pattern, values)
    else:
        assert render(pattern, values) == expected


def record(path: str, md5: str, **entities: str) -> ScanRecord:
    return ScanRecord(
        "ds",
        path,
        {"datatype": "anat", "suffix": "T1w", "extension": ".nii.gz", **entities},
        {},
        {},
        {},
        {},
        {"md5": md5},
    )


def test_plan_slices_and_stable_keys() -> None:
    records = [
        record(f"sub-0{s}/ses-{n}/anat/sub-0{s}_ses-{n}_T1w.nii.gz", f"md5-{s}{n}", sub=f"0{s}", ses=str(n))
        for s in (1, 2)
        for n in (1, 2)
    ]
    spec = parse_spec(GOOD)
    scans = plan_jobs(spec, "sha256:abc", records)
    assert len(scans) == 4 and scans[0].outputs == ("sub-01/ses-1/anat/sub-01_ses-1_desc-brain_mask.nii.gz",)
    assert [j.key for j in plan_jobs(spec, "sha256:abc", reversed(records))] == [j.key for j in scans]
    assert plan_jobs(spec, "sha256:other", records)[0].key != scans[0].key  # another image
    changed = [record(records[0].path, "md5-changed", sub="01", ses="1"), *records[1:]]
    assert plan_jobs(spec, "sha256:abc", changed)[0].key != scans[0].key  # another input checksum
    subjects = plan_jobs(
        parse_spec(GOOD.replace("slice: scan", "slice: subject").replace("[_ses-{ses}]", "")), "sha256:abc", records
    )
    assert [(j.slice_id, len(j.sources)) for j in subjects] == [("sub-01", 2), ("sub-02", 2)]
