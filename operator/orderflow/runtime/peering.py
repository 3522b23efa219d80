"""Kopf peering for two replicas of one controller: which replica reconciles, and the objects
peering needs.

Kopf peering (``kopf.run(peering_name=...)``) makes every replica keep a record (priority,
lifetime, last seen) in the ``status`` of one peering object, and pause while a live replica of
higher priority exists. Replicas of *equal* priority pause each other (both stop), so every replica
needs a priority of its own. Two facts of Kopf 1.45 shape what is here:

- Kopf never creates the peering object. With peering required and the object missing, Kopf stays
  paused without saying why (the keep-alive's "not found" is logged at debug level). So the
  controller creates it (``ensure_objects``); Helm cannot, because a release cannot create an
  object of a CRD it installs in the same release.
- A replica that Kopf pauses while it still has work queued keeps running the queued reconciles on
  a cache that no longer updates (Kopf stops the watches; the work queue cannot tell), and a 409
  there is retried every 0.5 s until Kopf resumes it. So priorities are chosen such that a new
  replica never outranks a running one (``default_priority``): the longest-running replica stays
  active, and a standby takes over only when the active replica is gone. An active replica is
  then paused only when one of higher priority comes back (after being cut off from the API
  server for longer than the peering lifetime) or is started with an explicit ``--priority``.

How long a standby waits after the active replica dies without a word (SIGKILL, its node lost) is
set by the peering lifetime (``--peering-lifetime``, Kopf's ``settings.peering.lifetime``): each
replica rewrites its record ``lifetime - 5..10`` s after the last time (at least 1 s), and a
standby wakes at the moment the record it yields to expires (Kopf sleeps until that record's
``lastseen + lifetime``, then touches its own record so that its watch re-evaluates). So the wait
is what was left of the dead replica's lifetime: between 5..10 s and the whole lifetime.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from orderflow.runtime.client import Kube
from orderflow.runtime.pure.errors import Conflict

VERSION = "kopf.dev/v1"
CLUSTER_PLURAL, CLUSTER_KIND = "clusterkopfpeerings", "ClusterKopfPeering"
NAMESPACED_PLURAL, NAMESPACED_KIND = "kopfpeerings", "KopfPeering"

KOPF_LIFETIME = 60  # Kopf's own default, in seconds
DEFAULT_LIFETIME = 15  # ours: takeover within 15 s, like a 15 s Lease (docs/deploy.md, High availability)
MIN_LIFETIME = 10
"""Kopf renews a record ``max(1, lifetime - randint(5, 10))`` s after the last. A replica that stalls
(its event loop blocked, the API server slow to answer) for longer than the lifetime is always
taken for dead; one whose stall begins just before a renewal is due, after 5-10 s at any lifetime.
At 10 s the renewals come every 1-5 s, and shorter lifetimes approach a write a second per
replica, for a takeover a few seconds sooner."""

_TIE_BREAK = 1000  # start times in the same millisecond are ordered by a random draw below this


def default_priority(started_ms: int, rng: random.Random) -> int:
    """The priority of a replica started at ``started_ms`` (milliseconds since the epoch): the
    earlier the start, the higher. So a replica added later (a rolling update, a rescheduled pod)
    starts as the standby instead of pausing the one at work, and an explicit non-negative
    ``--priority`` (a debugging instance) outranks every replica that uses this default.

    Two replicas started in the same millisecond differ by a random draw; the chance that they
    also draw the same number, and so pause each other, is one in a thousand of an already rare
    event. The result stays within ±2**53 (exact in JSON) until about the year 2255.
    """
    return -(started_ms * _TIE_BREAK + rng.randrange(_TIE_BREAK))


def check_lifetime(seconds: int) -> int:
    """``seconds`` as a peering lifetime, or ValueError saying why not."""
    if seconds < MIN_LIFETIME:
        raise ValueError(
            f"the peering lifetime must be at least {MIN_LIFETIME} seconds, not {seconds}: Kopf renews each "
            "replica's record 5-10 s before it expires and at most once a second, so a shorter lifetime means "
            "a write about every second and a replica taken for dead whenever it stalls that long"
        )
    return seconds


def renewal_seconds(lifetime: int) -> tuple[int, int]:
    """The shortest and longest wait between two renewals of a replica's record, as Kopf 1.45
    computes it (``kopf._core.engines.peering.keepalive``)."""
    return max(1, lifetime - 10), max(1, lifetime - 5)


def objects(name: str, namespaces: Sequence[str]) -> list[tuple[str | None, str, dict[str, Any]]]:
    """The peering objects Kopf uses: (namespace, plural, body). Kopf watches a KopfPeering in each
    watched namespace, or one ClusterKopfPeering when it watches all namespaces."""
    if not namespaces:
        return [(None, CLUSTER_PLURAL, _body(CLUSTER_KIND, name))]
    return [(ns, NAMESPACED_PLURAL, _body(NAMESPACED_KIND, name)) for ns in namespaces]


def _body(kind: str, name: str) -> dict[str, Any]:
    return {"apiVersion": VERSION, "kind": kind, "metadata": {"name": name}}


def ensure_objects(kube: Kube, name: str, namespaces: Sequence[str], timeout: float) -> None:
    """Create the peering objects that do not exist yet (blocking). Raises the API server's
    refusal of any other kind, e.g. Forbidden without the chart's RBAC or NotFound without the
    Kopf peering CRDs."""
    for namespace, plural, body in objects(name, namespaces):
        try:
            kube.create(plural, namespace, body, version=VERSION, timeout=timeout)
        except Conflict as exc:
            if not exc.already_exists:
                raise
