"""Running a controller: logging, Kopf settings and ``kopf.run``, the same for both controllers.

Each controller has its own registry, finalizer name and annotation prefix, so two controllers in
one cluster never take each other's objects or fight over a finalizer; its peering name comes from
``--peering`` (the charts pass ``<component>-peering``, one per controller).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import random
import threading
import time
from collections.abc import Iterable
from typing import IO, Any

import kopf
from aiohttp import web
from kopf._core.reactor.inventory import ResourceMemories, ResourceMemory  # see ForgetfulMemories

import orderflow
from orderflow.api.common import GROUP
from orderflow.runtime import metrics, peering, readiness
from orderflow.runtime.client import Kube
from orderflow.runtime.logs import log_handler
from orderflow.runtime.peering import DEFAULT_LIFETIME as DEFAULT_PEERING_LIFETIME  # `peering` is a field below
from orderflow.runtime.workqueue import WorkQueue

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunOptions:
    namespaces: list[str]
    log_format: str = "text"  # text | json
    liveness: str | None = None  # Kopf's health endpoint, e.g. http://0.0.0.0:8080/healthz
    readiness: str | None = None  # ours (orderflow.runtime.readiness), e.g. http://0.0.0.0:8081/readyz
    peering: str | None = None  # Kopf peering name; None: standalone (one replica, strategy Recreate)
    priority: int | None = None  # peering priority; None: by start time (orderflow.runtime.peering)
    peering_lifetime: int = DEFAULT_PEERING_LIFETIME  # seconds a replica's record lasts unrenewed
    metrics_port: int = 0
    metrics_bind_address: str = metrics.DEFAULT_BIND_ADDRESS
    verbose: bool = False
    controller: str = ""  # the component, e.g. order-controller: named in the start-up line
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # the controller's own, for that line

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def setup_logging(options: RunOptions, stream: IO[str] | None = None) -> None:
    level = logging.DEBUG if options.verbose else logging.INFO
    root = logging.getLogger()
    root.handlers[:] = [log_handler(options.log_format, stream)]
    root.setLevel(level)
    logging.getLogger("kopf").setLevel(logging.DEBUG if options.verbose else logging.WARNING)
    # Which replica works is worth a line in the log: Kopf says so when it pauses or resumes.
    logging.getLogger("kopf._core.engines.peering").setLevel(logging.DEBUG if options.verbose else logging.INFO)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)


def startup_line(options: RunOptions, priority: int | None) -> tuple[str, dict[str, Any]]:
    """The start-up line's message and its fields: what this process is and how it is set up."""
    where = ",".join(options.namespaces) if options.namespaces else "all"
    peering_ = (
        f"{options.peering} (priority {priority}, lifetime {options.peering_lifetime}s)"
        if options.peering
        else "standalone"
    )
    served = f"http://{options.metrics_bind_address}:{options.metrics_port}/metrics" if options.metrics_port else "off"
    own = " ".join(f"{key}={value}" for key, value in options.settings.items())
    message = (
        f"starting {options.controller} {orderflow.__version__}: namespaces={where} {own} "
        f"peering={peering_} metrics={served} log-format={options.log_format}"
    )
    fields: dict[str, Any] = {
        "controller": options.controller,
        "version": orderflow.__version__,
        "namespaces": options.namespaces or "all",
        **options.settings,
        "peering": options.peering or "standalone",
        "priority": priority,
        "peeringLifetimeSeconds": options.peering_lifetime if options.peering else None,
        "metrics": served,
    }
    return " ".join(message.split()), fields


LIST_PAGE_SIZE = 100
IDLE_WORKER_SECONDS = 0.1


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: Kopf builds one on every watch event, a deep copy of the whole object with its
    managedFields, for change handlers (``on.create/update/field/resume``) to compare against, and
    these controllers have none (``@kopf.on.event`` only, see ``controller_registry``). The copy
    was a fifth of the order controller's CPU while it caught up after a restart."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class ForgetfulMemories(ResourceMemories):
    """Kopf's per-object memory, kept for no object: Kopf keeps a ``ResourceMemory`` for every
    object it has seen until the object is deleted, some 0.8 KB each (``python -m
    orderflow.dev.bench.cache_bytes``), which is 16 MiB for the 20,000 objects the order
    controller watches with 10,000 workflows. What it holds is for what these controllers do not
    use: daemons and timers, indexes, resume handlers, memos, and a patch that Kopf failed to
    apply (they make none). Each event now gets a fresh one, as Kopf's own webhooks get for a create.

    The one thing lost: Kopf's error throttling of an object (not of a handler: event handlers'
    errors are logged and do not throttle) starts again at its first delay with each event.
    ``tests/unit/test_architecture.py`` fails if a registry gains a handler that needs more.

    Kopf takes it as ``kopf.run(memories=...)``; the class is Kopf's own, from a private module:
    a Kopf release that moves it fails at import, in every test."""

    async def recall(
        self,
        raw_body: kopf.RawBody,
        *,
        memobase: Any = None,
        noticed_by_listing: bool = False,
        ephemeral: bool = False,
    ) -> ResourceMemory:
        return await super().recall(raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing, ephemeral=True)


def configure_kopf(settings: kopf.OperatorSettings, component: str) -> None:
    prefix = f"{component}.orderflow.dev"
    settings.persistence.finalizer = f"{prefix}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = NoDiffBase()
    # Our handlers only observe; Events are posted by our own code, for our own reasons.
    settings.posting.enabled = False
    # A restart lists every object of the kind, and Kopf hands each listed object to a worker of
    # its own as soon as its page arrives, without waiting for the workers: what they have not
    # handled yet is held in memory, and stays in the heap as fragments once they have. Pages of
    # 100 make the lister wait for the API server more often, and the workers keep up: after a
    # restart over 4,000 orders, the order controller held 107 MiB with pages of 500 and 90 with
    # pages of 100 (50 made no further difference). Idle workers go after 0.1 s.
    settings.watching.chunk_size = LIST_PAGE_SIZE
    settings.queueing.idle_timeout = IDLE_WORKER_SECONDS
    # No peering name here: kopf.run has set --peering's before start-up, and this would replace it.


