"""The ``orderflow`` command: the local control plane, the CRDs, the controllers and the demo."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_STATE_DIR = Path(".orderflow")


def _cluster(args: argparse.Namespace) -> int:
    from orderflow.cluster import controlplane, state, tools

    state_dir: Path = args.state_dir
    kubeconfig: Path = args.kubeconfig or state_dir / "kubeconfig"
    if args.action == "up":
        try:
            log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
            started = state.up(state_dir, kubeconfig, nodes=args.nodes, log=log)
        except (controlplane.ControlPlaneError, tools.ToolError, RuntimeError) as exc:
            print(f"orderflow cluster up: {exc}", file=sys.stderr)
            return 1
        print(f"{'Cluster with a node' if args.nodes else 'Control plane'} serving at {started.server}")
        print(f"Kubeconfig: {started.kubeconfig}")
        print(f'Use it:    eval "$(orderflow cluster env --state-dir {state_dir})" && kubectl get ns')
        return 0
    if args.action == "down":
        stopped = state.down(state_dir)
        print("Cluster stopped and its data removed." if stopped else "No cluster was running.")
        return 0
    plane = state.load(state_dir)
    if args.action == "status":
        if plane is None:
            print("No cluster recorded in", state_dir)
            return 1
        processes = list(plane.processes())
        for proc in processes:
            print(f"{proc.name:24} pid {proc.pid:<8} {'running' if proc.alive() else 'NOT RUNNING'}  log {proc.log}")
        print(f"{'server':24} {plane.server}")
        print(f"{'kubeconfig':24} {plane.kubeconfig}")
        return 0 if all(p.alive() for p in processes) else 1
    # env
    if plane is None:
        print(f"# no cluster recorded in {state_dir}; run `orderflow cluster up` first", file=sys.stderr)
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
        readiness=args.readiness,
        peering=args.peering,
        priority=args.priority,
        metrics_port=args.metrics_port,
        metrics_bind_address=args.metrics_bind_address,
        verbose=args.verbose,
    )
    kube = Kube.from_env()
    # Readiness lists the kind the controller owns, not the other one: the order controller runs,
    # and is ready, without the Fulfillment CRD (its Orders then report the missing API).
    if args.controller == "fulfillment":
        from orderflow.api.fulfillment import PLURAL as FULFILLMENTS
        from orderflow.fulfillment.controller import COMPONENT, FulfillmentController, build_registry
        from orderflow.fulfillment.workflow import StepTimes

        seconds = args.step_seconds
        fc = FulfillmentController(kube, StepTimes(picking=seconds, packing=seconds), args.workers, args.ttl)
        options.controller = COMPONENT
        options.settings = {"workers": args.workers, "stepSeconds": seconds}
        run(build_registry(fc), options, kube, FULFILLMENTS)
    else:
        from orderflow.api.order import PLURAL as ORDERS
        from orderflow.order.controller import COMPONENT as ORDER_COMPONENT
        from orderflow.order.controller import OrderController
        from orderflow.order.controller import build_registry as build_order_registry

        oc = OrderController(kube, ack_timeout=args.ack_timeout, workers=args.workers, default_ttl=args.ttl)
        options.controller = ORDER_COMPONENT
        options.settings = {"workers": args.workers, "ackTimeoutSeconds": args.ack_timeout}
        run(build_order_registry(oc), options, kube, ORDERS)
    return 0


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def _http_endpoint(url: str) -> str:
    """An argparse type: reject a bad endpoint URL as a usage error, before anything starts."""
    from orderflow.readiness import parse_endpoint

    try:
        parse_endpoint(url)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return url


def _demo(args: argparse.Namespace) -> int:
    from orderflow.demo import main as demo_main

    return demo_main(keep=args.keep, state_dir=args.state_dir)


def _image(args: argparse.Namespace) -> int:
    from orderflow.cluster import image

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        node = image.node_runtime(args.state_dir) if args.load else None  # before a minutes-long build
        archive = image.build(args.tag, args.context, log)
        if node is not None:
            image.load(archive, *node, log=log)
    except image.ImageError as exc:
        print(f"orderflow image {args.action}: {exc}", file=sys.stderr)
        return 1
    print(archive)
    return 0


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
    cluster.add_argument(
        "--nodes",
        action="store_true",
        help="up: also a node that runs Pods (kubelet, containerd, CoreDNS) in a network namespace; needs root",
    )
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
        help="serve Kopf's health endpoint (liveness), e.g. http://0.0.0.0:8080/healthz",
    )
    runp.add_argument(
        "--readiness",
        type=_http_endpoint,
        default=os.environ.get("ORDERFLOW_READINESS") or None,
        help="serve readiness (200 only while Kopf has started and the API server answers the "
        "controller's own list requests; 503 and why otherwise), e.g. http://0.0.0.0:8081/readyz "
        "(env ORDERFLOW_READINESS)",
    )
    runp.add_argument(
        "--peering",
        default=os.environ.get("ORDERFLOW_PEERING") or None,
        help="Kopf peering name, one per controller, e.g. order-controller-peering (needs Kopf's "
        "peering CRDs; the objects are created); default: standalone",
    )
    runp.add_argument(
        "--priority",
        type=int,
        default=_env_int("ORDERFLOW_PRIORITY"),
        help="Kopf peering priority: the live replica of highest priority works (env ORDERFLOW_PRIORITY); "
        "default: by start time, so the longest-running replica works; 0 or more outranks every default",
    )
    runp.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("ORDERFLOW_METRICS_PORT", "0")),
        help="serve Prometheus metrics on this port (0: off; env ORDERFLOW_METRICS_PORT)",
    )
    runp.add_argument(
        "--metrics-bind-address",
        default=os.environ.get("ORDERFLOW_METRICS_BIND_ADDRESS") or "127.0.0.1",
        help="serve metrics on this address (env ORDERFLOW_METRICS_BIND_ADDRESS); default 127.0.0.1, this "
        "machine only; 0.0.0.0 in a Pod, for the metrics Service",
    )
    runp.add_argument("--workers", type=int, default=int(os.environ.get("ORDERFLOW_WORKERS", "4")))
    runp.add_argument(
        "--ttl-seconds-after-finished",
        dest="ttl",
        type=int,
        default=int(os.environ["ORDERFLOW_TTL_SECONDS_AFTER_FINISHED"])
        if os.environ.get("ORDERFLOW_TTL_SECONDS_AFTER_FINISHED")
        else None,
        help="delete finished objects that set no spec.ttlSecondsAfterFinished this long after they finished "
        "(env ORDERFLOW_TTL_SECONDS_AFTER_FINISHED); default: keep them. The fulfillment controller applies it "
        "only to Fulfillments that serve no Order",
    )
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

    imagep = sub.add_parser("image", help="build the controllers' image with buildah, no registry (needs root)")
    imagep.add_argument("action", choices=["build"])
    imagep.add_argument("--tag", default="dev", help="build localhost/orderflow:<tag> (default: dev)")
    imagep.add_argument("--context", type=Path, help="checkout holding the Dockerfile; default: this package's")
    imagep.add_argument("--load", action="store_true", help="import it into the node's containerd (cluster up --nodes)")
    imagep.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="default: .orderflow")
    imagep.set_defaults(func=_image)

    from orderflow.describe import command as describe_command  # standard library only at import

    describep = sub.add_parser("describe", help="an Order's or Fulfillment's story: one timeline of both objects")
    describe_command.add_arguments(describep)
    describep.set_defaults(func=describe_command.run)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
