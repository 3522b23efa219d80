"""What each controller knows of the cluster: the latest body of every watched object, by key.

The watch (Kopf's ``@kopf.on.event``) is its only writer; reconciles read it. What no decision
reads is dropped as objects arrive, as client-go's cache transforms do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any


@dataclasses.dataclass(frozen=True)
class ObjectKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of(cls, body: Any) -> ObjectKey:
        meta = body["metadata"]
        return cls(meta["namespace"], meta["name"])


class Store:
    """The latest body of each watched object, as an informer's cache holds it.

    Fed by the watch only, never by write responses or GETs: a response can arrive after the watch
    has already delivered a newer version, and putting it here would hide that version from every
    later reconcile (a lost update). Every change reaches the store through the watch, and each
    watch event enqueues a reconcile that reads at least that version.
    """

    def __init__(self, transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self._objects: dict[ObjectKey, dict[str, Any]] = {}
        # What this controller's decisions read of the kind, as client-go's SetTransform allows:
        # each controller keeps every watched object, so what it drops it drops that many times.
        self._transform = transform

    def put(self, body: Any) -> ObjectKey:
        key = ObjectKey.of(body)
        kept = strip(_plain(body))
        self._objects[key] = self._transform(kept) if self._transform else kept
        return key

    def remove(self, key: ObjectKey) -> None:
        self._objects.pop(key, None)

    def get(self, key: ObjectKey) -> dict[str, Any] | None:
        return self._objects.get(key)

    def values(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._objects.values()))


# What no decision reads and a client may make large: client-go's informers drop the same
# (cache.TransformStripManagedFields). kubectl apply's annotation holds a second copy of the spec.
UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def strip(body: dict[str, Any]) -> dict[str, Any]:
    """The object as decisions need it: without managedFields and the last-applied copy."""
    metadata = body.get("metadata") or {}
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations")
    if annotations:
        for name in UNREAD_ANNOTATIONS:
            annotations.pop(name, None)
    return body


def _plain(value: Any) -> Any:
    """A deep, plain-dict copy of a Kopf body, so later reads never see a half-updated view."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
