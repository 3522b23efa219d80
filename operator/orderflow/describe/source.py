"""Reading what ``orderflow describe`` shows: both objects and their Events, once or as they change.

Objects are read with :class:`orderflow.runtime.client.Kube` (its public API only). Listing and watching
Events and watching objects are not among its calls, so they are made here, with the same
pykube-ng HTTP session (same kubeconfig, same login).

An Order's Fulfillment may live in a target of another cluster (docs/targets.md). The Order
records the target's name, not how to reach its cluster (the order controller's kubeconfig
Secret is no user's), so the user's kubeconfig says: the context named with
``--target-context TARGET=CONTEXT`` (or ``--target-context CONTEXT`` for whatever target the
Order names), else a context named as the target. :class:`Contexts` chooses and connects;
:meth:`Source.snapshot` reads the Fulfillment and its Events there, or says why it cannot.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import re
import threading
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pykube
import requests
from pykube.exceptions import PyKubeError

from orderflow.api.common import API_VERSION
from orderflow.api.fulfillment import PLURAL as FULFILLMENTS
from orderflow.api.order import PLURAL as ORDERS
from orderflow.describe.shape import Snapshot
from orderflow.describe.timeline import is_orders
from orderflow.runtime.client import Kube
from orderflow.runtime.pure.errors import ApiError, Forbidden

WATCH_SECONDS = 240  # the API server ends each watch after this long; it is then resumed
MAX_RECONNECTS = 5  # consecutive failed (re)connections before a watch gives up
TARGET_TIMEOUT = (5.0, 30.0)  # another cluster: a server that does not answer is said so within 5 s


class DescribeError(Exception):
    """Nothing to describe (the object is not there) or no way to read it; the message says which."""


def connect(
    kubeconfig: Path | None = None, context: str | None = None, target_contexts: Mapping[str | None, str] | None = None
) -> tuple[pykube.HTTPClient, str, Contexts]:
    """A client from ``kubeconfig`` (default: KUBECONFIG, ~/.kube/config, or in-cluster), the
    namespace of its current context ("default" when it names none), and its other contexts, for
    the Order's target (``target_contexts``: what ``--target-context`` named)."""
    try:
        config = pykube.KubeConfig.from_file(str(kubeconfig)) if kubeconfig else pykube.KubeConfig.from_env()
        if context:
            if context not in config.contexts:
                raise DescribeError(f'no context "{context}" in the kubeconfig')
            config.set_current_context(context)
        namespace = config.namespace or "default"
    except (PyKubeError, OSError, KeyError) as exc:
        raise DescribeError(f"cannot load a kubeconfig: {exc}") from exc
    api = pykube.HTTPClient(config, timeout=30)
    return api, str(namespace), Contexts(config, target_contexts or {})


def parse_target_context(value: str) -> tuple[str | None, str]:
    """``TARGET=CONTEXT`` (a target is a DNS label) or ``CONTEXT`` alone: for the Order's target,
    whichever it is. A context name may hold ``=`` only after a part that is no target name."""
    target, equals, context = value.partition("=")
    if equals and _DNS_LABEL.fullmatch(target):
        if not context:
            raise ValueError(f"{value!r}: give TARGET=CONTEXT, a context after the '='")
        return target, context
    if not value:
        raise ValueError("give TARGET=CONTEXT or CONTEXT")
    return None, value


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def choose_context(target: str, chosen: Mapping[str | None, str], known: Collection[str]) -> tuple[str | None, bool]:
    """The context of the user's kubeconfig that reaches ``target``'s cluster, and whether the
    user named it (``--target-context``): named for this target, else named for any target, else
    the context called as the target (as ``kind`` calls its contexts ``kind-NAME``, people call
    theirs after the cluster they reach); else None."""
    if target in chosen:
        return chosen[target], True
    if None in chosen:
        return chosen[None], True
    if target in known:
        return target, False
    return None, False


def why_not(context: str, exc: BaseException, server: str | None) -> str:
    """Why a context could not read the target's Fulfillment: one line, the API server's words."""
    at = f" at {server}" if server else ""
    if isinstance(exc, Forbidden):
        return f"context {context} is not allowed to read it{at} (403 Forbidden: {exc.message})"
    if isinstance(exc, ApiError) and exc.code == 401:
        return f"context {context} was refused{at} (401 Unauthorized: {exc.message})"
    if isinstance(exc, ApiError):
        return f"context {context}: the API server{at} answered {exc}"
    if isinstance(exc, requests.Timeout):
        return f"context {context} cannot reach the API server{at}: no answer within {TARGET_TIMEOUT[0]:g} s"
    if isinstance(exc, requests.RequestException):
        return f"context {context} cannot reach the API server{at}: {_cause(exc)}"
    if isinstance(exc, _NoSuchContext):
        return f"context {context} is not in the kubeconfig"
    return f"context {context} cannot be used: {exc}"


