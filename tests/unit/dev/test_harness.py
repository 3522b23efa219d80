"""The harness reports a controller that cannot start at once, with the reason from its own log:
the benchmark once passed each controller the other's option, and nothing said so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orderflow.dev.harness import ControllerError, ControllerProcess, Controllers


def test_an_option_of_the_other_controller_is_reported_with_the_usage_message(tmp_path: Path) -> None:
    process = ControllerProcess("fulfillment", ["--ack-timeout", "5"], log=tmp_path / "fulfillment.log")
    with pytest.raises(ControllerError, match=r"exited \(2\)[\s\S]*unrecognized arguments: --ack-timeout 5"):
        process.start(timeout=60)
    assert not process.alive
    assert process.stop() == 2  # nothing left to stop; its exit code stays readable


def test_each_start_of_a_controller_keeps_its_own_log(tmp_path: Path) -> None:
    controllers = Controllers(dict(os.environ), tmp_path)
    for _ in range(2):
        with pytest.raises(ControllerError):
            controllers.start("order", "--step-seconds", "1")
    assert [p.log.name for p in controllers.started] == ["order.log", "order-2.log"]
    assert all("--step-seconds" in p.output() for p in controllers.started)
    controllers.stop_all()  # nothing running: returns at once


def test_there_are_two_controllers() -> None:
    with pytest.raises(ValueError, match="one of order, fulfillment"):
        ControllerProcess("shipping", log=Path("unused.log"))
