"""The order controller's link to one target: list and watch its Fulfillments into a cache of
their own, and the client that writes their spec there.

Kopf watches the namespaces the controller runs for, with the controller's own login. A target
is somewhere else: another namespace (which the controller must not watch Orders in), or another
cluster (another API server, another login, from a kubeconfig in a Secret). So each target has
this small informer of its own, in a thread (the watch is a long blocking HTTP stream): it lists,
then watches from the list's resourceVersion, and on any error says so (``state``), waits with
bounded backoff and lists again. A link that is down is a normal state: the Orders that use it
say so and wait; the other targets' links, and the Orders in their own namespaces, go on.

A kubeconfig Secret is read again on every connect and every few minutes while connected, so a
rotated credential is used without a restart; one that would run a program (``exec``,
``auth-provider``) is refused unless the operator allowed it (``--allow-exec-kubeconfigs``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import pykube
import requests
import yaml

from orderflow.api.common import API_VERSION
from orderflow.api.fulfillment import PLURAL as FULFILLMENTS
from orderflow.order import mirror, workflow
from orderflow.order.targets import Target
from orderflow.runtime import metrics
from orderflow.runtime.cache import ObjectKey, Store
from orderflow.runtime.client import AsyncKube, Kube
from orderflow.runtime.pure.errors import ApiError

log = logging.getLogger("orderflow.order.link")

BACKOFF_START, BACKOFF_MAX = 0.5, 5.0  # seconds between tries to reach a target that is down: back within 5 s
WATCH_SECONDS = 60  # each watch asks the API server to end it after this: a fresh look at the Secret
CONNECT_TIMEOUT = 5.0


class KubeconfigRefused(Exception):
    """The Secret's kubeconfig cannot be used: missing, unreadable, or it would run a program."""


def kubeconfig_of(secret: dict[str, Any], key: str, allow_exec: bool) -> dict[str, Any]:
    """The kubeconfig in ``secret[data][key]``, checked: token or client-certificate logins only,
    unless ``allow_exec`` (a kubeconfig whose login runs a program runs it in the controller)."""
    name = secret.get("metadata", {}).get("name", "?")
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        raise KubeconfigRefused(f"Secret {name} has no key {key!r}")
    try:
        doc = yaml.safe_load(base64.b64decode(raw))
    except (ValueError, yaml.YAMLError) as exc:
        raise KubeconfigRefused(f"Secret {name}'s {key} is not a kubeconfig: {exc}") from None
    if not isinstance(doc, dict) or not doc.get("clusters"):
        raise KubeconfigRefused(f"Secret {name}'s {key} is not a kubeconfig (no clusters)")
    for user in doc.get("users") or []:
        login = (user or {}).get("user") or {}
        runs = [k for k in ("exec", "auth-provider") if login.get(k)]
        if runs and not allow_exec:
            raise KubeconfigRefused(
                f"Secret {name}'s kubeconfig logs in with {runs[0]!r}, which runs a program; use a token or a "
                "client certificate, or start the order controller with --allow-exec-kubeconfigs"
            )
    return doc


