"""The controllers' log: both formats, the start-up line, and Kopf's retries kept below ERROR."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import kopf
import pytest

import orderflow
from orderflow.order import workflow as wf
from orderflow.runtime.cache import ObjectKey
from orderflow.runtime.logs import KopfRetries, log_decision
from orderflow.runtime.pure.events import Event
from orderflow.runtime.runner import RunOptions, setup_logging, startup_line

RETRY = "Request attempt #1/9 failed; will retry: GET https://10.96.0.1/apis/orderflow.dev/v1alpha1/orders?watch=true"
STORAGE = " -> APITooManyRequestsError(429, 'storage is (re)initializing')"


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """Where setup_logging sends the log; the process's logging is put back afterwards."""
    root, kopf_logger = logging.getLogger(), logging.getLogger("kopf")
    handlers, level, kopf_level = root.handlers[:], root.level, kopf_logger.level
    yield io.StringIO()
    root.handlers[:] = handlers
    root.setLevel(level)
    kopf_logger.setLevel(kopf_level)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def decide(logger: str = "orderflow.fulfillment") -> None:
    log_decision(
        logging.getLogger(logger),
        "Fulfillment",
        ObjectKey("shop", "parcel-7"),
        "Pending",
        "Packing",
        transitions=("Started", "Picked"),
        events=[Event("Normal", "Picked", "items picked; packing")],
    )


def test_a_decision_in_json_is_one_object_naming_the_object_and_what_changed(output: io.StringIO) -> None:
    setup_logging(RunOptions(namespaces=[], log_format="json"), stream=output)
    decide()
    (line,) = lines(output)
    entry = json.loads(line)
    assert entry["level"] == "info"
    assert entry["logger"] == "orderflow.fulfillment"
    assert entry["message"] == "Fulfillment shop/parcel-7: Pending -> Packing (Started, Picked)"
    assert entry["object"] == {"kind": "Fulfillment", "namespace": "shop", "name": "parcel-7"}
    assert entry["previousPhase"] == "Pending"
    assert entry["phase"] == "Packing"
    assert entry["transitions"] == ["Started", "Picked"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", entry["time"])


def test_a_decision_in_text_is_one_line(output: io.StringIO) -> None:
    setup_logging(RunOptions(namespaces=[], log_format="text"), stream=output)
    decide()
    (line,) = lines(output)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO    orderflow.fulfillment: "
        r"Fulfillment shop/parcel-7: Pending -> Packing \(Started, Picked\)",
        line,
    ), line


def test_a_decision_that_changed_nothing_worth_telling_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log_decision(logging.getLogger("orderflow.order"), "Order", ObjectKey("ns", "o"), "Fulfilling", "Fulfilling")
    assert caplog.records == []


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_kopf_retries_with_attempts_left_are_warnings_and_the_last_failure_an_error(
    output: io.StringIO, log_format: str
) -> None:
    setup_logging(RunOptions(namespaces=[], log_format=log_format), stream=output)
    logging.getLogger("kopf._cogs.clients.watching").error(RETRY + STORAGE)
    logging.getLogger("kopf.objects").error("Request attempt #2/9 failed; will retry: PATCH https://x -> E()")
    logging.getLogger("kopf._cogs.clients.watching").error(
        RETRY.replace("#1/9", "#9/9").replace("will retry", "escalating")
    )
    logging.getLogger("orderflow.order").error(RETRY)  # only Kopf's records are Kopf's retries
    logging.getLogger("kopf.objects").error("Handler 'x' failed permanently")
    if log_format == "json":
        levels = [json.loads(line)["level"] for line in lines(output)]
    else:
        levels = [line.split()[2].lower() for line in lines(output)]
    assert levels == ["warning", "warning", "error", "error", "error"]


