"""The ``orderflow`` command: each controller takes its own options, and the dev wing's commands
say how to get them when it is not installed."""

from __future__ import annotations

import logging
import types
from collections.abc import Iterator
from importlib.metadata import EntryPoints
from typing import Any

import pytest

from orderflow import cli
from orderflow.runtime import peering


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
    assert "pip install . ./packaging/orderflow-dev" in capsys.readouterr().err
    assert cli.main(["cluster", "up"]) == 2
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["cluster", "up"])  # not a command at all here


def test_the_retry_policy_and_default_deadline_come_from_flags_or_the_charts_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERFLOW_RETRY_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("ORDERFLOW_ACTIVE_DEADLINE_SECONDS", "3600")
    args = cli.parser().parse_args(["run", "fulfillment", "--retry-initial-interval", "2"])
    assert (args.retry_initial_interval, args.retry_backoff_factor, args.retry_max_interval) == (2.0, 2.0, 60.0)
    assert args.retry_max_attempts == 3
    assert args.active_deadline_seconds == 3600
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["run", "order", "--active-deadline-seconds", "5"])  # the fulfillment team's


def test_a_retry_policy_that_cannot_work_stops_the_controller_before_it_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["run", "order", "--retry-max-attempts", "0"]) == 2
    assert "maximum attempts must be at least 1" in capsys.readouterr().err


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"orderflow {cli.version()}"
    assert cli.version()[0].isdigit()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        ([], "give a command: crds, run, describe"),
    ],
)
def test_a_wrong_or_missing_command_is_named(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert says in err
    assert "required: command" not in err


def test_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out
    assert "describe" in out


@pytest.fixture
def kopf_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """``orderflow run`` up to Kopf: what it hands ``kopf.run``, with no API server and no Kopf."""
    import kopf

    from orderflow.runtime.client import Kube

    called: dict[str, Any] = {}
    no_server = types.SimpleNamespace(session=types.SimpleNamespace(headers={}), url="")  # never asked
    monkeypatch.setattr(Kube, "from_env", classmethod(lambda cls: cls(no_server)))
    monkeypatch.setattr(kopf, "run", lambda **kwargs: called.update(kwargs))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # the controller sets up logging its own way
    try:
        yield called
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.parametrize("controller", ["order", "fulfillment"])
def test_the_peering_lifetime_reaches_kopfs_settings(
    kopf_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch, controller: str
) -> None:
    assert cli.main(["run", controller, "--peering", "p", "--peering-lifetime", "20"]) == 0
    assert kopf_run["settings"].peering.lifetime == 20
    assert kopf_run["peering_name"] == "p"  # kopf.run adds the name to the same settings
    monkeypatch.setenv("ORDERFLOW_PEERING_LIFETIME", "30")  # as the charts pass it
    assert cli.main(["run", controller, "--peering", "p"]) == 0
    assert kopf_run["settings"].peering.lifetime == 30
    monkeypatch.delenv("ORDERFLOW_PEERING_LIFETIME")
    assert cli.main(["run", controller, "--peering", "p"]) == 0
    assert kopf_run["settings"].peering.lifetime == cli.DEFAULT_PEERING_LIFETIME == peering.DEFAULT_LIFETIME


def test_a_peering_lifetime_kopf_cannot_keep_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, env in ((["--peering-lifetime", "5"], None), ([], "9")):
        if env:
            monkeypatch.setenv("ORDERFLOW_PEERING_LIFETIME", env)
        with pytest.raises(SystemExit) as exited:
            cli.parser().parse_args(["run", "order", "--peering", "p", *argv])
        assert exited.value.code == 2
        assert "the peering lifetime must be at least 10 seconds" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["status", "env", "down"])
def test_a_state_left_by_the_retired_local_node_is_named_not_a_traceback(
    action: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # `orderflow cluster up --nodes` recorded its cluster in the same file; kind replaced it.
    (tmp_path / "cluster.json").write_text('{"kind": "nodes", "server": "https://127.0.0.1:6443"}')
    assert cli.main(["cluster", action, "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"orderflow cluster {action}:" in err
    assert "no longer runs" in err
    assert (tmp_path / "cluster.json").exists()  # nothing removed behind the user's back
