"""The ``orderflow`` command: the local control plane, the CRDs, the controllers and the demo."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_STATE_DIR = Path(".orderflow")


def _cluster(args: argparse.Namespace) -> int:
    from orderflow.cluster import controlplane, tools

    state_dir: Path = args.state_dir
    kubeconfig: Path = args.kubeconfig or state_dir / "kubeconfig"
    if args.action == "up":
        try:
            started = controlplane.up(state_dir, kubeconfig, log=lambda line: print(line, file=sys.stderr, flush=True))
        except (controlplane.ControlPlaneError, tools.ToolError) as exc:
            print(f"orderflow cluster up: {exc}", file=sys.stderr)
            return 1
        print(f"Control plane serving at {started.server}")
        print(f"Kubeconfig: {started.kubeconfig}")
        print(f'Use it:    eval "$(orderflow cluster env --state-dir {state_dir})" && kubectl get ns')
        return 0
    if args.action == "down":
        stopped = controlplane.down(state_dir)
        print("Control plane stopped and its data removed." if stopped else "No control plane was running.")
        return 0
    plane = controlplane.load(state_dir)
    if args.action == "status":
        if plane is None:
            print("No control plane recorded in", state_dir)
            return 1
        for proc in plane.processes():
            print(f"{proc.name:15} pid {proc.pid:<8} {'running' if proc.alive() else 'NOT RUNNING'}  log {proc.log}")
        print(f"{'server':15} {plane.server}")
        print(f"{'kubeconfig':15} {plane.kubeconfig}")
        return 0 if all(p.alive() for p in plane.processes()) else 1
    # env
    if plane is None:
        print(f"# no control plane recorded in {state_dir}; run `orderflow cluster up` first", file=sys.stderr)
        return 1
    print(f"export KUBECONFIG={plane.kubeconfig}")
    entries = controlplane.tool_path_entries()
    if entries:
        print(f"export PATH={':'.join(entries)}:$PATH")
    return 0


def _crds(args: argparse.Namespace) -> int:
    from orderflow.api import crdgen

    if args.check:
        out_of_date = crdgen.stale(args.output, args.charts)
        if out_of_date:
            print(
                f"generated files out of date, run `orderflow crds`: {', '.join(map(str, out_of_date))}",
                file=sys.stderr,
            )
            return 1
        return 0
    for path in crdgen.write(args.output, args.charts):
        print(f"wrote {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from orderflow.kube import Kube
    from orderflow.runner import RunOptions, run

    options = RunOptions(
        namespaces=args.namespace,
        log_format=args.log_format,
        liveness=args.liveness,
        peering=args.peering,
        metrics_port=args.metrics_port,
        verbose=args.verbose,
    )
    if args.controller == "fulfillment":
        from orderflow.fulfillment.controller import FulfillmentController, build_registry
        from orderflow.fulfillment.workflow import StepTimes

        seconds = args.step_seconds
        fc = FulfillmentController(Kube.from_env(), StepTimes(picking=seconds, packing=seconds), args.workers)
        run(build_registry(fc), options)
    else:
        from orderflow.order.controller import OrderController
        from orderflow.order.controller import build_registry as build_order_registry

        oc = OrderController(Kube.from_env(), ack_timeout=args.ack_timeout, workers=args.workers)
        run(build_order_registry(oc), options)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from orderflow.demo import main as demo_main

    return demo_main(keep=args.keep, state_dir=args.state_dir)


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="orderflow", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    cluster = sub.add_parser("cluster", help="a local control plane (etcd + kube-apiserver) on 127.0.0.1")
    cluster.add_argument("action", choices=["up", "down", "status", "env"])
    cluster.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="default: .orderflow")
    cluster.add_argument("--kubeconfig", type=Path, help="default: <state-dir>/kubeconfig")
    cluster.set_defaults(func=_cluster)

    crds = sub.add_parser("crds", help="write the CRDs generated from the API models")
    crds.add_argument("--output", type=Path, default=Path("crds"))
    crds.add_argument("--charts", type=Path, default=Path("charts"), help="also write each chart's CRD template")
    crds.add_argument("--check", action="store_true", help="fail if the files differ from the models")
    crds.set_defaults(func=_crds)

    runp = sub.add_parser("run", help="run one controller (uses KUBECONFIG, or in-cluster credentials)")
    runp.add_argument("controller", choices=["order", "fulfillment"])
    runp.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=env_list("ORDERFLOW_NAMESPACES"),
        help="watch this namespace (repeatable; env ORDERFLOW_NAMESPACES, comma-separated); default: all",
    )
    runp.add_argument("--log-format", choices=["text", "json"], default=os.environ.get("ORDERFLOW_LOG_FORMAT", "text"))
    runp.add_argument(
        "--liveness",
        default=os.environ.get("ORDERFLOW_LIVENESS") or None,
        help="serve Kopf's health endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    runp.add_argument(
        "--peering",
        default=os.environ.get("ORDERFLOW_PEERING") or None,
        help="Kopf peering name (needs the KopfPeering CRDs); default: standalone",
    )
    runp.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("ORDERFLOW_METRICS_PORT", "0")),
        help="serve Prometheus metrics on this port (0: off)",
    )
    runp.add_argument("--workers", type=int, default=int(os.environ.get("ORDERFLOW_WORKERS", "4")))
    runp.add_argument(
        "--step-seconds",
        type=float,
        default=_env_float("ORDERFLOW_STEP_SECONDS", 5.0),
        help="fulfillment: default duration of each step (env ORDERFLOW_STEP_SECONDS)",
    )
    runp.add_argument(
        "--ack-timeout",
        type=float,
        default=_env_float("ORDERFLOW_ACK_TIMEOUT", 30.0),
        help="order: seconds before an unacknowledged signal is reported (env ORDERFLOW_ACK_TIMEOUT)",
    )
    runp.add_argument("-v", "--verbose", action="store_true")
    runp.set_defaults(func=_run)

    demo = sub.add_parser("demo", help="the whole flow on a local control plane, then clean up")
    demo.add_argument("--keep", action="store_true", help="leave everything running, with commands to explore")
    demo.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR / "demo")
    demo.set_defaults(func=_demo)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
