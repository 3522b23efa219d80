"""The dev wing's subcommands of ``orderflow``: ``cluster``, ``image``, ``kind`` and ``demo``.

The orderflow-dev distribution registers each ``add_*`` function under the ``orderflow.commands``
entry points; ``orderflow.cli`` calls them with its subparsers, so these commands exist exactly
when the dev wing is installed (``pip install . ./packaging/orderflow-dev``) and the runtime never
imports them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_STATE_DIR = Path(".orderflow")


def _cluster(args: argparse.Namespace) -> int:
    from orderflow.dev.cluster import controlplane, tools

    try:
        return _cluster_action(args)
    except (controlplane.ControlPlaneError, tools.ToolError) as exc:
        print(f"orderflow cluster {args.action}: {exc}", file=sys.stderr)
        return 1


def _cluster_action(args: argparse.Namespace) -> int:
    from orderflow.dev.cluster import controlplane

    state_dir: Path = args.state_dir
    kubeconfig: Path = args.kubeconfig or state_dir / "kubeconfig"
    if args.action == "up":
        try:
            log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
            started = controlplane.up(state_dir, kubeconfig, log=log)
        except RuntimeError as exc:  # ControlPlaneError and ToolError too
            print(f"orderflow cluster up: {exc}", file=sys.stderr)
            return 1
        print(f"Control plane serving at {started.server}")
        print(f"Kubeconfig: {started.kubeconfig}")
        print(f'Use it:    eval "$(orderflow cluster env --state-dir {state_dir})" && kubectl get ns')
        return 0
    if args.action == "down":
        stopped = controlplane.down(state_dir)
        print("Cluster stopped and its data removed." if stopped else "No cluster was running.")
        return 0
    plane = controlplane.load(state_dir)
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


def _demo(args: argparse.Namespace) -> int:
    from orderflow.dev.demo import main as demo_main

    return demo_main(keep=args.keep, state_dir=args.state_dir)


def _image(args: argparse.Namespace) -> int:
    from orderflow.dev.cluster import image

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        archive = image.build(args.tag, args.context, log)
    except image.ImageError as exc:
        print(f"orderflow image {args.action}: {exc}", file=sys.stderr)
        return 1
    print(archive)
    return 0


def _kind(args: argparse.Namespace) -> int:
    from orderflow.dev.cluster import kind, tools

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.action == "env":
        for key, value in kind.podman_env().items():
            print(f"export {key}={value}")
        kind_binary = tools.locate("kind")
        if kind_binary is not None:
            print(f"export PATH={kind_binary.parent}:$PATH")
        # Not a bare `kind create cluster`: kind would make its network with NAT, and the node could
        # reach beyond this machine; `up` makes it internal first.
        print("# orderflow kind up   (then export KUBECONFIG=.orderflow/kind-kubeconfig; orderflow kind down after)")
        return 0
    try:
        if args.action == "down":
            problems = kind.down(args.name, log)
            for problem in problems:
                print(f"orderflow kind down: {problem}", file=sys.stderr)
            return 1 if problems else 0
        if args.action == "up":
            kind.up(args.config, args.kubeconfig, log)
            print(f"Kubeconfig: {args.kubeconfig}")
            return 0
        kind_binary = tools.ensure("kind", log)
        name = kind.build_node_image(log, force=args.force)
    except (kind.KindError, tools.ToolError) as exc:
        print(f"orderflow kind {args.action}: {exc}", file=sys.stderr)
        return 1
    print(name)
    print(f"kind: {kind_binary}", file=sys.stderr)
    return 0


def add_kind(commands: Any) -> None:
    """``orderflow kind node-image|env``."""
    kindp = commands.add_parser("kind", help="a kind node image made here with no registry, for kind with podman")
    kindp.add_argument(
        "action",
        choices=["node-image", "up", "down", "env"],
        help="node-image: build it (and the kind CLI) into the host's container storage; "
        "up: kind create cluster on it; down: kind delete cluster, then undo what podman left on the host; "
        "env: the exports kind create cluster needs here",
    )
    kindp.add_argument("--force", action="store_true", help="node-image: rebuild even when up to date")
    kindp.add_argument("--config", type=Path, default=Path("kind-config.yaml"), help="up: default kind-config.yaml")
    kindp.add_argument(
        "--kubeconfig",
        type=Path,
        default=DEFAULT_STATE_DIR / "kind-kubeconfig",
        help="up: default .orderflow/kind-kubeconfig",
    )
    kindp.add_argument("--name", default="orderflow", help="down: the cluster's name (kind-config.yaml's)")
    kindp.set_defaults(func=_kind)


def add_cluster(commands: Any) -> None:
    """``orderflow cluster up|down|status|env``."""
    cluster = commands.add_parser("cluster", help="a local control plane (etcd + kube-apiserver) on 127.0.0.1")
    cluster.add_argument("action", choices=["up", "down", "status", "env"])
    cluster.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="default: .orderflow")
    cluster.add_argument("--kubeconfig", type=Path, help="default: <state-dir>/kubeconfig")
    cluster.set_defaults(func=_cluster)


def add_demo(commands: Any) -> None:
    """``orderflow demo``."""
    demo = commands.add_parser("demo", help="the whole flow on a local control plane, then clean up")
    demo.add_argument("--keep", action="store_true", help="leave everything running, with commands to explore")
    demo.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR / "demo")
    demo.set_defaults(func=_demo)


def add_image(commands: Any) -> None:
    """``orderflow image build``."""
    imagep = commands.add_parser("image", help="build the controllers' image with buildah, no registry (needs root)")
    imagep.add_argument("action", choices=["build"])
    imagep.add_argument("--tag", default="dev", help="build localhost/orderflow:<tag> (default: dev)")
    imagep.add_argument("--context", type=Path, help="checkout holding the Dockerfile; default: this package's")
    imagep.set_defaults(func=_image)
