"""What every model of the API offers."""

from __future__ import annotations

import datetime

from orderflow.api.common import Condition, ConditionStatus, HistoryEntry
from orderflow.api.fulfillment import FulfillmentPhase, FulfillmentStatus

T0 = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)


def test_a_copied_status_is_equal_and_shares_nothing_that_can_change() -> None:
    status = FulfillmentStatus(
        phase=FulfillmentPhase.PACKING,
        conditions=[Condition(type="Ready", status=ConditionStatus.FALSE, last_transition_time=T0, reason="Packing")],
        history=[HistoryEntry(time=T0, phase="Picking", reason="Started")],
    )
    copy = status.copied()
    assert copy == status
    copy.conditions[0].status = ConditionStatus.TRUE
    copy.history.append(HistoryEntry(time=T0, phase="Packing", reason="Picked"))
    copy.phase = FulfillmentPhase.SHIPPED
    assert status.conditions[0].status is ConditionStatus.FALSE
    assert len(status.history) == 1
    assert status.phase is FulfillmentPhase.PACKING
