"""Running a controller: logging, Kopf settings and ``kopf.run``, the same for both controllers.

Each controller has its own registry, finalizer name, annotation prefix and peering identity, so
two controllers in one cluster never take each other's objects or fight over a finalizer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import kopf

from orderflow import metrics
from orderflow.reconciler import WorkQueue


@dataclasses.dataclass
class RunOptions:
    namespaces: list[str]
    log_format: str = "text"  # text | json
    liveness: str | None = None  # e.g. http://0.0.0.0:8080/healthz
    peering: str | None = None  # None: standalone (one replica, strategy Recreate)
    metrics_port: int = 0
    verbose: bool = False

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


class JsonFormatter(logging.Formatter):
    """One JSON object a line, naming the object a message is about when Kopf knows it."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        k8s = getattr(record, "k8s_ref", None)
        if k8s:
            entry["object"] = k8s
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(options: RunOptions) -> None:
    level = logging.DEBUG if options.verbose else logging.INFO
    handler = logging.StreamHandler()
    if options.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kopf").setLevel(logging.DEBUG if options.verbose else logging.WARNING)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)


def configure_kopf(settings: kopf.OperatorSettings, component: str) -> None:
    prefix = f"{component}.orderflow.dev"
    settings.persistence.finalizer = f"{prefix}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=prefix)
    # Our handlers only observe; Events are posted by our own code, for our own reasons.
    settings.posting.enabled = False
    # Fold bursts of events for one object, but do not sit on a lone event for Kopf's 0.1 s default.
    settings.batching.batch_window = 0.01
    settings.peering.name = f"{component}-peering"


def controller_registry(component: str, queue: WorkQueue[Any]) -> kopf.OperatorRegistry:
    """A Kopf registry of the controller's own (two controllers never share handlers), with its
    Kopf settings applied at start-up and its work queue started and stopped with the operator."""
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings, component)
        queue.start()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await queue.stop()

    return registry


def register_login(registry: kopf.OperatorRegistry) -> None:
    """Custom registries do not get Kopf's default login handler: in a Pod use the
    ServiceAccount, elsewhere KUBECONFIG (or ~/.kube/config), both without client libraries."""

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
        return info or kopf.login_with_kubeconfig(**kwargs)


def run(registry: kopf.OperatorRegistry, options: RunOptions) -> None:
    register_login(registry)

    @kopf.on.startup(registry=registry)
    def scanning(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Watching listed namespaces needs no cluster-wide access, so ask for none: Kopf's scanning
        # would list namespaces and watch CRDs. Cluster-wide, scanning stays on so that a CRD
        # installed after the controller (e.g. the other chart's) is noticed without a restart.
        settings.scanning.disabled = not options.clusterwide

    setup_logging(options)
    metrics.serve(options.metrics_port)
    kopf.run(
        registry=registry,
        standalone=options.peering is None,
        peering_name=options.peering,
        clusterwide=options.clusterwide,
        namespaces=options.namespaces,
        liveness_endpoint=options.liveness,
    )
