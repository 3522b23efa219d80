"""A cluster that runs Pods on this machine: the control plane plus one node, all inside a network
namespace of its own.

``orderflow cluster up --nodes`` (and the pytest plugin's ``--nodes`` mode) start, as root:

- a network namespace ``orderflow-<id>`` holding the node's address (10.99.0.1 on a veth pair with
  both ends inside: this kernel has no ``dummy`` driver), the Pod range (10.244.0.0/24 on ``cni0``)
  and the Service range (10.96.0.0/24, made real by kube-proxy's iptables rules, which live in the
  namespace too). Its default route is a blackhole and nothing masquerades, so no Pod can send a
  packet off the machine;
- one supervisor process inside it (``python -m orderflow.dev.cluster.node supervise``) that replays the
  host's cgroup mounts (``ip netns exec`` remounts ``/sys``), starts etcd, kube-apiserver, CoreDNS,
  kube-controller-manager, kube-scheduler, containerd v2, kubelet and kube-proxy in that order, each
  once the previous one answers, and stops them in reverse. Being one process tree in one private
  mount namespace, every mount kubelet and containerd make is gone when it exits;
- a forwarder from ``127.0.0.1:<free port>`` on the host to the API server inside, so kubectl, helm
  and the tests on the host use an ordinary kubeconfig. The supervisor serves it on a socket opened
  on the host before it entered the namespace: the listening socket stays in the host's network
  namespace, and the connections it makes start inside the node's.

Everything of the cluster lives in its work directory and ``/run/orderflow-<id>``; runc's state,
the CNI network namespaces and containerd's socket are placed there too (not in the host's
defaults), so ``down`` removes one directory tree, one network namespace and the ``kubepods``
cgroups kubelet made, and a test checks that nothing else is left. The facts behind each choice
are commented where it is made: this machine's cgroup v1 (kubelet's ``failCgroupV1``), the
missing ``CAP_SYS_RESOURCE`` (containerd's ``restrict_oom_score_adj``), and cluster DNS for
Kopf's in-cluster login (CoreDNS).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from orderflow.dev.cluster import pki as pki_mod
from orderflow.dev.cluster import tools
from orderflow.dev.cluster.controlplane import Process, _b64, _die_with_parent, _http_ok, free_port, kubeconfig_document

NODE_NAME = "orderflow-node"
NODE_IP = "10.99.0.1"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/24"
KUBERNETES_SERVICE_IP = "10.96.0.1"
SUPERVISOR = "orderflow.dev.cluster.node"  # this module, run in the network namespace as the supervisor
API_PORT = 6443
READY_TIMEOUT = 180.0  # a cold start on 2 busy cores: API server, then node Ready
STOP_TIMEOUT = 90.0  # graceful Pod deletion included
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
CNI_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))


class NodeError(RuntimeError):
    """The cluster with a node could not start; the message says which step failed and why."""


# ---------------------------------------------------------------------------------------------
# What the host must have


def _has_cni_plugins() -> bool:
    return any(all((d / p).is_file() for p in CNI_PLUGINS) for d in CNI_DIRS)


# Debian package -> how to tell it is there. containerd is built from its Go module (v2); these
# are what the node takes from the host.
HOST_PACKAGES: dict[str, Callable[[], bool]] = {
    "runc": lambda: shutil.which("runc") is not None,
    "containernetworking-plugins": _has_cni_plugins,
    "iptables": lambda: shutil.which("iptables") is not None,
    "conntrack": lambda: shutil.which("conntrack") is not None,
    "iproute2": lambda: shutil.which("ip") is not None,
    "util-linux": lambda: shutil.which("nsenter") is not None,
}


def missing_host_packages() -> list[str]:
    return [package for package, present in HOST_PACKAGES.items() if not present()]


def check_host() -> None:
    """Refuse early, with the one command that fixes it; never install anything ourselves."""
    if os.geteuid() != 0:
        raise NodeError(
            "a cluster with a node needs root (network namespaces, mounts, cgroups, containerd); "
            "run it as root, or use `orderflow cluster up` without --nodes for the unprivileged control plane"
        )
    missing = missing_host_packages()
    if missing:
        raise NodeError(f"missing host packages; install them with:\n  apt-get install -y {' '.join(missing)}")
    if not Path("/sys/fs/cgroup").is_dir():
        raise NodeError("no cgroup filesystem at /sys/fs/cgroup")


def _cgroup_mounts() -> list[list[str]]:
    """The host's cgroup mounts, replayed inside the namespace where ``ip netns exec`` hid them."""
    mounts = []
    for line in Path("/proc/mounts").read_text().splitlines():
        device, directory, fstype, options, *_ = line.split()
        if fstype in ("cgroup", "cgroup2") and directory.startswith("/sys/fs/cgroup"):
            mounts.append([device, directory, fstype, options])
    return mounts


