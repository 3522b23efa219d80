"""orderflow describe against the real API server: both controllers run an Order through a pause,
and the story read back from the two objects and their Events is the one that happened."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from orderflow.dev import manifests
from orderflow.dev.testing.plugin import REPO, Controllers, Kubectl, wait_for

from .test_order_controller import patch

EMAIL = "ada@example.com"
ADDRESS = {"name": "Ada Lovelace", "street": "12 Square", "city": "London", "postalCode": "SW1Y 4JH", "country": "GB"}
PERSONAL = ("Ada", "Lovelace", "12 Square", "SW1Y", "London", EMAIL)  # what the timeline must never show
BIN = Path(sys.executable).parent


def orderflow(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The `orderflow` command as a user runs it (stdout is a pipe, so text is plain)."""
    command = [str(BIN / "orderflow")] if (BIN / "orderflow").exists() else [sys.executable, "-m", "orderflow.cli"]
    done = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"orderflow {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done


def describe_json(env: dict[str, str], ns: str, target: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(orderflow(env, "describe", target, "-n", ns, "-o", "json").stdout)
    return document


def order(name: str) -> dict[str, Any]:
    """Picking long enough to pause in; personal data the story must leave out."""
    return manifests.order(
        name, customerEmail=EMAIL, shippingAddress=ADDRESS, stepDurationSeconds={"picking": 3, "packing": 0.5}
    )


def patch_order(kubectl: Kubectl, ns: str, name: str, spec: str) -> None:
    patch(kubectl, ns, "order", name, spec)


def first(rows: list[dict[str, Any]], after: int = -1, **match: str) -> int:
    """The index of the first row after ``after`` whose fields match; fails if there is none."""
    for i, row in enumerate(rows):
        if i > after and all(row[k] == v for k, v in match.items()):
            return i
    raise AssertionError(f"no row {match} after row {after} in:\n" + "\n".join(map(str, rows)))


class Follower:
    """`orderflow describe --watch -o json` in the background, its lines collected."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        command = [sys.executable, "-m", "orderflow.cli", "describe", *args, "--watch", "-o", "json"]
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def latest(self) -> dict[str, Any] | None:
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return self.seen[-1] if self.seen else None

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)  # Ctrl-C
        return self.proc.wait(timeout=15)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_describe_tells_the_story_of_a_paused_and_resumed_order(
    controllers: Controllers, kubectl: Kubectl, namespace: str, kube_env: dict[str, str]
) -> None:
    controllers.start("fulfillment", "--namespace", namespace)
    controllers.start("order", "--namespace", namespace, "--ack-timeout", "5")
    kubectl.apply(order("story"), "-n", namespace)
    wait_for(
        lambda: kubectl.json("get", "-n", namespace, "fulfillment", "story").get("status", {}),
        lambda s: s.get("phase") == "Picking",
        what="Picking",
    )
    follower = Follower(kube_env, "order/story", "-n", namespace)
    try:
        patch_order(kubectl, namespace, "story", '{"paused": true}')
        wait_for(
            lambda: kubectl.json("get", "-n", namespace, "order", "story")["status"],
            lambda s: (s.get("fulfillment") or {}).get("paused") is True,
            what="the Order to show its Fulfillment paused",
        )
        patch_order(kubectl, namespace, "story", '{"paused": false}')
        kubectl("wait", "-n", namespace, "--for=condition=Ready", "order/story", "--timeout=60s")

        # The Order's last Events are posted just after its status: wait for all four.
        document = wait_for(
            lambda: describe_json(kube_env, namespace, "order/story"),
            lambda d: d["order"]["events"] >= 4,
            timeout=15,
            what="the Order's Events (FulfillmentCreated, two SignalSent, Completed)",
        )
        # --watch followed it live, to the end.
        seen = wait_for(
            follower.latest,
            lambda d: d is not None and d["order"]["phase"] == "Completed",
            timeout=15,
            what="the watch to show the order Completed",
        )
        assert seen is not None
        assert len(follower.seen) >= 3  # Picking, paused, ..., Completed: one document per change
        assert follower.interrupt() == 0
    finally:
        follower.kill()

    o, f, rows = document["order"], document["fulfillment"], document["timeline"]
    assert o["phase"] == "Completed"
    assert f["phase"] == "Shipped"
    assert f["exists"] is True
    assert f["progress"]["percent"] == 100
    assert o["trackingNumber"] == f["trackingNumber"]
    assert f["trackingNumber"]
    assert o["signals"]["acknowledged"] is True
    assert o["ready"]["status"] == "True"

    # In order: creation, Started, Paused, Resumed, Picked, (Packed,) Shipped, and the order done.
    created = first(rows, object="Order", kind="created")
    started = first(rows, created, object="Fulfillment", kind="history", what="Started")
    paused = first(rows, started, object="Fulfillment", kind="history", what="Paused")
    resumed = first(rows, paused, object="Fulfillment", kind="history", what="Resumed")
    picked = first(rows, resumed, object="Fulfillment", kind="history", what="Picked")
    packed = picked
    if any(r["what"] == "Packed" and r["kind"] == "history" for r in rows):
        packed = first(rows, picked, object="Fulfillment", kind="history", what="Packed")
    shipped = first(rows, packed, object="Fulfillment", kind="history", what="Shipped")
    first(rows, shipped, object="Order", kind="phase", what="Completed")
    assert first(rows, object="Fulfillment", kind="created") < started
    # The last signal (the resume) sent, then the Fulfillment resumed, then acknowledged.
    sent = first(rows, paused, object="Order", kind="signal")
    assert "paused=false" in rows[sent]["detail"]
    assert sent < resumed
    acknowledged = first(rows, sent, object="Fulfillment", kind="acknowledged")
    assert rows[acknowledged]["durationSeconds"] >= 0
    # The pause signal and the creation are told by the Order's Events.
    pause_event = first(rows, created, object="Order", kind="event", what="SignalSent")
    assert "paused=true" in rows[pause_event]["detail"]
    assert pause_event < paused
    first(rows, object="Order", kind="event", what="FulfillmentCreated")
    assert f["events"] >= 4  # Started, Paused, Resumed, ... (folded into their history rows)
    # Durations: Picking ran 3 s, not counting the pause.
    assert rows[picked]["durationSeconds"] > 0
    assert rows[resumed]["durationSeconds"] > 0
    times = [r["time"] for r in rows]
    assert [r["sinceStartSeconds"] for r in rows] == sorted(r["sinceStartSeconds"] for r in rows)
    assert len(times) == len(rows)

    timeline = json.dumps(rows)
    for word in PERSONAL:
        assert word not in timeline
    assert o["shippingAddress"].startswith("Ada Lovelace")  # the object itself shows it

    text = orderflow(kube_env, "describe", "order/story", "-n", namespace).stdout
    assert "Phase     Completed" in text
    assert "Shipped" in text
    assert "\x1b[" not in text  # not a terminal: plain text
    timeline_text = text.split("Timeline:", 1)[1]
    for word in PERSONAL:
        assert word not in timeline_text
    print(text)  # the README's example comes from here (pytest -s)

    by_fulfillment = orderflow(kube_env, "describe", "fulfillment/story", "-n", namespace).stdout
    assert by_fulfillment.startswith(f"Fulfillment {namespace}/story  for Order story")


def test_describe_what_is_not_there(
    crds_installed: None, kubectl: Kubectl, namespace: str, kube_env: dict[str, str], tmp_path: Path
) -> None:
    # A Fulfillment made by hand: no Order, and no controller running, so never reconciled.
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "fulfillment.yaml"))
    document = describe_json(kube_env, namespace, "fulfillment/parcel-7")
    assert document["order"]["exists"] is False
    assert "no spec.orderRef" in document["order"]["note"]
    assert document["fulfillment"]["phase"] is None
    assert [r["what"] for r in document["timeline"]] == ["Created"]

    # An Order no controller has seen: its Fulfillment does not exist yet, whichever is asked for.
    kubectl.apply(order("waiting"), "-n", namespace)
    for target in ("order/waiting", "fulfillment/waiting"):
        document = describe_json(kube_env, namespace, target)
        assert document["fulfillment"]["exists"] is False
        assert "does not exist yet" in document["fulfillment"]["note"]
    assert "does not exist yet" in orderflow(kube_env, "describe", "order/waiting", "-n", namespace).stdout

    missing = orderflow(kube_env, "describe", "order/nope", "-n", namespace, check=False)
    assert missing.returncode == 1
    assert f'order "nope" not found in namespace "{namespace}"' in missing.stderr

    # As a kubectl plugin: kubectl runs `kubectl-orderflow` from PATH with the rest of the arguments.
    plugin = tmp_path / "bin" / "kubectl-orderflow"
    plugin.parent.mkdir()
    plugin.write_text(
        f"#!{sys.executable}\nimport sys\nfrom orderflow.cli import kubectl_plugin\nsys.exit(kubectl_plugin())\n"
    )
    plugin.chmod(0o755)
    env = {**kube_env, "PATH": os.pathsep.join([str(plugin.parent), kube_env["PATH"]])}
    done = subprocess.run(
        ["kubectl", "orderflow", "describe", "fulfillment/parcel-7", "-n", namespace, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["fulfillment"]["name"] == "parcel-7"


def test_describe_shows_control_characters_in_an_event_and_never_sends_them(
    crds_installed: None, kubectl: Kubectl, namespace: str, kube_env: dict[str, str]
) -> None:
    """The edit role may post Events about any object: their text is someone's, shown, never run."""
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "fulfillment.yaml"))
    uid = kubectl.json("get", "fulfillment", "parcel-7", "-n", namespace)["metadata"]["uid"]
    forged_row = "\n12:00:09.000  +9.000s  Order        Completed         order completed"
    link = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
    involved = {"apiVersion": "orderflow.dev/v1alpha1", "kind": "Fulfillment", "name": "parcel-7", "uid": uid}
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "parcel-7.hostile", "namespace": namespace},
        "involvedObject": {**involved, "namespace": namespace},
        "reason": "Note\x1b]0;title\x07",
        "message": "\x1b[2J\x1b]52;c;ZXZpbA==\x07" + link + forged_row,
        "type": "Normal",
        "firstTimestamp": "2026-12-01T12:00:00Z",
        "lastTimestamp": "2026-12-01T12:00:00Z",
        "count": 1,
    }
    kubectl.apply(event, "-n", namespace)
    text = orderflow(kube_env, "describe", "fulfillment/parcel-7", "-n", namespace).stdout
    assert "\\x1b]52;c;" in text  # shown as an escape
    assert not {c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0}
    rows = text.split("TIME (UTC)", 1)[1].splitlines()[1:]
    assert len(rows) == 2  # Created and the Event: the forged row is not a row
