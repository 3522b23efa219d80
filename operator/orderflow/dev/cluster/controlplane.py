"""A real Kubernetes control plane on 127.0.0.1: etcd + kube-apiserver, started as envtest does.

There is no kubelet, scheduler or controller-manager: no Pod runs, ownerReferences are not
garbage-collected and namespaces never finish terminating. It is the API server itself, with its
schema validation, CEL rules, RBAC, status subresource, conflicts and watches, which is what the
controllers and their tests depend on.

Two ways to use it:
- ``orderflow cluster up`` starts it detached and records what runs in ``<state-dir>/cluster.json``
  so that ``down`` and ``status`` find it again;
- the pytest plugin starts it for a session and stops it at the end, with ``die_with_parent`` so a
  killed test run leaves nothing behind.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import dataclasses
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from orderflow.dev.cluster import pki as pki_mod
from orderflow.dev.cluster import tools

READY_TIMEOUT = 90.0  # a cold kube-apiserver on 2 busy cores needs more than envtest's 20 s
STOP_GRACE = 10.0
STATE_FILE = "cluster.json"


class ControlPlaneError(RuntimeError):
    """The control plane could not start or be found; the message says why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclasses.dataclass
class Process:
    name: str
    pid: int
    log: Path
    popen: subprocess.Popen[bytes] | None = dataclasses.field(default=None, repr=False, compare=False)

    def alive(self) -> bool:
        if self.popen is not None:  # ours: exact, and no race with fork-then-exec
            return self.popen.poll() is None
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        # A recycled pid running something else is not ours.
        return self.name.encode() in cmdline and Path(f"/proc/{self.pid}/stat").read_text().split()[2] != "Z"

    def stop(self, grace: float = STOP_GRACE) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not self.alive():
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait()

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclasses.dataclass
class ControlPlane:
    """One etcd and one kube-apiserver, their data and certificates in one temporary directory."""

    workdir: Path
    kubeconfig: Path
    etcd_url: str = ""
    server: str = ""
    etcd: Process | None = None
    apiserver: Process | None = None
    binaries: dict[str, str] = dataclasses.field(default_factory=dict)
    apiserver_port: int = 0
    _pki: pki_mod.Pki = dataclasses.field(init=False, repr=False)

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        kubeconfig: Path,
        log: Callable[[str], None] = print,
        die_with_parent: bool = False,
    ) -> ControlPlane:
        """Start etcd and kube-apiserver and wait until they serve; on failure, stop both."""
        binaries = {name: str(tools.ensure(name, log)) for name in ("etcd", "kube-apiserver")}
        workdir = Path(tempfile.mkdtemp(prefix="orderflow-cp-"))
        plane = cls(workdir=workdir, kubeconfig=kubeconfig, binaries=binaries)
        try:
            plane._start_etcd(die_with_parent)
            plane._pki = pki_mod.generate(workdir / "pki")
            plane.apiserver_port = free_port()
            plane.start_apiserver(die_with_parent)
            plane._write_kubeconfig()
        except BaseException:
            plane.stop()
            raise
        return plane

    def _start_etcd(self, die_with_parent: bool) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        self.etcd = self._spawn(
            "etcd",
            [
                self.binaries["etcd"],
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            die_with_parent,
        )
        self._wait("etcd", self.etcd, lambda: _http_ok(f"{self.etcd_url}/health"))

    def start_apiserver(self, die_with_parent: bool = False) -> None:
        """Start (or restart, with etcd kept) the API server on its port."""
        p = self._pki
        self.server = f"https://127.0.0.1:{self.apiserver_port}"
        self.apiserver = self._spawn(
            "kube-apiserver",
            [
                self.binaries["kube-apiserver"],
                f"--etcd-servers={self.etcd_url}",
                f"--secure-port={self.apiserver_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={p.serving_cert}",
                f"--tls-private-key-file={p.serving_key}",
                f"--client-ca-file={p.client_ca}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                f"--service-account-issuer={self.server}/",
                f"--service-account-key-file={p.sa_public}",
                f"--service-account-signing-key-file={p.sa_private}",
                "--v=1",
            ],
            die_with_parent,
        )
        context = self._ssl_context()
        self._wait(
            "kube-apiserver",
            self.apiserver,
            lambda: (
                _http_ok(f"{self.server}/healthz", context)
                and _http_ok(f"{self.server}/api/v1/namespaces/default", context)
            ),
        )

    def stop_apiserver(self) -> None:
        if self.apiserver:
            self.apiserver.stop()

    def stop(self) -> None:
        """Stop both processes (SIGTERM, then SIGKILL) and remove all their data."""
        for proc in (self.apiserver, self.etcd):
            if proc:
                proc.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], die_with_parent: bool) -> Process:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log_file:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as a whole
                preexec_fn=_die_with_parent if die_with_parent else None,
            )
        return Process(name=name, pid=popen.pid, log=log_path, popen=popen)

    def _wait(self, name: str, proc: Process, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if not proc.alive():
                raise ControlPlaneError(f"{name} exited during start-up:\n{proc.tail()}")
            if ready():
                return
            time.sleep(0.1)
        raise ControlPlaneError(f"{name} was not ready within {READY_TIMEOUT:.0f}s:\n{proc.tail()}")

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self._pki.serving_ca))
        context.load_cert_chain(str(self._pki.admin_cert), str(self._pki.admin_key))
        return context

    def _write_kubeconfig(self) -> None:
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(
            yaml.safe_dump(
                kubeconfig_document(
                    self.server,
                    ca=self._pki.serving_ca.read_bytes(),
                    user={
                        "client-certificate-data": _b64(self._pki.admin_cert.read_bytes()),
                        "client-key-data": _b64(self._pki.admin_key.read_bytes()),
                    },
                    user_name="orderflow-admin",
                )
            )
        )
        self.kubeconfig.chmod(0o600)

    # -- persisted state for the detached CLI ------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "workdir": str(self.workdir),
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "etcd_url": self.etcd_url,
            "apiserver_port": self.apiserver_port,
            "binaries": self.binaries,
            "processes": [{"name": p.name, "pid": p.pid, "log": str(p.log)} for p in self.processes()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ControlPlane:
        procs = {p["name"]: Process(p["name"], p["pid"], Path(p["log"])) for p in state["processes"]}
        plane = cls(
            workdir=Path(state["workdir"]),
            kubeconfig=Path(state["kubeconfig"]),
            etcd_url=state["etcd_url"],
            server=state["server"],
            etcd=procs.get("etcd"),
            apiserver=procs.get("kube-apiserver"),
            binaries=state["binaries"],
            apiserver_port=state["apiserver_port"],
        )
        return plane

    def processes(self) -> Iterator[Process]:
        yield from (p for p in (self.etcd, self.apiserver) if p)


def kubeconfig_document(server: str, ca: bytes, user: dict[str, str], user_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "orderflow", "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": "orderflow", "context": {"cluster": "orderflow", "user": user_name}}],
        "current-context": "orderflow",
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


