"""The EventBus contract: durable, at-least-once, retried with delay, dead-lettered."""

from __future__ import annotations

import time
from collections.abc import Callable

from rollerblade.ports import EventBus

Factory = Callable[..., EventBus]


def test_publish_pull_ack(bus_factory: Factory) -> None:
    bus = bus_factory()
    ids = [bus.publish(topic="objects", message={"n": i}) for i in range(3)]
    bus.publish(topic="other", message={"n": 99})
    pulled = bus.pull(topic="objects", max_messages=10)
    assert sorted(m["n"] for _, m in pulled) == [0, 1, 2] and {i for i, _ in pulled} == set(ids)
    assert bus.pull(topic="objects") == []  # leased
    bus.ack(message_ids=ids)
    assert bus.pending(topic="objects") == 0 and bus.pending(topic="other") == 1


def test_unacked_messages_survive_a_crash(bus_factory: Factory) -> None:
    first = bus_factory()
    first.publish(topic="objects", message={"key": "a"})
    assert len(first.pull(topic="objects", lease_seconds=0.05)) == 1
    time.sleep(0.1)  # the consumer died without acking; its lease expires
    again = bus_factory()  # a new process opens the same queue
    assert [m for _, m in again.pull(topic="objects")] == [{"key": "a"}]


def test_nack_delays_and_counts_attempts(bus_factory: Factory) -> None:
    bus = bus_factory(max_attempts=2)
    message_id = bus.publish(topic="objects", message={"key": "a"})
    bus.pull(topic="objects")
    bus.nack(message_id=message_id, delay=0.2, error="boom")
    assert bus.pull(topic="objects") == []
    time.sleep(0.25)
    assert [i for i, _ in bus.pull(topic="objects")] == [message_id]
    bus.nack(message_id=message_id, error="boom again")
    assert bus.pull(topic="objects") == [] and bus.pending(topic="objects") == 0
    dead = bus.dead_letters(topic="objects")  # type: ignore[attr-defined]
    assert dead == [(message_id, {"key": "a"}, "boom again")]
