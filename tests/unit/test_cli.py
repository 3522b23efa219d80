"""The ``orderflow`` command: each controller takes its own options, and the dev wing's commands
say how to get them when it is not installed."""

from __future__ import annotations

from importlib.metadata import EntryPoints

import pytest

from orderflow import cli


def test_each_controller_takes_its_own_options_and_not_the_others() -> None:
    order = cli.parser().parse_args(["run", "order", "--ack-timeout", "9", "--workers", "2"])
    assert (order.controller, order.ack_timeout, order.workers) == ("order", 9.0, 2)
    fulfillment = cli.parser().parse_args(["run", "fulfillment", "--step-seconds", "0"])
    assert (fulfillment.controller, fulfillment.step_seconds) == ("fulfillment", 0.0)
    for wrong in (["run", "fulfillment", "--ack-timeout", "9"], ["run", "order", "--step-seconds", "1"]):
        with pytest.raises(SystemExit) as exited:
            cli.parser().parse_args(wrong)
        assert exited.value.code == 2


def test_the_dev_wings_commands_exist_when_it_is_installed() -> None:
    for argv in (["cluster", "status"], ["image", "build"], ["demo"]):
        assert callable(cli.parser().parse_args(argv).func)


def test_without_the_dev_wing_its_commands_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "entry_points", lambda group: EntryPoints(()))
    assert cli.main(["demo"]) == 2
    assert "pip install 'orderflow[dev]'" in capsys.readouterr().err
    assert cli.main(["cluster", "up"]) == 2
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["cluster", "up"])  # not a command at all here
