"""The Cloud Functions' structured logs (functions/main.py): one JSON object per line on
stdout, in the shape Cloud Logging parses (severity, message, time, source location,
labels of the event being handled)."""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import sys
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from tests.conftest import ROOT


@pytest.fixture
def main() -> Iterator[ModuleType]:
    """functions/main.py imported afresh; the root logger is restored afterwards (the
    import installs the JSON handler on it)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    spec = importlib.util.spec_from_file_location("rollerblade_functions_main", ROOT / "functions" / "main.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        yield module
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def record(level: int, message: str, *args: Any, **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord("rollerblade.test", level, __file__, 42, message, args, None, func="handler")
    made.__dict__.update(extra)
    return made


def entry(main: ModuleType, made: logging.LogRecord) -> dict[str, Any]:
    line = main.CloudLoggingFormatter().format(made)
    assert "\n" not in line, "one entry per line"
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_a_record_becomes_a_cloud_logging_entry(main: ModuleType) -> None:
    parsed = entry(main, record(logging.INFO, "indexed %s", "sub-01_T1w.nii.gz"))
    assert parsed["severity"] == "INFO"
    assert parsed["message"] == "indexed sub-01_T1w.nii.gz"
    assert parsed["time"].startswith("20") and parsed["time"].endswith("+00:00")
    assert parsed["logging.googleapis.com/sourceLocation"] == {"file": __file__, "line": "42", "function": "handler"}
    assert parsed["logging.googleapis.com/labels"] == {"logger": "rollerblade.test"}


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (logging.DEBUG, "DEBUG"),
        (logging.INFO, "INFO"),
        (logging.WARNING, "WARNING"),
        (logging.ERROR, "ERROR"),
        (logging.CRITICAL, "CRITICAL"),
        (25, "INFO"),  # a custom level takes the standard one below it
        (5, "DEFAULT"),
    ],
)
def test_levels_map_to_cloud_logging_severities(main: ModuleType, level: int, severity: str) -> None:
    assert entry(main, record(level, "x"))["severity"] == severity


def test_a_traceback_stays_in_the_entrys_message(main: ModuleType) -> None:
    try:
        raise ValueError("corrupt NIfTI header")
    except ValueError:
        made = record(logging.ERROR, "could not index")
        made.exc_info = sys.exc_info()
    parsed = entry(main, made)
    assert parsed["severity"] == "ERROR"
    assert parsed["message"].startswith("could not index\nTraceback (most recent call last):")
    assert "ValueError: corrupt NIfTI header" in parsed["message"]


def test_labels_of_the_handled_event_and_of_the_record(main: ModuleType) -> None:
    with main.log_labels(topic="job-queue", message_id="123", empty=""):
        parsed = entry(main, record(logging.INFO, "x", labels={"job": "abc"}))
    assert parsed["logging.googleapis.com/labels"] == {
        "logger": "rollerblade.test",
        "topic": "job-queue",
        "message_id": "123",
        "job": "abc",
    }
    assert entry(main, record(logging.INFO, "x"))["logging.googleapis.com/labels"] == {"logger": "rollerblade.test"}


def test_the_root_logger_is_configured_once(main: ModuleType) -> None:
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h.formatter, main.CloudLoggingFormatter)]
    assert len(ours) == 1 and root.level == logging.INFO
    assert main.configure_logging() is ours[0]
    assert len([h for h in root.handlers if isinstance(h.formatter, main.CloudLoggingFormatter)]) == 1


class FakeCloudEvent(SimpleNamespace):
    def __getitem__(self, key: str) -> Any:
        return {"id": "ce-1", "type": "google.cloud.pubsub.topic.v1.messagePublished"}[key]


def test_a_function_logs_json_lines_with_its_event(main: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    """rule_engine acknowledges a message that is not a Rollerblade event, and says so in an
    ERROR entry labelled with the function, the CloudEvent and the Pub/Sub message."""
    event = FakeCloudEvent(
        data={
            "message": {"data": base64.b64encode(b'{"type": "nope"}').decode(), "messageId": "987"},
            "subscription": "projects/p/subscriptions/rollerblade-scans",
        }
    )
    main.rule_engine(event)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 1, lines
    assert lines[0]["severity"] == "ERROR"
    assert "not a Rollerblade event" in lines[0]["message"]
    assert lines[0]["logging.googleapis.com/labels"] == {
        "logger": "rollerblade.functions",
        "function": "rule_engine",
        "event_id": "ce-1",
        "event_type": "google.cloud.pubsub.topic.v1.messagePublished",
        "message_id": "987",
        "subscription": "rollerblade-scans",
    }
