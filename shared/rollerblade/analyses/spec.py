"""``analysis.yaml``: the typed model of an Analysis and its validation.

Every problem is an :class:`AnalysisSpecError` naming the file, the line and the key,
e.g. ``analyses/brain-mask/analysis.yaml:7: resources.memory: '2 gigs' is not a size
(use 512m, 2g or a number of bytes)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from rollerblade.abids.layout import check_dataset_name
from rollerblade.analyses.patterns import PatternError, check_pattern
from rollerblade.errors import FileLineError, InputError, QueryError
from rollerblade.query.fields import check_fields
from rollerblade.query.parser import parse_query

SliceKind = Literal["scan", "session", "subject"]
KEYS = (
    "name",
    "version",
    "description",
    "image",
    "command",
    "slice",
    "input",
    "resources",
    "outputs",
    "params",
    "retries",
)
REQUIRED = ("name", "version", "image", "command", "outputs")
RESOURCE_KEYS = ("cpu", "memory", "timeout", "gpu", "accelerator", "spot", "disk", "max_in_flight")
IMAGE_KEYS = ("build", "ref")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class AnalysisSpecError(FileLineError):
    """``analysis.yaml`` is invalid; says which file, line and key."""


@dataclasses.dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    memory: int = 512 << 20  # bytes
    timeout: float = 3600.0  # seconds
    gpu: int = 0  # declared for the cloud executor; the local executors refuse gpu > 0
    accelerator: str = ""  # the GPU type on GKE Autopilot (e.g. nvidia-l4); needed when gpu > 0
    spot: bool = False  # GKE: run on Spot capacity (cheaper, may be preempted: retried as lost)
    disk: int = 1 << 30  # GKE: ephemeral storage for /input, /output and /tmp (bytes)
    max_in_flight: int = 0  # jobs of this Analysis submitted at once (0: only the total limit)


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """``build``: a folder with a Dockerfile (relative to analysis.yaml); ``ref``: an existing local image."""

    build: str | None = None
    ref: str | None = None


@dataclasses.dataclass(frozen=True)
class AnalysisSpec:
    name: str
    version: str
    image: ImageSpec
    command: tuple[str, ...]
    outputs: tuple[str, ...]
    slice: SliceKind = "scan"
    input: str = ""
    resources: Resources = Resources()
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    retries: int = 0
    description: str = ""

    def to_doc(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AnalysisSpec:
        return cls(
            name=doc["name"],
            version=doc["version"],
            image=ImageSpec(**doc["image"]),
            command=tuple(doc["command"]),
            outputs=tuple(doc["outputs"]),
            slice=doc["slice"],
            input=doc["input"],
            resources=Resources(**doc["resources"]),
            params=dict(doc["params"]),
            retries=doc["retries"],
            description=doc.get("description", ""),
        )


def parse_size(value: Any) -> int:
    """``512m`` / ``2g`` / ``1.5GiB`` / 1048576 -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.fullmatch(str(value).strip())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a size (use 512m, 2g or a number of bytes)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def yaml_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """Map dotted key paths (``resources.memory``, ``outputs.1``) to 1-based line numbers."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = f"{prefix}{key.value}"
            out[path] = key.start_mark.line + 1
            out.update(yaml_lines(value, path + "."))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[f"{prefix}{i}"] = item.start_mark.line + 1
            out.update(yaml_lines(item, f"{prefix}{i}."))
    return out


def load_spec(path: Path) -> AnalysisSpec:
    """Read and validate an ``analysis.yaml``."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AnalysisSpecError(source, None, f"cannot read: {e}") from e
    return parse_spec(text, source)


