"""The EventBus port on Google Cloud Pub/Sub (or its emulator in tests).

The only module that imports ``google.cloud.pubsub``. A topic ``T`` has one pull
subscription ``T-rollerblade`` with a dead-letter topic ``T-dead`` (after
``max_attempts`` deliveries, Pub/Sub's minimum being 5). Leases and nack delays are
ack deadlines, in whole seconds. Message ids returned by ``pull`` are ack ids.
Pub/Sub redelivers and does not order: handlers must be idempotent (ours are).

With ``provision=False`` nothing is created: a deployment's topics and (push)
subscriptions come from Terraform, and its functions only publish.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.types import DeadLetterPolicy

from rollerblade.errors import TemporaryError
from rollerblade.ports import EventBus

T = TypeVar("T")
_RETRYABLE = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError, gexc.TooManyRequests)


class PubSubBus(EventBus):
    def __init__(self, *, project: str, max_attempts: int = 5, prefix: str = "", provision: bool = True) -> None:
        self.project = project
        self.prefix = prefix
        self.provision = provision
        self.max_attempts = max(5, max_attempts)
        self._publisher = pubsub_v1.PublisherClient()
        self._subscriber = pubsub_v1.SubscriberClient()
        self._ready: set[str] = set()
        self._owner: dict[str, str] = {}  # ack id -> subscription it came from
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PubSubBus(project={self.project!r})"

    def close(self) -> None:
        self._subscriber.close()
        self._publisher.transport.close()

    @staticmethod
    def _call(what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except _RETRYABLE as e:
            raise TemporaryError(f"Pub/Sub unavailable ({what}): {e}", delay=2) from e

    def _topic(self, topic: str) -> str:
        return self._publisher.topic_path(self.project, self.prefix + topic)  # type: ignore[no-any-return]

    def _subscription(self, topic: str, suffix: str = "rollerblade") -> str:
        return self._subscriber.subscription_path(self.project, f"{self.prefix}{topic}-{suffix}")  # type: ignore[no-any-return]

    def _ensure(self, topic: str) -> None:
        if not self.provision:
            return
        with self._lock:
            if topic in self._ready:
                return
            dead = self._topic(topic + "-dead")
            for path in (self._topic(topic), dead):
                self._create_topic(path)
            with contextlib.suppress(gexc.AlreadyExists):
                self._call(
                    "create subscription",
                    lambda: self._subscriber.create_subscription(
                        request={
                            "name": self._subscription(topic),
                            "topic": self._topic(topic),
                            "ack_deadline_seconds": 60,
                            "dead_letter_policy": DeadLetterPolicy(
                                dead_letter_topic=dead, max_delivery_attempts=self.max_attempts
                            ),
                        }
                    ),
                )
            with contextlib.suppress(gexc.AlreadyExists):
                self._call(
                    "create subscription",
                    lambda: self._subscriber.create_subscription(
                        request={"name": self._subscription(topic, "dead"), "topic": dead}
                    ),
                )
            self._ready.add(topic)

    def _create_topic(self, path: str) -> None:
        with contextlib.suppress(gexc.AlreadyExists):
            self._call("create topic", lambda: self._publisher.create_topic(name=path))

    def publish(self, *, topic: str, message: Mapping[str, Any]) -> str:
        self._ensure(topic)
        future = self._publisher.publish(self._topic(topic), json.dumps(dict(message)).encode())
        return str(self._call("publish", lambda: future.result(timeout=30)))

    def _pull(self, subscription: str, max_messages: int) -> list[Any]:
        try:
            # return_immediately is deprecated for streaming consumers, but this is a batch
            # drain that must not wait for messages that are not there.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                response = self._subscriber.pull(
                    request={"subscription": subscription, "max_messages": max_messages, "return_immediately": True},
                    timeout=10,
                )
        except gexc.DeadlineExceeded:
            return []
        except _RETRYABLE as e:
            raise TemporaryError(f"Pub/Sub unavailable (pull): {e}", delay=2) from e
        return list(response.received_messages)

    def pull(
        self, *, topic: str, max_messages: int = 100, lease_seconds: float = 60.0
    ) -> list[tuple[str, dict[str, Any]]]:
        self._ensure(topic)
        subscription = self._subscription(topic)
        received = self._pull(subscription, max_messages)
        if received and lease_seconds != 60.0:
            seconds = 0 if lease_seconds < 1 else min(600, math.ceil(lease_seconds))
            self._call(
                "lease",
                lambda: self._subscriber.modify_ack_deadline(
                    request={
                        "subscription": subscription,
                        "ack_ids": [m.ack_id for m in received],
                        "ack_deadline_seconds": seconds,
                    }
                ),
            )
        with self._lock:
            self._owner.update((m.ack_id, subscription) for m in received)
        return [(m.ack_id, json.loads(m.message.data)) for m in received]

    def _modify(self, ack_ids: Sequence[str], seconds: int | None) -> None:
        """Acknowledge (``seconds=None``) or set the ack deadline of messages, per subscription."""
        by_subscription: dict[str, list[str]] = {}
        with self._lock:
            for ack_id in ack_ids:
                owner = self._owner.pop(ack_id, None) if seconds is None else self._owner.get(ack_id)
                if owner is not None:
                    by_subscription.setdefault(owner, []).append(ack_id)
        for subscription, ids in by_subscription.items():
            request: dict[str, Any] = {"subscription": subscription, "ack_ids": ids}
            if seconds is None:
                self._call("ack", lambda r=request: self._subscriber.acknowledge(request=r))  # type: ignore[misc]
            else:
                request["ack_deadline_seconds"] = seconds
                self._call("nack", lambda r=request: self._subscriber.modify_ack_deadline(request=r))  # type: ignore[misc]

    def ack(self, *, message_ids: Sequence[str]) -> None:
        self._modify(message_ids, None)

    def nack(self, *, message_id: str, delay: float = 0.0, error: str = "") -> None:
        self._modify([message_id], 0 if delay < 1 else min(600, math.ceil(delay)))

    def dead_letters(self, *, topic: str) -> list[tuple[str, dict[str, Any], str]]:
        """Messages Pub/Sub moved to the dead-letter topic (and acknowledges them there)."""
        self._ensure(topic)
        subscription = self._subscription(topic, "dead")
        received = self._pull(subscription, 100)
        if received:
            self._subscriber.acknowledge(
                request={"subscription": subscription, "ack_ids": [m.ack_id for m in received]}
            )
        return [(m.message.message_id, json.loads(m.message.data), "") for m in received]