def controller_registry(component: str, queue: WorkQueue[Any]) -> kopf.OperatorRegistry:
    """A Kopf registry of the controller's own (two controllers never share handlers), with its
    Kopf settings applied at start-up and its work queue started and stopped with the operator.

    Its resource handlers are ``@kopf.on.event`` only: they write nothing to the objects, and
    ``configure_kopf`` keeps no diff base for change handlers (NoDiffBase)."""
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


def api_check_steps(kube: Kube, plural: str, options: RunOptions) -> list[readiness.Step]:
    """What one API check does: with peering, create the peering objects (until that has worked
    once); then list the controller's own kind ``plural`` where it watches."""
    timeout = readiness.CHECK_TIMEOUT
    steps: list[readiness.Step] = []
    if options.peering:
        ensure = functools.partial(peering.ensure_objects, kube, options.peering, options.namespaces, timeout)
        steps.append(readiness.Step(f"create the Kopf peering object {options.peering}", ensure, once=True))
    namespaces: list[str | None] = [*options.namespaces] or [None]
    for namespace in namespaces:
        where = f"in namespace {namespace}" if namespace else "in all namespaces"
        list_one = functools.partial(kube.list_one, plural, namespace, timeout)
        steps.append(readiness.Step(f"list {plural}.{GROUP} {where}", list_one))
    return steps


def register_api_checks(
    registry: kopf.OperatorRegistry, steps: list[readiness.Step], started: threading.Event, endpoint: str | None
) -> None:
    """Check the API in the background from start-up to clean-up; serve the verdict at ``endpoint``."""
    where = readiness.parse_endpoint(endpoint) if endpoint else None  # a bad URL fails before Kopf starts
    state = readiness.Readiness(started.is_set)
    tasks: list[asyncio.Task[None]] = []
    servers: list[web.AppRunner] = []

    @kopf.on.startup(registry=registry)
    async def start_api_checks(**_: Any) -> None:
        if where:
            servers.append(await readiness.serve(where, state))  # says "starting" until Kopf has started
        # The first check runs before Kopf's peering keep-alive starts: a keep-alive that finds no
        # peering object tries again only a minute later, and until then this replica's record is
        # missing, so a second replica would not pause for it. One try only: start-up (and with it
        # Kopf's liveness endpoint) must not wait for an API server that is away.
        state.record(await asyncio.to_thread(readiness.run_steps, steps))
        tasks.append(asyncio.create_task(readiness.keep_checking(steps, state)))

    @kopf.on.cleanup(registry=registry)
    async def stop_api_checks(**_: Any) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in servers:
            await server.cleanup()


def peering_priority(options: RunOptions) -> int | None:
    if options.peering is None:
        return None  # standalone: Kopf ignores it
    if options.priority is not None:
        return options.priority
    return peering.default_priority(time.time_ns() // 1_000_000, random.Random())


def kopf_settings(options: RunOptions) -> kopf.OperatorSettings:
    """Kopf's settings as they must be before it starts: the peering lifetime is read by the first
    keep-alive, which may run before any start-up handler could set it. ``kopf.run`` adds the
    peering name, priority and mode to these; the rest is set at start-up (``configure_kopf``)."""
    settings = kopf.OperatorSettings()
    # How long this replica's record lasts unrenewed, so how long after a crash the standby takes
    # over: Kopf renews it 5-10 s before it ends (orderflow.runtime.peering).
    settings.peering.lifetime = peering.check_lifetime(options.peering_lifetime)
    return settings


def run(registry: kopf.OperatorRegistry, options: RunOptions, kube: Kube, plural: str) -> None:
    """Run the controller until stopped. ``kube`` and ``plural`` (the orderflow.dev kind the
    controller owns) serve the API check behind readiness and create the peering objects."""
    register_login(registry)

    @kopf.on.startup(registry=registry)
    def scanning(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Watching listed namespaces needs no cluster-wide access, so ask for none: Kopf's scanning
        # would list namespaces and watch CRDs. Cluster-wide, scanning stays on so that a CRD
        # installed after the controller (e.g. the other chart's) is noticed without a restart.
        settings.scanning.disabled = not options.clusterwide

    setup_logging(options)
    started = threading.Event()  # Kopf raises it once its start-up handlers have run
    if options.readiness or options.peering:
        register_api_checks(registry, api_check_steps(kube, plural, options), started, options.readiness)
    priority = peering_priority(options)
    message, fields = startup_line(options, priority)
    log.info("%s", message, extra={"data": fields})  # with peering, the priority: the highest works
    metrics.serve(options.metrics_port, options.metrics_bind_address)
    began = time.monotonic()
    try:
        kopf.run(
            registry=registry,
            settings=kopf_settings(options),
            standalone=options.peering is None,
            peering_name=options.peering,
            priority=priority,
            clusterwide=options.clusterwide,
            namespaces=options.namespaces,
            liveness_endpoint=options.liveness,
            ready_flag=started,
            memories=ForgetfulMemories(),
        )
    finally:
        # Kopf returns once a SIGTERM or SIGINT has stopped it and its clean-up has run; the
        # line says the process ended on purpose, as opposed to a log that just stops.
        ran = time.monotonic() - began
        log.info(
            "stopped %s after %.1fs",
            options.controller,
            ran,
            extra={"data": {"controller": options.controller, "uptimeSeconds": round(ran, 1)}},
        )
