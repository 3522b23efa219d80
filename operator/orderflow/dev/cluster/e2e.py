"""``make e2e``: the charts installed as the README tells users, run as Pods by a local node, and the
e2e tests run against them in the installed mode the kind workflow uses.

Steps, each timed: ``cluster up --nodes``; build the image from the project's Dockerfile and load it
into the node's containerd; ``helm install`` each chart alone, in its own namespace; wait for both
Deployments to be Available; ``pytest tests/e2e`` with ``ORDERFLOW_E2E_INSTALLED`` naming where
each chart runs; ``cluster down`` (also when a step fails, unless ``--keep``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orderflow.dev.cluster import image, kind, node, podnode, state, tools
from orderflow.dev.cluster.node import NodeCluster

REPO = Path.cwd()
IMAGE_REPOSITORY = "localhost/orderflow"
# As the README installs them: each chart alone, in its own namespace, watching every namespace.
RELEASES = {
    "fulfillment": ("fulfillment-controller", "fulfillment-system"),
    "order": ("order-controller", "order-system"),
}
# On kind, as .github/workflows/e2e.yaml installs them: both in one namespace, the fulfillment
# controller's steps at 1 s.
WORKFLOW_NAMESPACE = "orderflow-system"
WORKFLOW_VALUES = {"fulfillment": ["--set", "stepSeconds=1"], "order": []}


def say(line: str) -> None:
    print(f"== {line}", file=sys.stderr, flush=True)


@contextmanager
def step(what: str, timings: dict[str, float]) -> Iterator[None]:
    say(what)
    started = time.monotonic()
    yield
    timings[what] = time.monotonic() - started
    say(f"{what}: {timings[what]:.1f}s")


def installed_env(kubeconfig: Path, state_dir: Path, tag: str, installed: str = "") -> dict[str, str]:
    env = dict(os.environ)
    env["KUBECONFIG"] = env["ORDERFLOW_TEST_KUBECONFIG"] = str(kubeconfig)
    env["ORDERFLOW_E2E_INSTALLED"] = installed or ",".join(f"{name}={ns}" for name, (_, ns) in RELEASES.items())
    env[podnode.NODE_STATE_ENV] = str(state_dir.resolve())
    env["ORDERFLOW_E2E_IMAGE"] = f"{IMAGE_REPOSITORY}:{tag}"
    dirs = [str(tools.ensure(name).parent) for name in ("kubectl", "helm")]
    env["PATH"] = os.pathsep.join([*dirs, env.get("PATH", "")])
    return env


def helm_install_args(name: str, tag: str) -> list[str]:
    chart, namespace = RELEASES[name]
    return [
        "helm", "upgrade", "--install", name, str(REPO / "charts" / chart), "-n", namespace, "--create-namespace",
        "--set", f"image.repository={IMAGE_REPOSITORY}", "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never", "--wait", "--timeout", "5m",
    ]  # fmt: skip


def workflow_install_args(name: str, tag: str) -> list[str]:
    """The workflow's ``helm install`` of chart ``name`` (its step "Install both charts, each on its own")."""
    chart, _ = RELEASES[name]
    return [
        "helm", "install", name, str(REPO / "charts" / chart), "--namespace", WORKFLOW_NAMESPACE, "--create-namespace",
        "--wait", "--timeout", "5m", "--set", f"image.repository={IMAGE_REPOSITORY}", "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never", *WORKFLOW_VALUES[name],
    ]  # fmt: skip


def run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd)}` failed with exit code {done.returncode}")


def main_kind(args: argparse.Namespace) -> int:
    """The same steps on a kind cluster (``--kind``): ``orderflow kind up`` from kind-config.yaml,
    the image loaded with ``kind load image-archive``, both charts installed as the workflow
    installs them, and ``orderflow kind down``, which must leave the host as ``up`` found it.
    The tests reach into the node container through ``podnode``."""
    timings: dict[str, float] = {}
    state_dir: Path = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = (state_dir / "kind-kubeconfig").resolve()
    config = REPO / "kind-config.yaml"
    name = kind.cluster_name(config)
    code = 1
    before: dict[str, object] | None = None
    try:
        with step("kind up", timings):
            before = kind.record_host_state()
            kind.up(config, kubeconfig, log=say)
        with step("image build", timings):
            archive = image.build(args.tag, log=say)
        with step("kind load image-archive", timings):
            load = [str(tools.ensure("kind")), "load", "image-archive", str(archive), "--name", name]
            run(load, {**os.environ, **kind.podman_env()})
        env = installed_env(kubeconfig, state_dir, args.tag, installed=WORKFLOW_NAMESPACE)
        del env[podnode.NODE_STATE_ENV]  # the local node's cluster.json: no such thing on kind
        env[podnode.KIND_ENV] = name  # its node container is on this machine: tests/e2e reaches into it
        with step("helm install both charts as the workflow does, Deployments Available", timings):
            for release in RELEASES:
                run(workflow_install_args(release, args.tag), env)
        with step("pytest tests/e2e against the Pods", timings):
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "tests/e2e", *args.pytest_args], env=env, check=False
            )
            code = done.returncode
    finally:
        if not args.keep:
            with step("kind down", timings):
                problems = kind.down(name, log=say)
            left = [*problems, *(kind.leftovers(before) if before is not None else [])]
            if left:
                say(f"kind down left behind: {', '.join(left)}")
                code = code or 1
        say("timings: " + ", ".join(f"{what} {seconds:.0f}s" for what, seconds in timings.items()))
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orderflow.dev.cluster.e2e", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path(".orderflow/e2e"))
    parser.add_argument("--tag", default="e2e")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    parser.add_argument("--kind", action="store_true", help="on a kind cluster (podman) instead of the local node")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    # A SIGTERM (CI's timeout, make interrupted) unwinds like an error: the cluster goes down.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.kind:
        return main_kind(args)
    timings: dict[str, float] = {}
    state_dir: Path = args.state_dir
    kubeconfig = (state_dir / "kubeconfig").resolve()
    code = 1
    cluster: NodeCluster | None = None
    try:
        with step("cluster up --nodes", timings):
            started = state.up(state_dir, kubeconfig, nodes=True, log=say)
            assert isinstance(started, NodeCluster)
            cluster = started
        with step("image build", timings):
            archive = image.build(args.tag, log=say)
        with step("image load", timings):
            image.load(archive, started.layout.containerd_socket, Path(started.ctr))
        env = installed_env(kubeconfig, state_dir, args.tag)
        with step("helm install both charts, Deployments Available", timings):
            for name in RELEASES:
                run(helm_install_args(name, args.tag), env)
        with step("pytest tests/e2e against the Pods", timings):
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "tests/e2e", *args.pytest_args], env=env, check=False
            )
            code = done.returncode
    finally:
        if not args.keep:
            with step("cluster down", timings):
                state.down(state_dir)
            left = node.leftovers(cluster.layout) if cluster is not None else []
            if left:  # down must leave nothing behind: no process, mount, namespace, cgroup or state
                say(f"cluster down left behind: {', '.join(left)}")
                code = code or 1
        say("timings: " + ", ".join(f"{what} {seconds:.0f}s" for what, seconds in timings.items()))
    return code


if __name__ == "__main__":
    sys.exit(main())
