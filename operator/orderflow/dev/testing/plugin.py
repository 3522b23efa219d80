"""pytest fixtures for testing against the real control plane, and the controllers as processes.

- ``control_plane`` (session): etcd + kube-apiserver started once, stopped at the end (also on
  Ctrl-C; the processes die with the test run even when it is killed). Set
  ``ORDERFLOW_TEST_KUBECONFIG`` to run against an existing cluster (kind) instead.
- ``kube_env``: the environment for subprocesses (KUBECONFIG, and PATH with kubectl and helm).
- ``namespace``: a fresh namespace per test.
- ``kubectl``, ``api``, ``crs``: ways to talk to the API server as a user would.
- ``controllers``: starts ``orderflow run order|fulfillment`` as separate processes (with
  ``orderflow.dev.harness``, as the demo and the benchmark do), stops them after the test and shows
  their logs when it failed.
- ``wait_for``: poll a condition with a deadline; on timeout, report the last state seen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import yaml

from orderflow.api.common import GROUP, VERSION
from orderflow.dev import checkout, manifests
from orderflow.dev.cluster import tools
from orderflow.dev.cluster.controlplane import ControlPlane
from orderflow.dev.harness import ControllerProcess as ControllerProcess
from orderflow.dev.harness import Controllers as Controllers

T = TypeVar("T")
REPO = checkout() or Path.cwd()  # for tests that read the project's own files (charts, examples)


# -- waiting ----------------------------------------------------------------------------------


class WaitTimeout(AssertionError):
    pass


def wait_for(
    probe: Callable[[], T],
    until: Callable[[T], bool] = bool,
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Call ``probe`` until ``until(result)`` holds; fail after ``timeout`` with the last result."""
    deadline = time.monotonic() + timeout
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            result = probe()
            last, error = result, None
            if until(result):
                return result
        except Exception as exc:  # the last error is part of the report
            error = exc
        if time.monotonic() >= deadline:
            shown = json.dumps(last, indent=1, default=str)[:4000] if last is not None else repr(last)
            raise WaitTimeout(
                f"timed out after {timeout}s waiting for {what}; last seen: {shown}; last error: {error!r}"
            )
        time.sleep(interval)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    return wait_for


# -- the control plane ------------------------------------------------------------------------


class Cluster:
    """What the tests need to know about the API server they run against."""

    def __init__(self, kubeconfig: Path, plane: ControlPlane | None) -> None:
        self.kubeconfig = kubeconfig
        self.plane = plane  # None when an existing cluster is used

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(kubeconfig or self.kubeconfig)
        dirs = [str(tools.ensure(name).parent) for name in ("kubectl", "helm")]
        env["PATH"] = os.pathsep.join([*dirs, env.get("PATH", "")])
        return env


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    existing = os.environ.get("ORDERFLOW_TEST_KUBECONFIG")
    if existing:
        yield Cluster(Path(existing), None)
        return
    kubeconfig = tmp_path_factory.mktemp("cluster") / "kubeconfig"
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    plane = ControlPlane.start(kubeconfig, log=log, die_with_parent=True)
    try:
        yield Cluster(kubeconfig, plane)
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kube_env(control_plane: Cluster) -> dict[str, str]:
    return control_plane.env()


def token_kubeconfig(admin_kubeconfig: Path, token: str, path: Path, user: str) -> Path:
    """The admin's kubeconfig with its user replaced by a bearer token, e.g. a ServiceAccount's."""
    document = yaml.safe_load(admin_kubeconfig.read_text())
    context_name = document["current-context"]
    context = next(c for c in document["contexts"] if c["name"] == context_name)
    context["context"]["user"] = user
    document["users"] = [{"name": user, "user": {"token": token}}]
    document["contexts"] = [context]
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


def service_account_kubeconfig(
    kubectl: Kubectl, admin_kubeconfig: Path, namespace: str, service_account: str, directory: Path
) -> Path:
    """Log in as a ServiceAccount with a real token from the API server (TokenRequest)."""
    token = kubectl("create", "token", service_account, "-n", namespace, "--duration=2h").stdout.strip()
    return token_kubeconfig(
        admin_kubeconfig, token, directory / f"{namespace}-{service_account}.kubeconfig", service_account
    )


# -- talking to it ----------------------------------------------------------------------------


class Kubectl:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["kubectl", *args], env=self.env, input=input, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)

    def apply(self, manifest: dict[str, Any] | str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        return self("apply", "-f", "-", *args, input=text, check=check)


@pytest.fixture(scope="session")
def kubectl(kube_env: dict[str, str]) -> Kubectl:
    return Kubectl(kube_env)


@pytest.fixture(scope="session")
def api(control_plane: Cluster) -> Iterator[Any]:
    """A kubernetes.client.ApiClient with the admin's credentials."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def crds_installed(kubectl: Kubectl) -> None:
    names = []
    for crd in manifests.crds():  # from the models, so the plugin needs no checkout
        kubectl.apply(crd)
        names.append(f"crd/{crd['metadata']['name']}")
    # Ours by name, not --all: a CRD another test is creating or deleting has no conditions yet
    # (or any more), and kubectl wait fails on it instead of waiting.
    kubectl("wait", "--for=condition=Established", *names, "--timeout=60s")


class CustomResources:
    """get/create/patch orderflow objects with the kubernetes client's CustomObjectsApi."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client

        self.objects = client.CustomObjectsApi(api_client)
        self.namespace = namespace

    def get(self, plural: str, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any], self.objects.get_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)
        )

    def find(self, plural: str, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.get(plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        return cast(
            dict[str, Any], self.objects.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, body)
        )

    def patch(self, plural: str, name: str, patch: dict[str, Any], status: bool = False) -> dict[str, Any]:
        fn = (
            self.objects.patch_namespaced_custom_object_status
            if status
            else self.objects.patch_namespaced_custom_object
        )
        return cast(dict[str, Any], fn(GROUP, VERSION, self.namespace, plural, name, patch))

    def list(self, plural: str) -> list[dict[str, Any]]:
        listed = cast(
            dict[str, Any], self.objects.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)
        )
        return cast(list[dict[str, Any]], listed["items"])


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"t-{request.node.name[:40].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(c for c in name if c.isalnum() or c == "-")
    kubectl("create", "namespace", name)
    yield name
    # Namespaces never finish terminating without a controller-manager; ask, do not wait.
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def crs(api: Any, namespace: str, crds_installed: None) -> CustomResources:
    return CustomResources(api, namespace)


# -- the controllers, as separate processes ---------------------------------------------------
# ControllerProcess and Controllers live in orderflow.dev.harness, which the demo and the benchmark
# share; they are named here too, beside the fixture that hands them out.


@pytest.fixture
def controllers(
    kube_env: dict[str, str], tmp_path: Path, crds_installed: None, request: pytest.FixtureRequest
) -> Iterator[Controllers]:
    running = Controllers(kube_env, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for process in running.started:
                print(f"\n----- {process.which} controller, {process.log} -----\n{process.output()}", file=sys.stderr)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