def cgroup_v1() -> bool:
    return any(m[2] == "cgroup" for m in _cgroup_mounts())


# ---------------------------------------------------------------------------------------------
# The cluster's layout: every path and name derived from one id


@dataclasses.dataclass(frozen=True)
class Layout:
    cluster_id: str
    workdir: Path

    @property
    def netns(self) -> str:
        return f"orderflow-{self.cluster_id}"

    @property
    def run_dir(self) -> Path:  # sockets and runtime state: short paths (unix sockets cap at 108 bytes)
        return Path("/run") / f"orderflow-{self.cluster_id}"

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd" / "containerd.sock"

    @property
    def pki_dir(self) -> Path:
        return self.workdir / "pki"

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "conf"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def spec_file(self) -> Path:
        return self.workdir / "node.json"

    @property
    def components_file(self) -> Path:
        return self.workdir / "components.json"

    def kubeconfig(self, component: str) -> Path:
        return self.pki_dir / f"{component}.kubeconfig"


# ---------------------------------------------------------------------------------------------
# Configuration files


def _component_kubeconfig(pki: pki_mod.NodePki, name: str, server: str) -> dict[str, Any]:
    user = {
        "client-certificate-data": _b64(pki.cert(name).read_bytes()),
        "client-key-data": _b64(pki.key(name).read_bytes()),
    }
    return kubeconfig_document(server, ca=pki.ca.read_bytes(), user=user, user_name=name)


def write_configs(layout: Layout) -> pki_mod.NodePki:
    pki = pki_mod.generate_node(layout.pki_dir, NODE_NAME, NODE_IP, KUBERNETES_SERVICE_IP)
    inside = f"https://{NODE_IP}:{API_PORT}"
    for name in pki_mod.NODE_CLIENTS:
        layout.kubeconfig(name).write_text(yaml.safe_dump(_component_kubeconfig(pki, name, inside)))
    conf = layout.conf_dir
    (conf / "cni").mkdir(parents=True, exist_ok=True)
    state = layout.workdir / "state"
    cni_bin = next(d for d in CNI_DIRS if all((d / p).is_file() for p in CNI_PLUGINS))
    (conf / "cni" / "10-orderflow.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "orderflow-pods",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "cni0",
                        "isGateway": True,
                        "ipMasq": False,  # nothing is translated to leave: the default route is a blackhole
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "dataDir": str(state / "cni-ipam"),
                            "ranges": [[{"subnet": POD_CIDR}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                ],
            },
            indent=2,
        )
    )
    runc = shutil.which("runc") or "/usr/sbin/runc"
    cri_runtime = 'plugins."io.containerd.cri.v1.runtime"'
    (conf / "containerd.toml").write_text(
        f"""version = 3
root = "{state / "containerd"}"
state = "{layout.run_dir / "containerd"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs"]
[grpc]
  address = "{layout.containerd_socket}"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"
[{cri_runtime}]
  enable_selinux = false
  # CAP_SYS_RESOURCE is not in this machine's bounding set: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  # Pod network namespaces under our run dir, not /run/netns: down removes them with it.
  netns_mounts_under_state_dir = true
  [{cri_runtime}.containerd]
    default_runtime_name = "runc"
    [{cri_runtime}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri_runtime}.containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{layout.run_dir / "runc"}"
        SystemdCgroup = false
  [{cri_runtime}.cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{conf / "cni"}"
"""
    )
    kubelet: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",  # no systemd here
        "cgroupRoot": f"/{layout.netns}",
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki.ca)},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki.cert("kubelet-serving")),
        "tlsPrivateKeyFile": str(pki.key("kubelet-serving")),
        "failSwapOn": False,
        "clusterDomain": "cluster.local",
        "clusterDNS": [NODE_IP],
        "resolvConf": str(conf / "resolv.conf"),
        "podLogsDirectory": str(state / "pod-logs"),
        # A development node: evict only when really short, and never collect the imported images.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "maxPods": 30,
        "serializeImagePulls": False,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
    }
    if cgroup_v1():
        kubelet["failCgroupV1"] = False  # 1.35+ refuses cgroup v1 unless told
    (conf / "kubelet.yaml").write_text(yaml.safe_dump(kubelet))
    (conf / "resolv.conf").write_text(f"nameserver {NODE_IP}\nsearch cluster.local\n")
    (conf / "kube-proxy.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "clientConnection": {"kubeconfig": str(layout.kubeconfig("kube-proxy"))},
                "hostnameOverride": NODE_NAME,
                "mode": "iptables",
                "clusterCIDR": "10.244.0.0/16",
                "conntrack": {"maxPerCore": 0, "min": 0},  # nf_conntrack_max cannot be set in a namespace
                "metricsBindAddress": "127.0.0.1:10249",
                "healthzBindAddress": "127.0.0.1:10256",
            }
        )
    )
    # CoreDNS logs in as system:coredns (its own certificate): the read access it needs, as kubeadm grants.
    rbac = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                 "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:coredns"}],
        },
    ]  # fmt: skip
    (conf / "coredns-rbac.yaml").write_text(yaml.safe_dump_all(rbac))
    (conf / "Corefile").write_text(
        f"cluster.local:53 in-addr.arpa:53 {{\n  bind {NODE_IP}\n  errors\n"
        f"  kubernetes cluster.local in-addr.arpa {{\n    kubeconfig {layout.kubeconfig('coredns')}\n"
        "    pods insecure\n  }\n}\n"
    )
    return pki


