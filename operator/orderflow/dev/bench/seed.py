"""The seed's design on Temporal: the workflows the benchmark's peer runs (``make bench-peer``).

An order workflow starts an *independent* fulfillment workflow (not a child) through an activity,
drives it only with signals (start, pause, resume, cancel, change the address) and learns its state
only through queries, polled by an activity every ``poll_seconds`` (5 in the seed; 0 polls again
at once). The fulfillment workflow walks Pending -> Picking -> Packing -> Shipped, each step taking
``step_seconds`` of workflow time that stops while paused. orderflow maps each of these one to one
(docs/architecture.md, "Temporal term -> Kubernetes term"); this is the same flow the other way, so
the benchmark can run both in the same window and compare.

Only temporalio and the standard library are imported: Temporal's sandbox re-imports this module
for every workflow run, and the benchmark never imports it without the ``peer`` extra.
"""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

ORDER_QUEUE = "orders"
FULFILLMENT_QUEUE = "fulfillments"
FINISHED = ("Shipped", "Cancelled")
ACTIVITY_TIMEOUT = timedelta(seconds=30)


@dataclasses.dataclass
class OrderInput:
    order_id: str
    step_seconds: float = 0.0
    poll_seconds: float = 5.0


@dataclasses.dataclass
class FulfillmentInput:
    order_id: str
    step_seconds: float = 0.0


@dataclasses.dataclass
class FulfillmentStatus:
    """What the fulfillment's query answers: the seed's getFulfillmentStatus and getFulfillmentProgress."""

    phase: str = "Pending"
    paused: bool = False
    progress: int = 0
    # When each phase was entered, in workflow time (seconds since the epoch): not the seed's,
    # added so the waiting benchmark can time a step's end against its due time.
    entered: dict[str, float] = dataclasses.field(default_factory=dict)


def fulfillment_id(order_id: str) -> str:
    """Deterministic, so starting it again is idempotent (like the Fulfillment's name here)."""
    return f"fulfillment-{order_id}"


@workflow.defn
class FulfillmentWorkflow:
    def __init__(self) -> None:
        self.status = FulfillmentStatus()
        self.started = False
        self.cancelled = False
        self.address: dict[str, str] = {}

    @workflow.run
    async def run(self, request: FulfillmentInput) -> str:
        await workflow.wait_condition(lambda: self.started or self.cancelled)
        for phase, progress in (("Picking", 33), ("Packing", 66)):
            if self.cancelled:
                break
            self.status.phase, self.status.progress = phase, progress
            self.status.entered[phase] = workflow.now().timestamp()
            await self._step(request.step_seconds)
        if self.cancelled:
            self.status.phase = "Cancelled"
        else:
            self.status.phase, self.status.progress = "Shipped", 100
        self.status.entered[self.status.phase] = workflow.now().timestamp()
        return self.status.phase

    async def _step(self, seconds: float) -> None:
        """``seconds`` of running time: the clock stops while paused, and a cancel ends the step."""
        left = seconds
        while True:
            await workflow.wait_condition(lambda: not self.status.paused or self.cancelled)
            if self.cancelled or left <= 0:
                return
            began = workflow.now()
            try:
                await workflow.wait_condition(
                    lambda: self.status.paused or self.cancelled, timeout=timedelta(seconds=left)
                )
            except TimeoutError:
                return
            left -= (workflow.now() - began).total_seconds()

    @workflow.signal
    def start_fulfillment(self) -> None:
        self.started = True

    @workflow.signal
    def pause(self) -> None:
        self.status.paused = True

    @workflow.signal
    def resume(self) -> None:
        self.status.paused = False

    @workflow.signal
    def cancel(self) -> None:
        self.cancelled = True

    @workflow.signal
    def update_shipping_address(self, address: dict[str, str]) -> None:
        if self.status.phase not in FINISHED:
            self.address = address

    @workflow.query
    def get_fulfillment_status(self) -> FulfillmentStatus:
        return self.status

    @workflow.query
    def get_fulfillment_progress(self) -> int:
        return self.status.progress


@workflow.defn
class OrderWorkflow:
    def __init__(self) -> None:
        self.seen = FulfillmentStatus()  # the fulfillment's status as last polled

    @workflow.run
    async def run(self, order: OrderInput) -> str:
        request = FulfillmentInput(order.order_id, order.step_seconds)
        fid = await workflow.execute_activity_method(
            Activities.start_fulfillment, request, start_to_close_timeout=ACTIVITY_TIMEOUT
        )
        await workflow.get_external_workflow_handle(fid).signal(FulfillmentWorkflow.start_fulfillment)
        while True:
            self.seen = await workflow.execute_activity_method(
                Activities.query_fulfillment, fid, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
            if self.seen.phase in FINISHED:
                return self.seen.phase
            if order.poll_seconds > 0:
                await workflow.sleep(order.poll_seconds)

    @workflow.query
    def get_order_status(self) -> FulfillmentStatus:
        return self.seen


class Activities:
    """The order side's activities: they hold the client, as the seed's activity class does."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name="start_fulfillment")
    async def start_fulfillment(self, request: FulfillmentInput) -> str:
        fid = fulfillment_id(request.order_id)
        with contextlib.suppress(WorkflowAlreadyStartedError):  # a retried activity: it is there already
            await self.client.start_workflow(FulfillmentWorkflow.run, request, id=fid, task_queue=FULFILLMENT_QUEUE)
        return fid

    @activity.defn(name="query_fulfillment")
    async def query_fulfillment(self, fid: str) -> FulfillmentStatus:
        status: FulfillmentStatus = await self.client.get_workflow_handle(fid).query(
            FulfillmentWorkflow.get_fulfillment_status
        )
        return status