def test_the_filter_knows_every_retry_message_of_the_installed_kopf() -> None:
    """Kopf's own wording, read from its source: an upgrade that rewords it fails here, not in
    production, where the retries would be errors again."""
    source = (Path(kopf.__file__).parent / "_cogs" / "clients" / "api.py").read_text()
    templates = re.findall(r'logger\.error\(f"(Request attempt \{idx\} failed;[^"]*)"\)', source)
    assert len(templates) >= 4, templates
    rendered = [t.replace("{idx}", "#3/9").replace("{what}", "GET /x").replace("{e!r}", "E()") for t in templates]
    demoted = {}
    for message in rendered:
        record = logging.LogRecord("kopf._cogs.clients.api", logging.ERROR, __file__, 1, message, None, None)
        KopfRetries().filter(record)
        demoted[message.split(";", 1)[1].split(":", 1)[0].strip()] = record.levelname
    assert demoted == {
        "TCP closed; will re-authenticate": "WARNING",
        "SSL closed; will re-authenticate": "WARNING",
        "escalating": "ERROR",
        "will retry": "WARNING",
    }


def test_kopfs_records_about_an_object_name_it_in_text(output: io.StringIO) -> None:
    setup_logging(RunOptions(namespaces=[], log_format="text"), stream=output)
    ref = {"kind": "Order", "namespace": "shop", "name": "o1"}
    logging.getLogger("kopf.objects").warning("Handler 'x' failed", extra={"k8s_ref": ref})
    (line,) = lines(output)
    assert line.endswith("WARNING kopf.objects: [shop/o1] Handler 'x' failed")


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_start_up_line_says_version_controller_namespaces_and_settings(
    output: io.StringIO, log_format: str
) -> None:
    options = RunOptions(
        namespaces=["shop", "returns"],
        log_format=log_format,
        peering="order-controller-peering",
        metrics_port=9090,
        metrics_bind_address="0.0.0.0",
        controller="order-controller",
        settings={"workers": 4, "ackTimeoutSeconds": 30.0},
    )
    setup_logging(options, stream=output)
    message, fields = startup_line(options, priority=-5)
    logging.getLogger("orderflow.runtime.runner").info("%s", message, extra={"data": fields})
    assert message == (
        f"starting order-controller {orderflow.__version__}: namespaces=shop,returns workers=4 "
        "ackTimeoutSeconds=30.0 peering=order-controller-peering (priority -5, lifetime 15s) "
        "metrics=http://0.0.0.0:9090/metrics log-format=" + log_format
    )
    (line,) = lines(output)
    if log_format == "json":
        entry = json.loads(line)
        assert entry["message"] == message
        assert entry["version"] == orderflow.__version__
        assert entry["controller"] == "order-controller"
        assert entry["namespaces"] == ["shop", "returns"]
        assert entry["workers"] == 4
        assert entry["ackTimeoutSeconds"] == 30.0
    else:
        assert line.endswith(f"INFO    orderflow.runtime.runner: {message}")


def test_standalone_on_all_namespaces_with_no_metrics_says_so() -> None:
    options = RunOptions(
        namespaces=[], controller="fulfillment-controller", settings={"workers": 2, "stepSeconds": 5.0}
    )
    message, fields = startup_line(options, priority=None)
    assert "namespaces=all workers=2 stepSeconds=5.0 peering=standalone metrics=off" in message
    assert fields["peering"] == "standalone"


def test_each_order_action_is_described_without_the_address() -> None:
    address = {"name": "Ada Lovelace", "street": "12 Square", "postalCode": "SW1Y 4JH", "city": "London"}
    described = [
        wf.describe_action(action, "o1")
        for action in (
            wf.AddFinalizer(),
            wf.CreateFulfillment({"metadata": {"name": "o1"}}),
            wf.SendSignals({"paused": True, "shippingAddress": address, "cancelled": True}),
            wf.DeleteFulfillment("f-uid"),
            wf.RemoveFinalizer(),
        )
    ]
    assert described == [
        "added finalizer",
        "created Fulfillment o1",
        "sent signals cancelled=true, paused=true, shippingAddress (changed)",
        "deleted Fulfillment o1",
        "removed finalizer",
    ]
