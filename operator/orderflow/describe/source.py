"""Reading what ``orderflow describe`` shows: both objects and their Events, once or as they change.

Objects are read with :class:`orderflow.runtime.client.Kube` (its public API only). Listing and watching
Events and watching objects are not among its calls, so they are made here, with the same
pykube-ng HTTP session (same kubeconfig, same login).
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pykube
import requests
from pykube.exceptions import PyKubeError

from orderflow.api.common import API_VERSION
from orderflow.api.fulfillment import PLURAL as FULFILLMENTS
from orderflow.api.order import PLURAL as ORDERS
from orderflow.describe.timeline import Snapshot
from orderflow.runtime.client import ApiError, Forbidden, Kube

WATCH_SECONDS = 240  # the API server ends each watch after this long; it is then resumed
MAX_RECONNECTS = 5  # consecutive failed (re)connections before a watch gives up


class DescribeError(Exception):
    """Nothing to describe (the object is not there) or no way to read it; the message says which."""


def connect(kubeconfig: Path | None = None, context: str | None = None) -> tuple[pykube.HTTPClient, str]:
    """A client from ``kubeconfig`` (default: KUBECONFIG, ~/.kube/config, or in-cluster) and the
    namespace of its current context ("default" when it names none)."""
    try:
        config = pykube.KubeConfig.from_file(str(kubeconfig)) if kubeconfig else pykube.KubeConfig.from_env()
        if context:
            if context not in config.contexts:
                raise DescribeError(f'no context "{context}" in the kubeconfig')
            config.set_current_context(context)
        namespace = config.namespace or "default"
    except (PyKubeError, OSError, KeyError) as exc:
        raise DescribeError(f"cannot load a kubeconfig: {exc}") from exc
    return pykube.HTTPClient(config, timeout=30), str(namespace)


@dataclasses.dataclass(frozen=True)
class Target:
    subject: str  # "order" or "fulfillment"
    name: str
    namespace: str


class Source:
    def __init__(self, api: pykube.HTTPClient) -> None:
        self.api = api
        self.kube = Kube(api)

    # -- one read -----------------------------------------------------------------------------

    def snapshot(self, target: Target) -> Snapshot:
        """Both objects and their Events. Raises DescribeError when neither object can be found."""
        try:
            return self._snapshot(target)
        except Forbidden as exc:
            raise DescribeError(f"not allowed to read it: {exc.message}") from exc
        except ApiError as exc:
            raise DescribeError(f"the API server answered {exc}") from exc
        except requests.RequestException as exc:
            raise DescribeError(f"cannot reach the API server at {self.api.url}: {exc}") from exc

    def _snapshot(self, target: Target) -> Snapshot:
        ns, name = target.namespace, target.name
        order: dict[str, Any] | None
        fulfillment: dict[str, Any] | None
        if target.subject == "order":
            order = self._find(ORDERS, ns, name)
            if order is None:
                hint = ""
                if self._find(FULFILLMENTS, ns, name) is not None:
                    hint = f"; a Fulfillment of that name exists: orderflow describe fulfillment/{name} -n {ns}"
                raise DescribeError(f'order "{name}" not found in namespace "{ns}"{hint}')
            state = (order.get("status") or {}).get("fulfillment") or {}
            mirrored = state.get("name") or name
            fns = state.get("namespace") or ns  # in a target: another namespace, perhaps another cluster
            fulfillment, unread = self._find_in_target(fns, mirrored, state.get("target"))
            if fulfillment is not None and fns != ns:
                events, note = self._events(ns, [name])
                theirs, their_note = self._events(fns, [mirrored])
                return Snapshot(
                    target.subject, name, ns, order, fulfillment, tuple(events + theirs), note or their_note
                )
            if unread is not None:
                events, note = self._events(ns, [name])
                return Snapshot(target.subject, name, ns, order, None, tuple(events), note, fulfillment_note=unread)
        else:
            fulfillment = self._find(FULFILLMENTS, ns, name)
            if fulfillment is not None:
                ref = (fulfillment.get("spec") or {}).get("orderRef") or {}
                if ref.get("cluster") or ref.get("namespace", ns) != ns:
                    # Made for an Order elsewhere (a target of its order controller): say where.
                    where = f"namespace {ref.get('namespace', ns)}" + (
                        f" of cluster {ref['cluster']}" if ref.get("cluster") else ""
                    )
                    note = f"Order {ref.get('name')} is in {where}; describe it there: this shows the Fulfillment alone"
                    events, events_note = self._events(ns, [name])
                    return Snapshot(
                        target.subject, name, ns, None, fulfillment, tuple(events), events_note, order_note=note
                    )
                order = self._find(ORDERS, ns, ref["name"]) if ref.get("name") else None
            else:
                # Not created yet, or deleted: the Order it is (or was) named after says which.
                order = self._find(ORDERS, ns, name)
                if order is None:
                    raise DescribeError(
                        f'fulfillment "{name}" not found in namespace "{ns}", nor an Order of that name'
                    )
        names = {name}
        for body in (order, fulfillment):
            if body is not None:
                names.add(body["metadata"]["name"])
        events, note = self._events(ns, sorted(names))
        return Snapshot(target.subject, name, ns, order, fulfillment, tuple(events), note)

    def _find(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.find(plural, namespace, name)

    def _find_in_target(
        self, namespace: str, name: str, target: str | None
    ) -> tuple[dict[str, Any] | None, str | None]:
        """The Order's Fulfillment, and, when it lives in a target this kubeconfig cannot read,
        why (the describe then shows the Order's mirror of it)."""
        if target is None:
            return self._find(FULFILLMENTS, namespace, name), None
        where = f"in target {target} (namespace {namespace})"
        try:
            found = self._find(FULFILLMENTS, namespace, name)
        except Forbidden as exc:
            return None, f"{where}, not readable with this kubeconfig ({exc.message}); shown as the Order last saw it"
        if found is None:
            return None, (
                f"{where}, not found in this cluster: the target is another cluster; describe it there with that "
                f"cluster's context (orderflow describe fulfillment/{name} -n {namespace} --context ...). "
                "Shown as the Order last saw it"
            )
        return found, None

    def _events(self, namespace: str, names: list[str]) -> tuple[list[dict[str, Any]], str | None]:
        """The core/v1 Events of objects of these names (any kind, any uid: the caller sorts them out)."""
        events: list[dict[str, Any]] = []
        for name in names:
            params = {"fieldSelector": f"involvedObject.name={name}", "limit": "500"}
            while True:
                response = self.api.get(version="v1", namespace=namespace, url="events", params=params)
                if response.status_code in (401, 403):
                    return [], f"Events not shown: not allowed to list Events in {namespace} ({response.status_code})"
                if not response.ok:
                    return [], f"Events not shown: the API server answered {response.status_code} {response.reason}"
                listed = response.json()
                events += listed.get("items") or []
                token = (listed.get("metadata") or {}).get("continue")
                if not token:
                    break
                params = {**params, "continue": token}
        return events, None

    # -- following changes --------------------------------------------------------------------

    def follow(self, target: Target, snapshot: Snapshot, notices: queue.Queue[Notice], stop: threading.Event) -> int:
        """Start one watch thread per stream (the Order, the Fulfillment, the Events of their
        names); each puts a Notice on ``notices`` when something changed or when it gives up.
        Returns how many were started."""
        names = {target.name}
        order_names = {target.name} if target.subject == "order" else set()
        fulfillment_names = {target.name} if target.subject == "fulfillment" else set()
        if snapshot.fulfillment is not None:
            fulfillment_names.add(snapshot.fulfillment["metadata"]["name"])
            ref = (snapshot.fulfillment.get("spec") or {}).get("orderRef") or {}
            if ref.get("name"):
                order_names.add(ref["name"])
        if snapshot.order is not None:
            order_names.add(snapshot.order["metadata"]["name"])
            mirrored = ((snapshot.order.get("status") or {}).get("fulfillment") or {}).get("name")
            fulfillment_names.add(mirrored or snapshot.order["metadata"]["name"])
        names |= order_names | fulfillment_names
        streams = [Stream(f"Order {n}", API_VERSION, ORDERS, f"metadata.name={n}") for n in sorted(order_names)]
        streams += [
            Stream(f"Fulfillment {n}", API_VERSION, FULFILLMENTS, f"metadata.name={n}")
            for n in sorted(fulfillment_names)
        ]
        streams += [Stream(f"Events of {n}", "v1", "events", f"involvedObject.name={n}") for n in sorted(names)]
        for stream in streams:
            thread = threading.Thread(
                target=self._watch,
                args=(stream, target.namespace, notices, stop),
                name=f"watch {stream.what}",
                daemon=True,  # blocked in a read until the server's timeout; must not hold up exit
            )
            thread.start()
        return len(streams)

    def _watch(self, stream: Stream, namespace: str, notices: queue.Queue[Notice], stop: threading.Event) -> None:
        resource_version: str | None = None
        failures = 0
        while not stop.is_set():
            params = {
                "watch": "true",
                "fieldSelector": stream.selector,
                "timeoutSeconds": str(WATCH_SECONDS),
                "allowWatchBookmarks": "true",
            }
            if resource_version:
                params["resourceVersion"] = resource_version
            started, lines = time.monotonic(), 0
            try:
                response = self.api.get(
                    version=stream.version,
                    namespace=namespace,
                    url=stream.plural,
                    params=params,
                    stream=True,
                    timeout=(10, WATCH_SECONDS + 30),
                )
                with response:
                    if response.status_code == 410:  # too old to resume: start afresh
                        resource_version = None
                        notices.put(Notice(stream.what, changed=True))
                        continue
                    if response.status_code in (401, 403, 404):
                        notices.put(
                            Notice(
                                stream.what,
                                gone=f"cannot watch {stream.what}: {response.status_code} {response.reason}",
                            )
                        )
                        return
                    if not response.ok:
                        raise WatchError(f"{response.status_code} {response.reason}")
                    for line in response.iter_lines():
                        if stop.is_set():
                            return
                        if not line:
                            continue
                        lines += 1
                        failures = 0
                        resource_version, changed = _watch_event(json.loads(line), resource_version)
                        if changed:
                            notices.put(Notice(stream.what, changed=True))
                if not lines and time.monotonic() - started < 1:
                    raise WatchError("the watch ended as soon as it began")
            except (requests.RequestException, ValueError, WatchError) as exc:
                failures += 1
                if failures > MAX_RECONNECTS:
                    notices.put(Notice(stream.what, gone=f"lost the watch of {stream.what}: {exc}"))
                    return
                stop.wait(min(0.5 * 2**failures, 10.0))


@dataclasses.dataclass(frozen=True)
class Stream:
    what: str
    version: str
    plural: str
    selector: str


@dataclasses.dataclass(frozen=True)
class Notice:
    what: str
    changed: bool = False
    gone: str | None = None  # this watch stopped for good, and why


class WatchError(Exception):
    pass


def _watch_event(event: Mapping[str, Any], resource_version: str | None) -> tuple[str | None, bool]:
    """(where to resume, whether anything changed) after one line of a watch stream."""
    kind = event.get("type")
    obj = event.get("object") or {}
    if kind == "ERROR":
        if obj.get("code") == 410:
            return None, True  # expired: resume from now, and re-read in case something was missed
        raise WatchError(str(obj.get("message") or obj))
    version = (obj.get("metadata") or {}).get("resourceVersion") or resource_version
    return version, kind != "BOOKMARK"
