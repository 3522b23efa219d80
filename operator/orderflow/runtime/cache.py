"""What each controller knows of the cluster: the latest body of every watched object, by key.

The watch (Kopf's ``@kopf.on.event``) is its only writer; reconciles read it. What no decision
reads is dropped as objects arrive, as client-go's cache transforms do, and what is kept is kept
small: each controller holds every object it watches, finished ones included, for as long as they
exist, so the bytes per object are what its memory grows with.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import sys
import zlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

S = TypeVar("S")


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of(cls, body: Any) -> ObjectKey:
        meta = body["metadata"]
        return cls(sys.intern(meta["namespace"]), meta["name"])  # one copy of each namespace's name


class Store(Generic[S]):
    """The latest body of each watched object, as an informer's cache holds it.

    Fed by the watch only, never by write responses or GETs: a response can arrive after the watch
    has already delivered a newer version, and putting it here would hide that version from every
    later reconcile (a lost update). Every change reaches the store through the watch, and each
    watch event enqueues a reconcile that reads at least that version.

    Each body is kept as compressed JSON, and ``get`` decodes a fresh copy: a watched object as
    Python dicts and strings takes 7 to 10 KB, compressed about 0.3 KB (``python -m
    orderflow.dev.bench.cache_bytes``), for microseconds of CPU per read. A caller may
    change what ``get`` returns; the store never sees it. What must be read without decoding
    every object (the metrics, at each scrape) is kept beside it, small, by ``summary``.

    Objects of one kind repeat each other's keys, condition reasons and messages, so after its
    first ``LEARN_AFTER`` puts the store compresses against a preset dictionary made of the last
    bodies it was given, as zstd's trained dictionaries do for small records: about 40 % of the
    bytes of compressing each object alone.
    """

    def __init__(
        self,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        summary: Callable[[dict[str, Any]], S] | None = None,
    ) -> None:
        self._objects: dict[ObjectKey, bytes] = {}
        self._summaries: dict[ObjectKey, S] = {}
        # What this controller's decisions read of the kind, as client-go's SetTransform allows:
        # each controller keeps every watched object, so what it drops it drops that many times.
        self._transform = transform
        self._summary = summary
        self._dictionary = b""  # until learned: each object compressed alone
        self._sample: collections.deque[bytes] = collections.deque(maxlen=DICTIONARY_SAMPLE)
        self._puts = 0

    def put(self, body: Any) -> ObjectKey:
        key = ObjectKey.of(body)
        kept = strip(body)
        if self._transform:
            kept = self._transform(kept)
        encoded = json.dumps(kept, separators=(",", ":"), default=_plain).encode()
        if not self._dictionary:
            self._learn(encoded)
        self._objects[key] = _compress(encoded, self._dictionary)
        if self._summary:
            self._summaries[key] = self._summary(kept)
        return key

    def _learn(self, encoded: bytes) -> None:
        self._sample.append(encoded)
        self._puts += 1
        if self._puts < LEARN_AFTER:
            return
        # The last bodies put: zlib finds each object's repeats of them in its window.
        # What was compressed alone decodes the same with it: a dictionary only fills the window
        # a stream may refer back into, and those streams never refer back past their own start.
        self._dictionary = b"".join(self._sample)[-DICTIONARY_BYTES:]
        self._sample.clear()

    def remove(self, key: ObjectKey) -> None:
        self._objects.pop(key, None)
        self._summaries.pop(key, None)

    def get(self, key: ObjectKey) -> dict[str, Any] | None:
        packed = self._objects.get(key)
        return None if packed is None else json.loads(_decompress(packed, self._dictionary))

    def __len__(self) -> int:
        return len(self._objects)

    def known(self) -> list[ObjectKey]:
        return list(self._objects)

    def summaries(self) -> Iterator[S]:
        """What ``summary`` said of each object, as of its latest put."""
        return iter(list(self._summaries.values()))


LEARN_AFTER = 64  # puts before the store learns its dictionary
DICTIONARY_SAMPLE = 2  # bodies it is made of: a longer dictionary slows every compression, for few bytes
DICTIONARY_BYTES = 1 << zlib.MAX_WBITS  # zlib's window: it reads no further back than 32 KB


def _compress(data: bytes, dictionary: bytes) -> bytes:
    # Raw deflate (no header or checksum: a few bytes less per object), at the fastest level.
    packer = zlib.compressobj(
        1, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, dictionary
    )
    return packer.compress(data) + packer.flush()


def _decompress(packed: bytes, dictionary: bytes) -> bytes:
    unpacker = zlib.decompressobj(-zlib.MAX_WBITS, dictionary)
    return unpacker.decompress(packed) + unpacker.flush()


# What no decision reads and a client may make large: client-go's informers drop the same
# (cache.TransformStripManagedFields). kubectl apply's annotation holds a second copy of the spec.
UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def strip(body: Any) -> dict[str, Any]:
    """The object as decisions need it: without managedFields and the last-applied copy. A shallow
    copy where it differs: ``body`` (a Kopf body, or a plain dict) is left as it was."""
    metadata = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    annotations = metadata.get("annotations")
    if annotations and any(name in annotations for name in UNREAD_ANNOTATIONS):
        metadata["annotations"] = {k: v for k, v in annotations.items() if k not in UNREAD_ANNOTATIONS}
    return dict(body.items(), metadata=metadata)


def _plain(value: Any) -> Any:
    """What JSON cannot encode as it is: a Kopf mapping view (a plain dict to it), or a tuple."""
    if hasattr(value, "items"):
        return dict(value.items())
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON: {value!r}")
