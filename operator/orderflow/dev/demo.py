"""``orderflow demo``: the whole flow on a local control plane, as a person would drive it.

It starts etcd + kube-apiserver, installs the CRDs, runs the two controllers as separate
processes, applies ``examples/order.yaml``, shows live progress of the Order and its Fulfillment,
pauses and resumes the Fulfillment with the same ``kubectl patch`` a person would type, waits for
the Order to complete, and cleans up (``--keep`` leaves it all running).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from orderflow.dev import manifests
from orderflow.dev.cluster import controlplane, tools
from orderflow.dev.harness import Controllers

ORDER = manifests.example_order()["metadata"]["name"]
BAR = 30


def say(text: str) -> None:
    print(text, flush=True)


class Demo:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.env = dict(os.environ)
        self.controllers: Controllers | None = None  # once started
        self.tty = sys.stdout.isatty()

    def kubectl(self, *args: str, show: bool = False) -> str:
        if show:
            say(f"\n$ kubectl {' '.join(shlex.quote(a) for a in args)}")
        done = subprocess.run(["kubectl", *args], env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        if show and done.stdout.strip():
            say(done.stdout.rstrip())
        return done.stdout

    def write_manifests(self) -> dict[str, Path]:
        files = {
            "crds": self.state_dir / "crds.yaml",
            "order": self.state_dir / "order.yaml",
            "fulfillment": self.state_dir / "fulfillment.yaml",
        }
        files["crds"].write_text(yaml.safe_dump_all(manifests.crds(), sort_keys=False))
        files["order"].write_text(yaml.safe_dump(manifests.example_order(), sort_keys=False))
        files["fulfillment"].write_text(yaml.safe_dump(manifests.example_fulfillment(), sort_keys=False))
        return files

    def start_controllers(self) -> None:
        self.controllers = Controllers(self.env, self.state_dir / "logs")
        for which in ("fulfillment", "order"):
            self.controllers.start(which, "--namespace", "default")
        say(f"Started the order and fulfillment controllers as two processes (logs in {self.controllers.log_dir}).")

    def stop_controllers(self) -> None:
        if self.controllers is not None:
            self.controllers.stop_all()

    def read(self) -> tuple[dict[str, Any], dict[str, Any]]:
        order = json.loads(self.kubectl("get", "order", ORDER, "-o", "json"))
        found = self.kubectl("get", "fulfillments", "-o", "json")
        items = [f for f in json.loads(found)["items"] if f["metadata"]["name"] == ORDER]
        return order, (items[0] if items else {})

    def show(self, until: Callable[[dict[str, Any], dict[str, Any]], bool], timeout: float = 120) -> None:
        """Redraw one progress line until ``until(order, fulfillment)`` holds."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            order, ful = self.read()
            line = progress_line(order, ful)
            if line != last:
                if self.tty:
                    sys.stdout.write("\r\033[K" + line)
                    sys.stdout.flush()
                else:
                    say(line)
                last = line
            if until(order, ful):
                if self.tty:
                    sys.stdout.write("\n")
                return
            time.sleep(0.2)
        raise RuntimeError(f"timed out; last seen: {last}")


def progress_line(order: dict[str, Any], ful: dict[str, Any]) -> str:
    ostatus = order.get("status") or {}
    fstatus = ful.get("status") or {}
    percent = (fstatus.get("progress") or {}).get("percent", 0)
    filled = BAR * percent // 100
    paused = " (paused)" if fstatus.get("paused") else ""
    return (
        f"Order {ORDER}: {ostatus.get('phase', '-'):<10} "
        f"Fulfillment: {fstatus.get('phase', '-'):<9}{paused:<9} "
        f"[{'#' * filled}{'.' * (BAR - filled)}] {percent:>3}%"
    )


@contextlib.contextmanager
def _cluster(state_dir: Path, keep: bool) -> Iterator[controlplane.ControlPlane]:
    if keep:
        plane = controlplane.up(state_dir, state_dir / "kubeconfig", log=say)
    else:
        plane = controlplane.ControlPlane.start(state_dir.resolve() / "kubeconfig", log=say, die_with_parent=True)
    try:
        yield plane
    finally:
        if not keep:
            plane.stop()


def main(keep: bool, state_dir: Path) -> int:
    for name in tools.TOOLS:
        tools.ensure(name, say)
    say("Starting a local control plane (etcd + kube-apiserver) on 127.0.0.1 ...")
    demo = Demo(state_dir)
    try:
        with _cluster(state_dir, keep) as plane:
            demo.env["KUBECONFIG"] = str(plane.kubeconfig)
            path_dirs = controlplane.tool_path_entries()
            demo.env["PATH"] = os.pathsep.join([*path_dirs, demo.env.get("PATH", "")])
            say(f"API server: {plane.server}")
            # The same objects as crds/ and examples/, from the models: no checkout needed.
            files = demo.write_manifests()
            demo.kubectl("apply", "-f", str(files["crds"]), show=True)
            demo.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
            demo.start_controllers()
            demo.kubectl("apply", "-f", str(files["order"]), show=True)
            say("")
            demo.show(lambda o, f: (f.get("status") or {}).get("phase") == "Picking")
            demo.kubectl("patch", "fulfillment", ORDER, "--type", "merge", "-p", '{"spec":{"paused":true}}', show=True)
            demo.show(lambda o, f: bool((f.get("status") or {}).get("paused")))
            say("Paused: the step's clock is stopped in status; nothing moves for 3 seconds ...")
            time.sleep(3)
            demo.kubectl("patch", "fulfillment", ORDER, "--type", "merge", "-p", '{"spec":{"paused":false}}', show=True)
            demo.show(lambda o, f: (o.get("status") or {}).get("phase") == "Completed")
            demo.kubectl("wait", "--for=condition=Ready", f"order/{ORDER}", "--timeout=60s", show=True)
            demo.kubectl("get", "orderflow", "-o", "wide", show=True)
            say("")
            if keep:
                say("Left running. Explore it:")
                say(f'  eval "$(orderflow cluster env --state-dir {state_dir})"')
                say("  kubectl get orderflow -o wide")
                say(f"  kubectl describe order {ORDER}")
                say("  kubectl get events --sort-by=.lastTimestamp")
                say(f"  kubectl apply -f {files['fulfillment']}")
                pids = " ".join(str(process.pid) for process in demo.controllers.started) if demo.controllers else ""
                say(f"Stop it: kill {pids} && orderflow cluster down --state-dir {state_dir}")
            else:
                say("Done. Stopping the controllers and the control plane.")
    except (RuntimeError, controlplane.ControlPlaneError, tools.ToolError) as exc:  # ControllerError is one
        say(f"\ndemo failed: {exc}")
        return 1
    finally:
        if not keep:
            demo.stop_controllers()
    return 0