def parse_spec(text: str, source: str = "analysis.yaml") -> AnalysisSpec:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise AnalysisSpecError(source, mark.line + 1 if mark else None, f"invalid YAML: {problem}") from e
    if not isinstance(data, dict):
        raise AnalysisSpecError(source, 1, "expected a mapping of keys (name, version, image, command, outputs ...)")
    lines = yaml_lines(node)

    def fail(key: str, message: str) -> AnalysisSpecError:
        return AnalysisSpecError(source, lines.get(key), f"{key}: {message}")

    for key in data:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(KEYS)})"
            raise fail(str(key), f"unknown key{hint}")
    for key in REQUIRED:
        if key not in data:
            raise AnalysisSpecError(source, None, f"missing required key {key!r}")
    try:
        name = check_dataset_name(str(data["name"]))
    except InputError as e:
        raise fail("name", str(e)) from None
    version = str(data["version"]).strip()
    if not version:
        raise fail("version", "must not be empty")
    image = _image(data["image"], fail)
    command = _command(data["command"], fail)
    slice_kind = data.get("slice", "scan")
    if slice_kind not in ("scan", "session", "subject"):
        raise fail("slice", f"{slice_kind!r} is not one of scan, session, subject")
    query = str(data.get("input") or "")
    try:
        check_fields(parse_query(query), query)
    except QueryError as e:
        raise fail("input", str(e)) from None
    outputs = data["outputs"]
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
        raise fail("outputs", "must be a non-empty list of file name patterns")
    for i, pattern in enumerate(outputs):
        try:
            check_pattern(pattern)
        except PatternError as e:
            raise fail(f"outputs.{i}", str(e)) from None
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise fail("params", "must be a mapping")
    retries = data.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        raise fail("retries", f"{retries!r} must be a whole number from 0 to 10")
    return AnalysisSpec(
        name=name,
        version=version,
        image=image,
        command=command,
        outputs=tuple(outputs),
        slice=slice_kind,
        input=query,
        resources=_resources(data.get("resources") or {}, fail),
        params=params,
        retries=retries,
        description=str(data.get("description") or ""),
    )


def _image(value: Any, fail: Any) -> ImageSpec:
    if isinstance(value, str):
        return ImageSpec(ref=value)
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in IMAGE_KEYS:
        raise fail("image", "give either 'build: <folder with a Dockerfile>' or 'ref: <local image>'")
    key, item = next(iter(value.items()))
    if not isinstance(item, str) or not item:
        raise fail(f"image.{key}", "must be a non-empty string")
    return ImageSpec(**{key: item})


def _command(value: Any, fail: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        parts = shlex.split(value)
    elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        parts = [str(v) for v in value]
    else:
        raise fail("command", "must be a string or a list of strings")
    if not parts:
        raise fail("command", "must not be empty")
    return tuple(parts)


def _resources(value: Any, fail: Any) -> Resources:
    if not isinstance(value, dict):
        raise fail("resources", "must be a mapping with " + ", ".join(RESOURCE_KEYS))
    for key in value:
        if key not in RESOURCE_KEYS:
            raise fail(f"resources.{key}", f"unknown key (known: {', '.join(RESOURCE_KEYS)})")
    out: dict[str, Any] = {}
    if "cpu" in value:
        cpu = value["cpu"]
        if isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or cpu <= 0:
            raise fail("resources.cpu", f"{cpu!r} must be a positive number of cores")
        out["cpu"] = float(cpu)
    if "memory" in value:
        try:
            out["memory"] = parse_size(value["memory"])
        except ValueError as e:
            raise fail("resources.memory", str(e)) from None
    if "timeout" in value:
        timeout = value["timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise fail("resources.timeout", f"{timeout!r} must be a positive number of seconds")
        out["timeout"] = float(timeout)
    if "gpu" in value:
        gpu = value["gpu"]
        if isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0:
            raise fail("resources.gpu", f"{gpu!r} must be a whole number of GPUs")
        out["gpu"] = gpu
    if "accelerator" in value:
        accelerator = value["accelerator"]
        if not isinstance(accelerator, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", accelerator):
            raise fail("resources.accelerator", f"{accelerator!r} must be a GPU type such as nvidia-l4")
        out["accelerator"] = accelerator
    if "spot" in value:
        if not isinstance(value["spot"], bool):
            raise fail("resources.spot", f"{value['spot']!r} must be true or false")
        out["spot"] = value["spot"]
    if "max_in_flight" in value:
        limit = value["max_in_flight"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise fail("resources.max_in_flight", f"{limit!r} must be a whole number (0: no limit of its own)")
        out["max_in_flight"] = limit
    if "disk" in value:
        try:
            out["disk"] = parse_size(value["disk"])
        except ValueError as e:
            raise fail("resources.disk", str(e)) from None
    return Resources(**out)
