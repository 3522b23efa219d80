"""``make e2e``: the steps of ``.github/workflows/e2e.yaml`` on a kind cluster, with podman as kind's
provider (docs/kind.md), and the e2e tests run against the charts' Deployments in installed mode.

Steps, each timed: ``orderflow kind up`` (``kind create cluster --config kind-config.yaml`` on the
node image made here); build the image from the project's Dockerfile and ``kind load
image-archive`` it; ``helm install`` each chart alone, in its own namespace, as the README and the
workflow do; ``pytest tests/e2e`` with ``ORDERFLOW_E2E_INSTALLED`` naming where each chart runs and
``ORDERFLOW_E2E_KIND`` naming the cluster, whose node container the Pod tests reach into
(``podnode``); ``orderflow kind down`` (also when a step fails, unless ``--keep``), which must leave
the host as ``up`` found it.
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

from orderflow.dev.cluster import image, kind, podnode, tools

REPO = Path.cwd()
IMAGE_REPOSITORY = "localhost/orderflow"
# As the README and the workflow install them: each chart alone, in its own namespace, watching
# every namespace; the workflow sets the fulfillment controller's steps to 1 s.
RELEASES = {
    "fulfillment": ("fulfillment-controller", "fulfillment-system"),
    "order": ("order-controller", "order-system"),
}
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


def installed() -> str:
    """``ORDERFLOW_E2E_INSTALLED``: where each chart runs, ``fulfillment=<ns>,order=<ns>``."""
    return ",".join(f"{name}={namespace}" for name, (_, namespace) in RELEASES.items())


def installed_env(kubeconfig: Path, cluster: str, tag: str) -> dict[str, str]:
    env = dict(os.environ)
    env["KUBECONFIG"] = env["ORDERFLOW_TEST_KUBECONFIG"] = str(kubeconfig)
    env["ORDERFLOW_E2E_INSTALLED"] = installed()
    env[podnode.KIND_ENV] = cluster  # its node container is on this machine: tests/e2e reaches into it
    env["ORDERFLOW_E2E_IMAGE"] = f"{IMAGE_REPOSITORY}:{tag}"
    dirs = [str(tools.ensure(name).parent) for name in ("kubectl", "helm")]
    env["PATH"] = os.pathsep.join([*dirs, env.get("PATH", "")])
    return env


def install_args(name: str, tag: str) -> list[str]:
    """The workflow's ``helm install`` of chart ``name`` (its step "Install both charts")."""
    chart, namespace = RELEASES[name]
    return [
        "helm", "install", name, str(REPO / "charts" / chart), "--namespace", namespace, "--create-namespace",
        "--wait", "--timeout", "5m", "--set", f"image.repository={IMAGE_REPOSITORY}", "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never", *WORKFLOW_VALUES[name],
    ]  # fmt: skip


def run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd)}` failed with exit code {done.returncode}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orderflow.dev.cluster.e2e", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path(".orderflow/e2e"))
    parser.add_argument("--tag", default="e2e")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    # A SIGTERM (CI's timeout, make interrupted) unwinds like an error: the cluster goes down.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
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
        env = installed_env(kubeconfig, name, args.tag)
        with step("helm install both charts as the workflow does, Deployments Available", timings):
            for release in RELEASES:
                run(install_args(release, args.tag), env)
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


if __name__ == "__main__":
    sys.exit(main())
