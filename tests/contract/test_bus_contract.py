"""The EventBus contract: durable, at-least-once, retried with delay, dead-lettered.
Run over the local SQLite queue and the Pub/Sub emulator (deadlines in whole seconds)."""

from __future__ import annotations

import time
from collections.abc import Callable

from rollerblade.pipeline.events import publish_all
from rollerblade.ports import EventBus

Factory = Callable[..., EventBus]


def test_publish_pull_ack(bus_factory: Factory) -> None:
    bus = bus_factory()
    ids = [bus.publish(topic="objects", message={"n": i}) for i in range(3)]
    bus.publish(topic="other", message={"n": 99})
    pulled = bus.pull(topic="objects", max_messages=10)
    assert sorted(m["n"] for _, m in pulled) == [0, 1, 2] and len(set(ids)) == 3
    assert bus.pull(topic="objects") == []  # leased
    bus.ack(message_ids=[i for i, _ in pulled])
    assert bus.pull(topic="objects", lease_seconds=0) == []
    assert [m for _, m in bus.pull(topic="other")] == [{"n": 99}]


def test_unacked_messages_survive_a_crash(bus_factory: Factory) -> None:
    first = bus_factory()
    first.publish(topic="objects", message={"key": "a"})
    assert len(first.pull(topic="objects", lease_seconds=0.05)) == 1
    time.sleep(0.1)  # the consumer died without acking; its lease expires
    again = bus_factory()  # a new process opens the same queue
    assert [m for _, m in again.pull(topic="objects")] == [{"key": "a"}]


def test_nack_delays_redelivery(bus_factory: Factory) -> None:
    bus = bus_factory()
    bus.publish(topic="objects", message={"key": "a"})
    [(message_id, _)] = bus.pull(topic="objects")
    bus.nack(message_id=message_id, delay=1.0, error="boom")
    assert bus.pull(topic="objects") == []
    time.sleep(1.5)
    assert [m for _, m in bus.pull(topic="objects")] == [{"key": "a"}]


def test_a_message_that_keeps_failing_is_dead_lettered(bus_factory: Factory) -> None:
    bus = bus_factory(max_attempts=5)
    bus.publish(topic="objects", message={"key": "poison"})
    bus.publish(topic="objects", message={"key": "fine"})
    handled = []
    for _ in range(40):
        messages = bus.pull(topic="objects", max_messages=10)
        for message_id, body in messages:
            if body["key"] == "poison":
                bus.nack(message_id=message_id, error="cannot handle")
            else:
                handled.append(body)
                bus.ack(message_ids=[message_id])
        if not messages:
            time.sleep(0.1)
        dead = bus.dead_letters(topic="objects")  # type: ignore[attr-defined]
        if dead:
            break
    assert handled == [{"key": "fine"}]  # the poison message never blocked the other
    assert [body for _, body, _ in dead] == [{"key": "poison"}]


def test_messages_arrive_as_published(bus_factory: Factory) -> None:
    """Texts beyond ASCII, object generations beyond 2^53, nested values, empty texts:
    what a handler gets is what was published, one at a time or many at once."""
    bus = bus_factory()
    messages = [
        {"dataset": "étude-ü", "path": "sub-01/anat/sub-01_T1w.nii.gz", "generation": 1733489123456789123},
        {"dataset": "d", "path": "", "tags": ["final", "display"], "params": {"fwhm": 6, "mode": None}},
        {"query": 'meta.Manufacturer="Siemens" AND participant.age>=60', "force": True},
    ]
    bus.publish(topic="objects", message=messages[0])
    publish_all(bus, messages[1:], topic="objects")
    pulled = bus.pull(topic="objects", max_messages=10)
    assert sorted((m for _, m in pulled), key=str) == sorted(messages, key=str)