class TargetLink:
    def __init__(
        self,
        target: Target,
        own: Kube,
        secrets_namespace: str | None,
        allow_exec: bool,
        on_change: Callable[[str | None, dict[str, Any]], None],
        on_state: Callable[[], None],
        component: str,
    ) -> None:
        self.target = target
        self._own = own
        self._secrets_namespace = secrets_namespace
        self._allow_exec = allow_exec
        self._on_change = on_change  # a Fulfillment event, on the event loop
        self._on_state = on_state  # reachable or not changed, on the event loop
        self._component = component
        self.store: Store[None] = Store(transform=mirror.fulfillment_as_read)
        self.state = workflow.Link(reachable=False, reason="Unreachable", message="not connected yet")
        self._kube: Kube | None = None if target.remote else own
        self.client: AsyncKube | None = AsyncKube(own, component) if not target.remote else None
        self._secret_version: str | None = None
        self._stop = threading.Event()
        self._relogin = threading.Event()  # the target refused this login (a revoked token): read the Secret again
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._response: requests.Response | None = None
        metrics.TARGET_REACHABLE.labels(component, target.name).set(0)
        metrics.TARGET_WATCH_RESTARTS.labels(component, target.name)

    # -- the event loop's side -----------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"target-{self.target.name}", daemon=True)
        self._thread.start()

    def refused_login(self) -> None:
        """A request with this link's login got 401: log in again from the Secret at once (it may
        have been rotated), without waiting for the watch to end."""
        self._relogin.set()
        response = self._response
        if response is not None:
            response.close()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            response.close()  # ends a watch blocked on the stream

    # -- the link's thread ---------------------------------------------------------------------

    def _run(self) -> None:
        delay = BACKOFF_START
        while not self._stop.is_set():
            try:
                kube = self._login()
                version = self._list(kube)
                delay = BACKOFF_START
                while not self._stop.is_set():
                    version = self._watch(kube, version)
                    kube = self._login()  # a rotated Secret is taken between watches
            except Exception as exc:  # every failure is a state of the link, never the end of it
                if self._stop.is_set():
                    return
                if self._relogin.is_set():  # not a failure of the target: a new login, at once
                    self._relogin.clear()
                    self._kube = None
                    continue
                self._down(exc)
                metrics.TARGET_WATCH_RESTARTS.labels(self._component, self.target.name).inc()
                self._stop.wait(delay)
                delay = min(BACKOFF_MAX, delay * 2)

    def _login(self) -> Kube:
        ref = self.target.kubeconfig_secret_ref
        if ref is None:
            return self._own
        if self._relogin.is_set():
            self._relogin.clear()
            self._kube = None
        secret = self._own.get_secret(self._secrets_namespace, ref.name)
        version = secret["metadata"].get("resourceVersion")
        if self._kube is None or version != self._secret_version:  # new, rotated, or refused
            doc = kubeconfig_of(secret, ref.key, self._allow_exec)
            api = pykube.HTTPClient(pykube.KubeConfig(doc), timeout=30)
            api.session.trust_env = False
            kube = Kube(api, manager=self._component)
            self._kube, self._secret_version = kube, version
            self.client = AsyncKube(kube, self._component)
            if version is not None:
                log.info("target %s: logged in with Secret %s (version %s)", self.target.name, ref.name, version)
        assert self._kube is not None
        return self._kube

    def _list(self, kube: Kube) -> str:
        listed = kube.list(FULFILLMENTS, self.target.namespace, timeout=CONNECT_TIMEOUT * 2)
        items = listed.get("items") or []
        for item in items:
            item.setdefault("apiVersion", API_VERSION)
            item.setdefault("kind", "Fulfillment")
        self._up()
        self._deliver([(None, item) for item in items], relisted=True)
        return str(listed["metadata"]["resourceVersion"])

    def _watch(self, kube: Kube, version: str) -> str:
        params = {
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        response = kube.stream(FULFILLMENTS, self.target.namespace, params, (CONNECT_TIMEOUT, WATCH_SECONDS + 30))
        self._response = response
        try:
            for line in response.iter_lines():
                if self._stop.is_set():
                    break
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":  # 410 Gone (too old) and the like: list again
                    raise ApiError(int(obj.get("code") or 500), obj.get("reason") or "Error", obj.get("message", ""))
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                self._up()
                if kind != "BOOKMARK":
                    self._deliver([(kind, obj)])
        finally:
            self._response = None
            response.close()
        return version

    def _deliver(self, events: list[tuple[str | None, dict[str, Any]]], relisted: bool = False) -> None:
        """Into the store and on to the controller, on the event loop (the store is the loop's).
        A new list replaces what the store held: what it no longer has was deleted meanwhile."""
        loop = self._loop
        if loop is None or not (events or relisted):
            return

        def apply() -> None:
            if relisted:
                listed = {ObjectKey.of(obj) for _, obj in events}
                for key in self.store.known():
                    if key not in listed:
                        stub = {"metadata": {"namespace": key.namespace, "name": key.name}, "spec": {}}
                        events.append(("DELETED", self.store.get(key) or stub))
            for kind, obj in events:
                if kind == "DELETED":
                    self.store.remove(ObjectKey.of(obj))
                else:
                    self.store.put(obj)
                self._on_change(kind, obj)

        loop.call_soon_threadsafe(apply)

    def _up(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        was = self.state.reachable
        self.state = workflow.Link(reachable=True, last_reached=now)
        if not was:
            log.info("target %s (namespace %s): reachable", self.target.name, self.target.namespace)
            metrics.TARGET_REACHABLE.labels(self._component, self.target.name).set(1)
            self._tell()

    def _down(self, error: Exception) -> None:
        if isinstance(error, KubeconfigRefused):
            reason, message = "KubeconfigRefused", str(error)
        elif isinstance(error, ApiError) and error.code == 403:
            reason, message = "Forbidden", error.message
        elif isinstance(error, ApiError) and error.code == 401:
            reason, message = "Unauthorized", f"the target's API server refused the login: {error.message}"
            self._kube = None  # a new login from the Secret, which may have been rotated
        else:
            reason, message = "Unreachable", _describe(error)
        before = self.state
        self.state = workflow.Link(reachable=False, reason=reason, message=message, last_reached=before.last_reached)
        if before.reachable or (before.reason, before.message) != (reason, message):
            log.warning("target %s (namespace %s): %s: %s", self.target.name, self.target.namespace, reason, message)
            metrics.TARGET_REACHABLE.labels(self._component, self.target.name).set(0)
            self._tell()

    def _tell(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_state)


def _describe(error: Exception) -> str:
    """A connection error in a few words: requests' own are long chains of wrapped exceptions."""
    if isinstance(error, requests.ConnectionError):
        return "no connection to its API server"
    if isinstance(error, requests.Timeout):
        return "its API server did not answer in time"
    text = str(error)
    return text if len(text) <= 300 else text[:297] + "..."