def _cause(exc: BaseException) -> str:
    """The innermost reason of a requests error ("[Errno 111] Connection refused"), not urllib3's
    whole chain of wrappers and object addresses."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    text = str(reason if reason is not None else exc)
    text = re.sub(r"<[^>]* object at 0x[0-9a-f]+>: ", "", text)
    return text.rpartition("Failed to establish a new connection: ")[2]


class _NoSuchContext(Exception):
    pass


@dataclasses.dataclass
class Reader:
    """One login to one API server: the Order's (``context`` None) or a target's context."""

    api: pykube.HTTPClient
    context: str | None = None

    def __post_init__(self) -> None:
        self.kube = Kube(self.api)

    @property
    def server(self) -> str:
        return str(getattr(self.api, "url", "") or "")


class Contexts:
    """The user's kubeconfig, for the cluster an Order's target is in: which context reaches it
    (:func:`choose_context`), and a client for it, made once."""

    def __init__(self, config: pykube.KubeConfig | None, chosen: Mapping[str | None, str]) -> None:
        self.config, self.chosen = config, dict(chosen)
        self._readers: dict[str, Reader] = {}

    def choose(self, target: str) -> tuple[str | None, bool]:
        known: Collection[str] = ()
        if self.config is not None:
            try:
                known = tuple(self.config.contexts)
            except (KeyError, TypeError):  # a kubeconfig without contexts (in a Pod)
                known = ()
        return choose_context(target, self.chosen, known)

    def reader(self, context: str) -> Reader:
        """A client for ``context``. Raises _NoSuchContext, or what loading its login raises."""
        if context not in self._readers:
            if self.config is None or context not in self.config.contexts:
                raise _NoSuchContext(context)
            config = pykube.KubeConfig(self.config.doc, current_context=context)
            # Relative certificate paths are relative to the kubeconfig file, as for its own context.
            if getattr(self.config, "filepath", None) is not None:
                config.filepath = self.config.filepath
            api = pykube.HTTPClient(config, timeout=TARGET_TIMEOUT)
            self._readers[context] = Reader(api, context)
        return self._readers[context]


@dataclasses.dataclass(frozen=True)
class Target:
    subject: str  # "order" or "fulfillment"
    name: str
    namespace: str


@dataclasses.dataclass(frozen=True)
class _Found:
    """The Order's Fulfillment as found in its target: the object (None: not read), why not, and
    through which login it was read (None: the Order's own)."""

    body: dict[str, Any] | None
    note: str | None = None
    reader: Reader | None = None


class Source:
    def __init__(self, api: pykube.HTTPClient, contexts: Contexts | None = None) -> None:
        self.api = api
        self.kube = Kube(api)
        self.home = Reader(api)
        self.contexts = contexts or Contexts(None, {})
        self.fulfillment_reader = self.home  # where the Fulfillment was last read: --watch follows it there

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
            found = self._find_in_target(order, fns, mirrored, state.get("target"))
            fulfillment, reader = found.body, found.reader or self.home
            self.fulfillment_reader = reader
            if fulfillment is not None and (fns != ns or reader is not self.home):
                events, note = self._events(ns, [name])
                theirs, their_note = self._events(fns, [mirrored], reader)
                return Snapshot(
                    target.subject,
                    name,
                    ns,
                    order,
                    fulfillment,
                    tuple(events + theirs),
                    note or their_note,
                    fulfillment_context=reader.context,
                )
            if found.note is not None:
                events, note = self._events(ns, [name])
                return Snapshot(target.subject, name, ns, order, None, tuple(events), note, fulfillment_note=found.note)
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

    def _find_in_target(self, order: Mapping[str, Any], namespace: str, name: str, target: str | None) -> _Found:
        """The Order's Fulfillment, and, when it lives in a target that cannot be read, why (the
        describe then shows the Order's mirror of it).

        A context the user named for the target is the only place looked. Otherwise this
        cluster first (a target that is another namespace needs nothing more), then, unless the
        Order's own Fulfillment was found here, a context named as the target."""
        if target is None:
            return _Found(self._find(FULFILLMENTS, namespace, name))
        where = f"in target {target} (namespace {namespace})"
        context, named = self.contexts.choose(target)
        if not named:
            try:
                here = self._find(FULFILLMENTS, namespace, name)
            except Forbidden as exc:
                here, why = None, f"not readable with this kubeconfig ({exc.message})"
            else:
                why = "not found in this cluster: the target is another cluster"
            if here is not None and (context is None or is_orders(order, here)):
                return _Found(here)
            if context is None:
                return _Found(
                    None,
                    f"{where}, {why}; no context of your kubeconfig is named {target}: to read it there, give "
                    f"--target-context {target}=CONTEXT (or describe it with that cluster's context: orderflow "
                    f"describe fulfillment/{name} -n {namespace} --context CONTEXT). Shown as the Order last saw it",
                )
        assert context is not None
        reader: Reader | None = None
        try:
            reader = self.contexts.reader(context)
            found = reader.kube.find(FULFILLMENTS, namespace, name)
        except (ApiError, requests.RequestException, PyKubeError, _NoSuchContext, OSError, KeyError, ValueError) as exc:
            server = reader.server if reader is not None else None
            return _Found(None, f"{where}: {why_not(context, exc, server)}; shown as the Order last saw it")
        if found is None:
            return _Found(
                None,
                f"{where}: no Fulfillment {name} through context {context} (at {reader.server}): another cluster, "
                "or it was deleted; shown as the Order last saw it",
            )
        return _Found(found, reader=reader)

    def _events(
        self, namespace: str, names: list[str], reader: Reader | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The core/v1 Events of objects of these names (any kind, any uid: the caller sorts them out)."""
        events: list[dict[str, Any]] = []
        api = (reader or self.home).api
        there = f" (context {reader.context})" if reader is not None and reader.context else ""
        for name in names:
            params = {"fieldSelector": f"involvedObject.name={name}", "limit": "500"}
            while True:
                try:
                    response = api.get(version="v1", namespace=namespace, url="events", params=params)
                except requests.RequestException as exc:
                    if reader is None or reader.context is None:
                        raise
                    return [], f"Events not shown{there}: {_cause(exc)}"
                if response.status_code in (401, 403):
                    return [], (
                        f"Events not shown: not allowed to list Events in {namespace}{there} ({response.status_code})"
                    )
                if not response.ok:
                    return (
                        [],
                        f"Events not shown{there}: the API server answered {response.status_code} {response.reason}",
                    )
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
        Returns how many were started.

        A Fulfillment read in another namespace or through a target's context is watched there,
        with its Events; a Fulfillment that could not be read is followed through the Order,
        which mirrors it."""
        names = {target.name}
        order_names = {target.name} if target.subject == "order" else set()
        fulfillment_names = {target.name} if target.subject == "fulfillment" else set()
        elsewhere: Stream | None = None
        if snapshot.fulfillment is not None:
            meta = snapshot.fulfillment["metadata"]
            ref = (snapshot.fulfillment.get("spec") or {}).get("orderRef") or {}
            if ref.get("name"):
                order_names.add(ref["name"])
            there = meta.get("namespace") or target.namespace
            reader = self.fulfillment_reader if target.subject == "order" else self.home
            if there == target.namespace and reader is self.home:
                fulfillment_names.add(meta["name"])
            else:
                elsewhere = Stream(
                    f"Fulfillment {meta['name']}",
                    API_VERSION,
                    FULFILLMENTS,
                    f"metadata.name={meta['name']}",
                    there,
                    reader,
                )
        if snapshot.order is not None:
            order_names.add(snapshot.order["metadata"]["name"])
            mirrored = ((snapshot.order.get("status") or {}).get("fulfillment") or {}).get("name")
            if elsewhere is None:
                fulfillment_names.add(mirrored or snapshot.order["metadata"]["name"])
        names |= order_names | fulfillment_names
        streams = [Stream(f"Order {n}", API_VERSION, ORDERS, f"metadata.name={n}") for n in sorted(order_names)]
        streams += [
            Stream(f"Fulfillment {n}", API_VERSION, FULFILLMENTS, f"metadata.name={n}")
            for n in sorted(fulfillment_names)
        ]
        streams += [Stream(f"Events of {n}", "v1", "events", f"involvedObject.name={n}") for n in sorted(names)]
        if elsewhere is not None:
            name = elsewhere.selector.removeprefix("metadata.name=")
            events = dataclasses.replace(
                elsewhere,
                what=f"Events of {name}",
                version="v1",
                plural="events",
                selector=f"involvedObject.name={name}",
            )
            streams += [elsewhere, events]
        for stream in streams:
            thread = threading.Thread(
                target=self._watch,
                args=(stream, stream.namespace or target.namespace, notices, stop),
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
                response = (stream.reader or self.home).api.get(
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
    namespace: str | None = None  # None: the namespace described
    reader: Reader | None = None  # None: the Order's login (--kubeconfig, --context)


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