PAUSE_IMAGE = "localhost/pause:local"


# ---------------------------------------------------------------------------------------------
# The network namespace (host side)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NodeError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


def create_netns(layout: Layout) -> None:
    ns = layout.netns
    _ip("netns", "add", ns)
    _ip("-n", ns, "link", "set", "lo", "up")
    # No dummy driver in this kernel: the node address sits on one end of a veth pair kept inside.
    _ip("-n", ns, "link", "add", "of0", "type", "veth", "peer", "name", "of1")
    _ip("-n", ns, "link", "set", "of1", "up")
    _ip("-n", ns, "addr", "add", f"{NODE_IP}/32", "dev", "of0")
    _ip("-n", ns, "link", "set", "of0", "up")
    _ip("-n", ns, "route", "add", "blackhole", "default")  # nothing leaves the machine
    for setting in ("net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"):
        done = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", setting], capture_output=True, text=True)
        if done.returncode != 0:
            raise NodeError(f"sysctl {setting} in {ns} failed: {done.stderr.strip()}")


def netns_exists(name: str) -> bool:
    return (Path("/run/netns") / name).exists()


def delete_netns(name: str) -> None:
    if netns_exists(name):
        _ip("netns", "delete", name, check=False)
    netns_dir = Path("/run/netns")
    # `ip netns add` made /run/netns a mount point; leave none behind once the last one is gone.
    if netns_dir.is_dir() and not any(netns_dir.iterdir()) and _is_mountpoint(netns_dir):
        subprocess.run(["umount", str(netns_dir)], capture_output=True, check=False)


def _is_mountpoint(path: Path) -> bool:
    return any(line.split()[1] == str(path) for line in Path("/proc/mounts").read_text().splitlines())


# ---------------------------------------------------------------------------------------------
# The cluster, as the host sees it


