"""A small typed Kubernetes client for both controllers, and its async facade.

Kopf's ``patch`` kwarg only writes to the object being handled, so every write here goes through
this client: pykube-ng's HTTP session (connection pooling, kubeconfig and in-cluster login),
with the API server's ``Status`` errors turned into typed exceptions (``runtime.pure.errors``).
The calls block, so the controllers run them in worker threads (``asyncio.to_thread``), never on
the event loop; Events are posted by ``runtime.recorder``, merge patches computed by
``runtime.pure.mergepatch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import pykube
import requests

from orderflow.api.common import API_VERSION
from orderflow.runtime import metrics
from orderflow.runtime.pure.errors import NotFound, api_error
from orderflow.runtime.pure.mergepatch import MERGE_PATCH
from orderflow.runtime.recorder import Recorder


def _raise_for(response: requests.Response) -> None:
    if response.ok:
        return
    reason, message = response.reason or "Error", response.text
    try:
        status = response.json()
        reason = status.get("reason") or reason
        message = status.get("message") or message
    except ValueError:
        pass
    raise api_error(response.status_code, reason, message)


class Kube:
    """Blocking calls to the API server for the orderflow kinds, Events and a few built-ins."""

    def __init__(self, api: pykube.HTTPClient, manager: str | None = None) -> None:
        self._api = api
        # client-go's `host` label: the API server's host:port, the same for every request.
        self._host = urlsplit(str(getattr(api, "url", "") or "")).netloc
        self._manager: str | None = None
        if manager:
            self.identify(manager)

    def identify(self, manager: str) -> None:
        """Write as ``manager``: the field manager of every create and patch (what
        ``metadata.managedFields`` and server-side apply conflicts name) and the User-Agent (what
        audit logs name), instead of pykube-ng's, which both controllers would share."""
        from orderflow import __version__

        self._manager = manager
        self._api.session.headers["User-Agent"] = f"{manager}/{__version__} (orderflow)"

    @classmethod
    def from_env(cls) -> Kube:
        """Log in from KUBECONFIG / ~/.kube/config, or in-cluster from the ServiceAccount.

        The session reads nothing from the environment on each request (requests' ``trust_env``:
        proxies, ~/.netrc, a CA bundle), which took a twentieth of the order controller's CPU:
        the API server and the credentials are the kubeconfig's, as for Kopf's own client, whose
        aiohttp session reads no proxy from the environment either."""
        api = pykube.HTTPClient(pykube.KubeConfig.from_env(), timeout=30)
        api.session.trust_env = False
        return cls(api)

    def _request(
        self,
        method: str,
        url: str,
        namespace: str | None,
        version: str = API_VERSION,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"version": version, "url": url}
        if namespace is not None:
            kwargs["namespace"] = namespace
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs["headers"] = {"Content-Type": content_type}
        if self._manager and method in ("POST", "PATCH", "PUT"):
            params = {**(params or {}), "fieldManager": self._manager}
        if params is not None:
            kwargs["params"] = params
        if timeout is not None:
            kwargs["timeout"] = timeout  # else the client's own (30 s)
        response = self._send(method, method, **kwargs)
        _raise_for(response)
        result: dict[str, Any] = response.json()
        return result

    def _send(self, method: str, verb: str, **kwargs: Any) -> requests.Response:
        """One HTTP request, counted and timed under ``verb`` as client-go's metrics are (code
        ``<error>`` when there is no response)."""
        started, code = time.monotonic(), "<error>"
        try:
            response: requests.Response = self._api.request(method, **kwargs)
            code = str(response.status_code)
        finally:
            metrics.REST_REQUESTS.labels(code, verb, self._host).inc()
            metrics.REST_SECONDS.labels(verb, self._host).observe(time.monotonic() - started)
        return response

    # -- custom resources of orderflow.dev ---------------------------------------------------

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return self._request("GET", f"{plural}/{name}", namespace)

    def find(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.get(plural, namespace, name)
        except NotFound:
            return None

    def create(
        self,
        plural: str,
        namespace: str | None,
        body: dict[str, Any],
        version: str = API_VERSION,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Create in ``namespace``, or a cluster-scoped object when it is None."""
        return self._request("POST", plural, namespace, version=version, body=body, timeout=timeout)

    def list(self, plural: str, namespace: str, timeout: float | None = None) -> dict[str, Any]:
        """Every object of ``plural`` in ``namespace``, with the list's resourceVersion to watch from."""
        return self._request("GET", plural, namespace, timeout=timeout)

    def stream(
        self, plural: str, namespace: str, params: dict[str, str], timeout: tuple[float, float]
    ) -> requests.Response:
        """A watch: the open response, one JSON event a line. The caller closes it."""
        response = self._send(
            "GET",
            "WATCH",
            version=API_VERSION,
            url=plural,
            namespace=namespace,
            params=params,
            stream=True,
            timeout=timeout,
        )
        if not response.ok:
            try:
                _raise_for(response)
            finally:
                response.close()
        return response

    def get_secret(self, namespace: str | None, name: str) -> dict[str, Any]:
        """A Secret of the controller's own namespace (``None``: the kubeconfig's or the Pod's)."""
        return self._request("GET", f"secrets/{name}", namespace or self.namespace, version="v1")

    @property
    def namespace(self) -> str:
        """The namespace the login names: the Pod's, or the kubeconfig context's (else default)."""
        return str(getattr(self._api.config, "namespace", None) or "default")

    def list_one(self, plural: str, namespace: str | None, timeout: float) -> None:
        """List at most one object, in ``namespace`` or (None) in all: the cheapest request that
        shows the API server answers and this identity may list ``plural`` there."""
        self._request("GET", plural, namespace, params={"limit": "1"}, timeout=timeout)

    def patch(
        self,
        plural: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        subresource: str | None = None,
        version: str = API_VERSION,
    ) -> dict[str, Any]:
        """A JSON merge patch. Put ``metadata.resourceVersion`` in it to fail with 409 when stale."""
        url = f"{plural}/{name}" + (f"/{subresource}" if subresource else "")
        return self._request("PATCH", url, namespace, version=version, body=patch, content_type=MERGE_PATCH)

    def delete(
        self, plural: str, namespace: str, name: str, resource_version: str | None = None, uid: str | None = None
    ) -> None:
        """Gone already is fine. With ``resource_version``, only that version is deleted (409 if it
        changed since), as Job's TTL controller does: a retention decision holds for what it saw.
        With ``uid``, only that object (409 if the name now belongs to another): a decision about
        the object it saw never deletes a same-name replacement a stale cache has not shown."""
        preconditions = {"resourceVersion": resource_version, "uid": uid}
        kept = {k: v for k, v in preconditions.items() if v}
        body = {"preconditions": kept} if kept else None
        with contextlib.suppress(NotFound):
            self._request("DELETE", f"{plural}/{name}", namespace, body=body)


class KubeClient(Protocol):
    """What the controllers ask of the API server: ``AsyncKube``'s calls, and nothing more.

    The controllers are typed against this, not against ``AsyncKube``, so a test's fake that
    answers these calls (in memory, or holding one open) stands in for the API server without a
    cast. Positional-only, as the controllers call them, so a fake may name its parameters freely.
    """

    async def find(self, plural: str, namespace: str, name: str, /) -> dict[str, Any] | None: ...

    async def create(self, plural: str, namespace: str, body: dict[str, Any], /) -> dict[str, Any]: ...

    async def patch(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any], subresource: str | None = None, /
    ) -> dict[str, Any]: ...

    async def delete(
        self, plural: str, namespace: str, name: str, resource_version: str | None = None, uid: str | None = None, /
    ) -> None: ...

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str, /) -> None: ...


class AsyncKube:
    """The same calls, run in worker threads so the event loop never blocks on I/O."""

    def __init__(self, kube: Kube, component: str) -> None:
        self.sync = kube
        self.component = component
        self.recorder = Recorder(kube, component)

    async def find(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.sync.find, plural, namespace, name)

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.create, plural, namespace, body)

    async def patch(
        self,
        plural: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.patch, plural, namespace, name, patch, subresource)

    async def delete(
        self, plural: str, namespace: str, name: str, resource_version: str | None = None, uid: str | None = None
    ) -> None:
        await asyncio.to_thread(self.sync.delete, plural, namespace, name, resource_version, uid)

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Post an Event in the background, folded and rate-limited (``runtime.recorder``)."""
        self.recorder.event(obj, type_, reason, message)

    async def flush(self) -> None:
        """Wait for the Events being posted now."""
        await self.recorder.flush()