# ---------------------------------------------------------------------------------------------
# The detached control plane of `orderflow cluster up|down|status|env`


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def load(state_dir: Path) -> ControlPlane | None:
    path = state_path(state_dir)
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    if state.get("kind") == "nodes":  # written by `cluster up --nodes`, which kind replaced
        raise ControlPlaneError(
            f"{path} records a cluster with a node, which this orderflow no longer runs: stop its "
            "processes (its supervisor, kubelet, containerd) and remove the file; Pods run on kind (docs/kind.md)"
        )
    return ControlPlane.from_state(state)


def up(state_dir: Path, kubeconfig: Path, log: Callable[[str], None] = print) -> ControlPlane:
    existing = load(state_dir)
    if existing and all(p.alive() for p in existing.processes()):
        log(f"Already running: {existing.server}")
        return existing
    if existing:  # half dead: clean it up before starting afresh
        existing.stop()
        state_path(state_dir).unlink(missing_ok=True)
    for name in ("kubectl", "helm"):
        tools.ensure(name, log)
    plane = ControlPlane.start(kubeconfig.resolve(), log)
    state_dir.mkdir(parents=True, exist_ok=True)
    state_path(state_dir).write_text(json.dumps(plane.to_state(), indent=2))
    return plane


def down(state_dir: Path) -> bool:
    """Stop the control plane recorded in ``state_dir`` and remove its data; False if none was."""
    plane = load(state_dir)
    if plane is None:
        return False
    plane.stop()
    state_path(state_dir).unlink(missing_ok=True)
    return True


def tool_path_entries() -> list[str]:
    entries: list[str] = []
    for name in ("kubectl", "helm"):
        found = tools.locate(name)
        if found and str(found.parent) not in entries:
            entries.append(str(found.parent))
    return entries