@dataclasses.dataclass
class NodeCluster:
    layout: Layout
    kubeconfig: Path
    server: str = ""
    supervisor: Process | None = None
    binaries: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def start(
        cls,
        kubeconfig: Path,
        log: Callable[[str], None] = print,
        die_with_parent: bool = False,
        workdir: Path | None = None,
    ) -> NodeCluster:
        """Start the control plane and the node and wait until the node is Ready; on failure,
        say which step failed and remove everything made so far."""
        check_host()
        from orderflow.dev.cluster import image  # buildah/Go for the pause image: only this path needs them

        binaries = {name: str(tools.ensure(name, log)) for name in ("etcd", "kube-apiserver", "kubectl")}
        binaries.update({name: str(tools.ensure(name, log)) for name in tools.NODE_TOOLS})
        pause = image.pause_archive(log)
        layout = Layout(secrets.token_hex(3), workdir or Path(tempfile.mkdtemp(prefix="orderflow-node-")))
        cluster = cls(layout=layout, kubeconfig=kubeconfig, binaries=binaries)
        try:
            cluster._start(pause, log, die_with_parent)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start(self, pause: Path, log: Callable[[str], None], die_with_parent: bool) -> None:
        layout = self.layout
        for directory in (layout.workdir, layout.log_dir, layout.run_dir):
            directory.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        pki = write_configs(layout)
        create_netns(layout)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", free_port()))
        listener.listen(64)
        port = listener.getsockname()[1]
        host_mnt = os.open("/proc/self/ns/mnt", os.O_RDONLY)
        spec = {
            "layout": {"cluster_id": layout.cluster_id, "workdir": str(layout.workdir)},
            "binaries": self.binaries,
            "pause_archive": str(pause),
            "cgroup_mounts": _cgroup_mounts(),
            "listen_fd": listener.fileno(),
            "host_mnt_fd": host_mnt,
        }
        layout.spec_file.write_text(json.dumps(spec, indent=2))
        log_path = layout.log_dir / "supervisor.log"
        try:
            with log_path.open("ab") as log_file:
                popen = subprocess.Popen(
                    ["ip", "netns", "exec", layout.netns, sys.executable, "-m", SUPERVISOR, "supervise",
                     str(layout.spec_file)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    pass_fds=(listener.fileno(), host_mnt),
                    start_new_session=True,
                    preexec_fn=_die_with_parent if die_with_parent else None,
                )  # fmt: skip
        finally:
            listener.close()
            os.close(host_mnt)
        self.supervisor = Process("orderflow.dev.cluster.node", popen.pid, log_path, popen)
        self.server = f"https://127.0.0.1:{port}"
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(yaml.safe_dump(_component_kubeconfig(pki, "admin", self.server)))
        self.kubeconfig.chmod(0o600)
        self._wait_ready(log)
        log(f"Node {NODE_NAME} Ready after {time.monotonic() - started:.1f}s ({self.server})")

    def _wait_ready(self, log: Callable[[str], None]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        kubectl = [self.binaries["kubectl"], "--kubeconfig", str(self.kubeconfig), "--request-timeout=5s"]
        jsonpath = '{.status.conditions[?(@.type=="Ready")].status}'
        checks: list[tuple[str, list[str], Callable[[str], bool]]] = [
            ("node Ready", ["get", "node", NODE_NAME, "-o", f"jsonpath={jsonpath}"], lambda out: out == "True"),
            # Pods need their namespace's ServiceAccount and the kube-root-ca.crt ConfigMap.
            ("default ServiceAccount", ["get", "serviceaccount", "default", "-o", "name"], bool),
            ("kube-root-ca.crt", ["get", "configmap", "kube-root-ca.crt", "-o", "name"], bool),
        ]
        for what, args, ok in checks:
            while True:
                assert self.supervisor is not None
                if not self.supervisor.alive():
                    raise NodeError(f"the node supervisor exited while waiting for {what}:\n{self.supervisor.tail(40)}")
                done = subprocess.run([*kubectl, *args], capture_output=True, text=True, timeout=30)
                if done.returncode == 0 and ok(done.stdout.strip()):
                    break
                if time.monotonic() > deadline:
                    seen = done.stderr.strip() or done.stdout.strip()
                    raise NodeError(
                        f"{what}: not reached within {READY_TIMEOUT:.0f}s ({seen})"
                        f"\nsupervisor log:\n{self.supervisor.tail(40)}"
                    )
                time.sleep(0.5)
            log(f"  {what}")

    def stop(self) -> None:
        """Stop gracefully (Pods deleted, then the components in reverse order), then make sure:
        no process, mount, network namespace, cgroup or runtime state of the cluster remains."""
        if self.supervisor is not None and self.supervisor.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.supervisor.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while self.supervisor.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            self.supervisor.stop(grace=1.0)
        cleanup_host(self.layout)

    def processes(self) -> Iterator[Process]:
        if self.supervisor:
            yield self.supervisor
        with contextlib.suppress(OSError, ValueError):
            for entry in json.loads(self.layout.components_file.read_text()):
                yield Process(entry["name"], entry["pid"], Path(entry["log"]))

    def env(self) -> dict[str, str]:
        return {"containerd_socket": str(self.layout.containerd_socket), "ctr": self.ctr}

    @property
    def ctr(self) -> str:
        return str(Path(self.binaries["containerd"]).parent / "ctr")

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "nodes",
            "cluster_id": self.layout.cluster_id,
            "workdir": str(self.layout.workdir),
            "netns": self.layout.netns,
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "binaries": self.binaries,
            "containerd_socket": str(self.layout.containerd_socket),
            "ctr": self.ctr,
            "supervisor": {"pid": self.supervisor.pid if self.supervisor else 0},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NodeCluster:
        layout = Layout(state["cluster_id"], Path(state["workdir"]))
        supervisor = Process(
            "orderflow.dev.cluster.node", state["supervisor"]["pid"], layout.log_dir / "supervisor.log"
        )
        return cls(layout, Path(state["kubeconfig"]), state["server"], supervisor, state["binaries"])


def controller_process(pod_uid: str) -> tuple[int, str]:
    """(pid, memory cgroup) of the controller running in the Pod ``pod_uid``, found on this
    machine by its cgroup (v1 or v2; the memory cgroup is "" where there is no v1 memory line)."""
    marks = (f"pod{pod_uid}", f"pod{pod_uid.replace('-', '_')}")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cgroups = (proc / "cgroup").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if any(mark in cgroups for mark in marks) and b"orderflow" in cmdline:
            memory = next((line.split(":", 2)[2] for line in cgroups.splitlines() if ":memory:" in line), "")
            return int(proc.name), memory
    raise RuntimeError(f"no controller process of Pod {pod_uid} on this machine: run this on the Pod's node")


def _pids_naming(*needles: str) -> list[int]:
    """Processes whose command line names one of our paths (a shim re-parented to init, say)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(needle in cmdline for needle in needles):
            found.append(int(entry.name))
    return found


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.05)


def _cgroup_roots(layout: Layout) -> list[Path]:
    """The cluster's own cgroup in each hierarchy: kubelet's ``cgroupRoot``, so its ``kubepods``
    tree is ours alone and two clusters (or a cluster and its failed twin) never touch each other's."""
    return [Path(mount[1]) / layout.netns for mount in _cgroup_mounts()]


def make_cgroup_roots(layout: Layout) -> None:
    for root in _cgroup_roots(layout):
        root.mkdir(exist_ok=True)


def remove_cgroups(layout: Layout) -> None:
    """Kill what still runs in the cluster's cgroups (containers whose shim was killed), then remove
    them, deepest first."""
    for root in _cgroup_roots(layout):
        if not root.is_dir():
            continue
        for directory, _, files in os.walk(root):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError, ValueError):
                    _kill_all([int(pid) for pid in Path(directory, "cgroup.procs").read_text().split()])
        for directory, _, _ in sorted(os.walk(root), key=lambda entry: entry[0].count("/"), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(directory)


def cleanup_host(layout: Layout) -> None:
    """Idempotent: whatever a crashed or killed supervisor left, remove it."""
    _kill_all(_pids_naming(str(layout.workdir), str(layout.run_dir)))
    remove_cgroups(layout)
    delete_netns(layout.netns)
    shutil.rmtree(layout.run_dir, ignore_errors=True)
    shutil.rmtree(layout.workdir, ignore_errors=True)


def leftovers(layout: Layout) -> list[str]:
    """What of this cluster still exists on the host: empty after a clean ``down``."""
    found = [f"process {pid}" for pid in _pids_naming(str(layout.workdir), str(layout.run_dir))]
    if netns_exists(layout.netns):
        found.append(f"network namespace {layout.netns}")
    mounts = Path("/proc/mounts").read_text().splitlines()
    found += [
        f"mount {line.split()[1]}" for line in mounts if str(layout.workdir) in line or str(layout.run_dir) in line
    ]
    found += [f"directory {d}" for d in (layout.run_dir, layout.workdir) if d.exists()]
    found += [f"cgroup {root}" for root in _cgroup_roots(layout) if root.exists()]
    return found


# ---------------------------------------------------------------------------------------------
# The supervisor: runs inside the namespace, starts and stops every component


@dataclasses.dataclass
class Component:
    name: str
    argv: list[str]
    ready: Callable[[], bool] | None = None
    env: dict[str, str] | None = None


def _flags(values: dict[str, object]) -> list[str]:
    return [f"--{name}={value}" for name, value in values.items()]


class Supervisor:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.layout = Layout(spec["layout"]["cluster_id"], Path(spec["layout"]["workdir"]))
        self.binaries: dict[str, str] = spec["binaries"]
        self.running: list[Process] = []
        self.stopping = asyncio.Event()

    def log(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    # -- start

    def replay_cgroup_mounts(self) -> None:
        if _is_mountpoint(Path("/sys/fs/cgroup/memory")) or _is_mountpoint(Path("/sys/fs/cgroup/unified")):
            return
        mounts: list[list[str]] = self.spec["cgroup_mounts"]
        if any(m[1] == "/sys/fs/cgroup" for m in mounts):  # cgroup v2 only: one mount
            pass
        else:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "rw,nosuid,nodev,noexec,mode=755", "tmpfs", "/sys/fs/cgroup"], check=True
            )
        for device, directory, fstype, options in mounts:
            Path(directory).mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "-t", fstype, "-o", options, device, directory], check=True)

    def components(self) -> list[Component]:
        b, layout = self.binaries, self.layout
        pki, state, conf = layout.pki_dir, layout.workdir / "state", layout.conf_dir
        admin = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        admin.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        local = ssl.create_default_context()  # components' own /healthz on 127.0.0.1, self-signed
        local.check_hostname = False
        local.verify_mode = ssl.CERT_NONE
        ctr = str(Path(b["containerd"]).parent / "ctr")

        def kubeconfigs(name: str) -> dict[str, object]:
            path = layout.kubeconfig(name)
            return {"kubeconfig": path, "authentication-kubeconfig": path, "authorization-kubeconfig": path}

        def containerd_ok() -> bool:
            return (
                subprocess.run([ctr, "-a", str(layout.containerd_socket), "version"], capture_output=True).returncode
                == 0
            )

        etcd_url, peer_url = "http://127.0.0.1:2379", "http://127.0.0.1:2380"
        return [
            Component(
                "etcd",
                [b["etcd"], *_flags({
                    "data-dir": state / "etcd", "listen-client-urls": etcd_url, "advertise-client-urls": etcd_url,
                    "listen-peer-urls": peer_url, "initial-advertise-peer-urls": peer_url,
                    "initial-cluster": f"default={peer_url}", "unsafe-no-fsync": "true", "log-level": "warn",
                })],
                lambda: _http_ok(f"{etcd_url}/health"),
            ),
            Component(
                "kube-apiserver",
                # Unlike the unprivileged control plane: Pods must reach it (bind and advertise the
                # node address), ServiceAccount admission on (projected tokens), Node authorizer.
                [b["kube-apiserver"], *_flags({
                    "etcd-servers": etcd_url, "secure-port": API_PORT, "bind-address": "0.0.0.0",
                    "advertise-address": NODE_IP, "cert-dir": state / "apiserver-certs",
                    "tls-cert-file": pki / "apiserver.crt", "tls-private-key-file": pki / "apiserver.key",
                    "client-ca-file": pki / "ca.crt", "service-cluster-ip-range": SERVICE_CIDR,
                    "authorization-mode": "Node,RBAC", "enable-admission-plugins": "NodeRestriction",
                    "allow-privileged": "true",
                    "service-account-issuer": "https://kubernetes.default.svc.cluster.local",
                    "service-account-key-file": pki / "sa.pub", "service-account-signing-key-file": pki / "sa.key",
                    "kubelet-client-certificate": pki / "apiserver-kubelet-client.crt",
                    "kubelet-client-key": pki / "apiserver-kubelet-client.key",
                    "kubelet-preferred-address-types": "InternalIP", "v": 1,
                })],
                lambda: _http_ok(f"https://{NODE_IP}:{API_PORT}/readyz", admin),
            ),
            # Kopf's in-cluster login resolves kubernetes.default.svc: Pods need cluster DNS.
            Component("coredns", [b["coredns"], "-conf", str(conf / "Corefile")]),
            Component(
                "kube-controller-manager",
                [b["kube-controller-manager"], *_flags({
                    **kubeconfigs("kube-controller-manager"),
                    "service-account-private-key-file": pki / "sa.key", "root-ca-file": pki / "ca.crt",
                    "use-service-account-credentials": "true", "cluster-signing-cert-file": pki / "ca.crt",
                    "cluster-signing-key-file": pki / "ca.key", "leader-elect": "false",
                    "bind-address": "127.0.0.1", "v": 1,
                })],
                lambda: _http_ok("https://127.0.0.1:10257/healthz", local),
            ),
            Component(
                "kube-scheduler",
                [b["kube-scheduler"], *_flags({
                    **kubeconfigs("kube-scheduler"), "leader-elect": "false", "bind-address": "127.0.0.1", "v": 1,
                })],
                lambda: _http_ok("https://127.0.0.1:10259/healthz", local),
            ),
            Component(
                "containerd",
                [b["containerd"], "--config", str(conf / "containerd.toml")],
                containerd_ok,
                # Our v2 shim first on PATH: Debian's containerd package would bring a 1.x one.
                env={**os.environ, "PATH": f"{Path(b['containerd']).parent}:{os.environ.get('PATH', '')}"},
            ),
            Component(
                "kubelet",
                [b["kubelet"], *_flags({
                    "config": conf / "kubelet.yaml", "kubeconfig": layout.kubeconfig("kubelet"),
                    "hostname-override": NODE_NAME, "node-ip": NODE_IP, "root-dir": state / "kubelet", "v": 1,
                })],
                lambda: _http_ok("http://127.0.0.1:10248/healthz"),
            ),
            Component("kube-proxy", [b["kube-proxy"], *_flags({"config": conf / "kube-proxy.yaml", "v": 1})]),
        ]  # fmt: skip

    def spawn(self, component: Component) -> Process:
        log_path = self.layout.log_dir / f"{component.name}.log"
        with log_path.open("ab") as log_file:
            popen = subprocess.Popen(
                component.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=component.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # a killed supervisor takes the node down with it
            )
        process = Process(component.name, popen.pid, log_path, popen)
        self.running.append(process)
        self.layout.components_file.write_text(
            json.dumps([{"name": p.name, "pid": p.pid, "log": str(p.log)} for p in self.running])
        )
        return process

    async def start_all(self) -> None:
        for component in self.components():
            started = time.monotonic()
            process = self.spawn(component)
            deadline = started + READY_TIMEOUT
            while component.ready is not None and not await asyncio.to_thread(component.ready):
                if not process.alive():
                    raise NodeError(f"{component.name} exited during start-up:\n{process.tail(30)}")
                if time.monotonic() > deadline or self.stopping.is_set():
                    raise NodeError(f"{component.name} was not ready within {READY_TIMEOUT:.0f}s:\n{process.tail(30)}")
                await asyncio.sleep(0.1)
            self.log(f"{component.name} ready in {time.monotonic() - started:.1f}s (pid {process.pid})")
            if component.name == "kube-apiserver":
                await self.apply(self.layout.conf_dir / "coredns-rbac.yaml")
            if component.name == "containerd":
                await self.import_pause()
                make_cgroup_roots(self.layout)  # kubelet's cgroupRoot must exist before it starts

    async def apply(self, manifest: Path) -> None:
        args = [
            self.binaries["kubectl"],
            "--kubeconfig",
            str(self.layout.kubeconfig("admin")),
            "apply",
            "-f",
            str(manifest),
        ]
        done = await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise NodeError(f"applying {manifest.name} failed: {done.stderr.strip()}")

    async def import_pause(self) -> None:
        ctr = str(Path(self.binaries["containerd"]).parent / "ctr")
        archive = self.spec["pause_archive"]
        args = [ctr, "-a", str(self.layout.containerd_socket), "-n", "k8s.io", "images", "import", archive]
        done = await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True)
        if done.returncode != 0:
            raise NodeError(f"importing the pause image failed: {done.stderr.strip()}")

    # -- the host's door to the API server

    async def forward(self) -> asyncio.Server:
        listener = socket.socket(fileno=self.spec["listen_fd"])  # opened on the host, before we got here

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(NODE_IP, API_PORT)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        return await asyncio.start_server(connection, sock=listener)

    # -- stop

    async def stop_all(self) -> None:
        by_name = {p.name: p for p in self.running}
        # No new Pods (scheduler, ReplicaSets) while the existing ones are deleted gracefully.
        for name in ("kube-controller-manager", "kube-scheduler"):
            if name in by_name:
                await asyncio.to_thread(by_name[name].stop)
        if "kubelet" in by_name and by_name["kubelet"].alive():
            await self.delete_pods()
        for process in reversed(self.running):
            if process.name == "containerd":  # the shims outlive containerd unless stopped first
                _kill_all(_pids_naming(str(self.layout.containerd_socket)))
            await asyncio.to_thread(process.stop)
            self.log(f"{process.name} stopped")

    async def delete_pods(self) -> None:
        kubectl = [self.binaries["kubectl"], "--kubeconfig", str(self.layout.kubeconfig("admin"))]
        args = [*kubectl, "delete", "pods", "--all", "--all-namespaces", "--grace-period=10", "--timeout=40s"]
        done = await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True, timeout=60)
        self.log(f"pods deleted: {done.returncode == 0} {done.stderr.strip()[-200:]}")

    def cleanup(self) -> None:
        remove_cgroups(self.layout)
        shutil.rmtree(self.layout.run_dir, ignore_errors=True)
        # The network namespace's name is a mount in the host's mount namespace: remove it there.
        subprocess.run(
            [
                "nsenter",
                f"--mount=/proc/self/fd/{self.spec['host_mnt_fd']}",
                "ip",
                "netns",
                "delete",
                self.layout.netns,
            ],
            capture_output=True,
            check=False,
            pass_fds=(self.spec["host_mnt_fd"],),
        )

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        code = 0
        try:
            self.replay_cgroup_mounts()
            server = await self.forward()
            starting = asyncio.create_task(self.start_all())
            stop_wait = asyncio.create_task(self.stopping.wait())
            await asyncio.wait({starting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()  # raises what failed
                self.log("all components running")
                await self.watch()
            server.close()
        except Exception as exc:  # reported, then everything is stopped
            self.log(f"FAILED: {exc}")
            code = 1
        finally:
            await self.stop_all()
            self.cleanup()
            self.log("stopped")
        return code

    async def watch(self) -> None:
        """Until told to stop; a component that dies takes the node down, loudly."""
        while not self.stopping.is_set():
            for process in self.running:
                if not process.alive():
                    raise NodeError(f"{process.name} exited:\n{process.tail(30)}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=1.0)


def supervise(spec_file: Path) -> int:
    spec = json.loads(spec_file.read_text())
    return asyncio.run(Supervisor(spec).run())


# ---------------------------------------------------------------------------------------------
# The detached cluster of `orderflow cluster up --nodes`


def up(state_dir: Path, kubeconfig: Path, log: Callable[[str], None] = print) -> NodeCluster:
    state_dir.mkdir(parents=True, exist_ok=True)
    workdir = (state_dir / "node").resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    for name in ("kubectl", "helm"):
        tools.ensure(name, log)
    cluster = NodeCluster.start(kubeconfig.resolve(), log, workdir=workdir)
    return cluster


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "supervise":
        return supervise(Path(argv[1]))
    print("usage: python -m orderflow.dev.cluster.node supervise SPEC_FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
