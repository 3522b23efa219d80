"""A kind node image made here, with no registry, for ``kind create cluster`` with podman.

kind's own ``kind build node-image`` cannot work on this machine: it pulls etcd, CoreDNS, pause and
kindnetd from a registry and drives Docker only. So the node image is assembled from what can be
had offline, in kind's layout (``images/base`` of the kind module, which this reuses file by file):

- a Debian bookworm root filesystem made with mmdebstrap (systemd 252: later systemd treats the
  cgroup v1 of this VM as obsolete), cached as a tarball like the controllers' base image;
- kind's ``images/base/files`` (entrypoint, systemd units, sysctls), from the kind Go module;
- kubelet, kubeadm, kubectl, containerd v2, crictl, built from Go modules by ``tools``;
- the component images kubeadm asks for, tagged as ``kubeadm config images list`` prints them and
  preloaded into the node's containerd (a host containerd writes them into the image's
  ``/var/lib/containerd`` before commit, as kind's importer does inside its build container);
- a static CNI config (ptp + host-local) instead of kindnetd, whose module is not served.

The node boots with kind's entrypoint and podman's ``--privileged``; podman needs a private
containers.conf (``podman_env``). ``up`` makes kind's network internal first, so nothing in the
node can reach beyond this machine, and ``down`` deletes the cluster and then undoes what podman
and netavark leave on the host. Nothing here installs packages: what is missing is named.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import yaml

from orderflow.dev.cluster import image, tools
from orderflow.dev.cluster.image import Log

# Bump when the node image changes in a way its key does not see (files written below).
NODE_RECIPE_VERSION = 1
NODE_SUITE = "bookworm"
# kind's images/base package list, minus what is not needed here (nfs, iscsi, fuse-overlayfs), plus
# runc (kind builds its own) and the CNI plugins (kind builds ptp, host-local, loopback, portmap).
NODE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "conntrack",
    "iptables",
    "iproute2",
    "ethtool",
    "util-linux",
    "mount",
    "kmod",
    "libseccomp2",
    "procps",
    "bash",
    "ca-certificates",
    "jq",  # kind's createContainer hook (mount-product-files.sh) reads the bundle with it
    "runc",
    "containernetworking-plugins",
)
NODE_REPOSITORY = "localhost/orderflow/kind-node"
NODE_KEY_LABEL = "dev.orderflow.kind-node-key"
# The cluster name kind-config.yaml sets.
CLUSTER_NAME = "orderflow"
# kind's default pod subnet is 10.244.0.0/16 and its one node gets the first /24: the static CNI
# config hands out addresses from that. A second node would need kindnetd or a route per node.
POD_RANGE = "10.244.0.0/24"
POD_GATEWAY = "10.244.0.1"

# podman's defaults that fail here (see KIND.md): crun refuses hybrid cgroups, its default
# ulimits are above this VM's hard limits, and its network backend would be CNI (buildah's choice,
# written into the shared storage) whose configs go into the host's /etc/cni/net.d.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
"""

APT_INSTALL = (
    "apt-get install --no-install-recommends buildah mmdebstrap runc iptables podman netavark aardvark-dns conmon"
)


class KindError(RuntimeError):
    """The node image could not be built or kind cannot run; the message says what to do."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def node_image_name() -> str:
    return f"{NODE_REPOSITORY}:v{tools.KUBERNETES_VERSION}"


def containers_conf() -> Path:
    """The private containers.conf kind's podman must see (``CONTAINERS_CONF``); written once."""
    path = tools.cache_dir() / "kind" / "containers.conf"
    if not path.is_file() or path.read_text() != CONTAINERS_CONF:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(CONTAINERS_CONF)
    return path


def podman_env() -> dict[str, str]:
    """What kind and podman need in the environment to make a node here."""
    return {"KIND_EXPERIMENTAL_PROVIDER": "podman", "CONTAINERS_CONF": str(containers_conf())}


# ---------------------------------------------------------------------------------------------
# Host checks


def check_host(commands: Iterable[str] = ("buildah", "mmdebstrap", "podman", "go")) -> None:
    """Fail with one message naming everything missing; install nothing."""
    missing = [command for command in commands if shutil.which(command) is None]
    problems = []
    apt = [command for command in missing if command != "go"]
    if apt:
        problems.append(f"{', '.join(apt)} not found on PATH; install (as root) with:\n    {APT_INSTALL}")
    if "go" in missing:
        problems.append("go not found on PATH; kind, kubeadm and the node's binaries are built with Go >= 1.26")
    if os.geteuid() != 0:
        problems.append("the node image is built with buildah and run with rootful podman: run as root")
    if problems:
        raise KindError("\n".join(problems))


# ---------------------------------------------------------------------------------------------
# Inputs: the kind module's base files, kubeadm's image list


def kind_module_dir(log: Log = _stderr) -> Path:
    """The kind module's source (for ``images/base/files``), downloaded into the module cache."""
    go = shutil.which("go") or "go"
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off", "GOTOOLCHAIN": "local"}
    done = subprocess.run(
        [go, "mod", "download", "-json", f"sigs.k8s.io/kind@v{tools.KIND_VERSION}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    if done.returncode != 0:
        raise KindError(f"cannot download sigs.k8s.io/kind@v{tools.KIND_VERSION}: {done.stdout}{done.stderr}")
    directory = Path(json.loads(done.stdout)["Dir"])
    if not (directory / "images/base/files/usr/local/bin/entrypoint").is_file():
        raise KindError(f"{directory} holds no images/base/files/usr/local/bin/entrypoint")
    return directory


def component_images(kubeadm: Path) -> dict[str, str]:
    """Component name -> image reference, exactly as kubeadm will ask containerd for them."""
    done = subprocess.run(
        [str(kubeadm), "config", "images", "list", f"--kubernetes-version=v{tools.KUBERNETES_VERSION}"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise KindError(f"kubeadm config images list failed: {done.stdout}{done.stderr}")
    return parse_image_list(done.stdout)


def parse_image_list(output: str) -> dict[str, str]:
    """``registry.k8s.io/coredns/coredns:v1.14.2`` -> ``{"coredns": ...}``, one per line."""
    found = {}
    for line in output.split():
        name = line.rsplit("/", 1)[-1].split(":", 1)[0]
        found[name] = line
    expected = {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "coredns", "pause", "etcd"}
    if set(found) != expected:
        raise KindError(f"kubeadm lists images {sorted(found)}, expected {sorted(expected)}")
    return found


# ---------------------------------------------------------------------------------------------
# The node's root filesystem


# What kind's images/base Dockerfile does after installing its packages, as mmdebstrap hooks.
_ROOTFS_HOOKS = (
    'rm -f "$1"/lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service',
    'rm -f "$1"/lib/systemd/system/multi-user.target.wants/* "$1"/etc/systemd/system/*.wants/*',
    'rm -f "$1"/lib/systemd/system/local-fs.target.wants/* "$1"/lib/systemd/system/basic.target.wants/*',
    'rm -f "$1"/lib/systemd/system/sockets.target.wants/*udev* "$1"/lib/systemd/system/sockets.target.wants/*initctl*',
    'echo "ReadKMsg=no" >> "$1"/etc/systemd/journald.conf',
    'ln -sf /dev/null "$1"/etc/systemd/system/systemd-binfmt.service',
    # containerd looks for CNI plugins in /opt/cni/bin; Debian installs them in /usr/lib/cni.
    'mkdir -p "$1"/opt/cni && ln -s /usr/lib/cni "$1"/opt/cni/bin',
    'mkdir -p "$1"/etc/kubernetes/manifests',
    'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
)


def node_rootfs(log: Log = _stderr) -> Path:
    """The cached node root filesystem tarball, made with mmdebstrap when missing (about 40 s)."""
    sources = image.host_apt_sources()
    key = image.base_key(
        NODE_SUITE,
        NODE_PACKAGES,
        [path.read_text() for path in sources],
        recipe=hash_text("\n".join(_ROOTFS_HOOKS)),
    )
    tarball = image.images_dir() / f"kind-node-{NODE_SUITE}-{key}.tar"
    if tarball.is_file():
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    log(f"Making the kind node's {NODE_SUITE} root filesystem with mmdebstrap (once)")
    try:
        return image.debian_tarball(tarball, NODE_SUITE, NODE_PACKAGES, _ROOTFS_HOOKS, sources, log)
    except image.ImageError as exc:  # what `orderflow kind` reports
        raise KindError(str(exc)) from exc


def hash_text(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _run(
    step: str,
    argv: Sequence[str],
    log: Log,
    *,
    env: dict[str, str] | None = None,
    echo: Callable[[str], bool] = lambda line: False,
) -> str:
    try:
        return image._run(step, argv, log, env=env, echo=echo)
    except image.ImageError as exc:
        raise KindError(str(exc)) from exc


# ---------------------------------------------------------------------------------------------
# Component images: each binary FROM scratch (kube-proxy on the node's root filesystem, as it
# needs iptables and conntrack), saved as docker-archives for the preload


def _component_archive(
    reference: str, binary: Path, log: Log, *, base: Path | None = None, entrypoint: str | None = None
) -> Path:
    stat = binary.stat()
    base_name = base.name if base else ""
    key = hash_text(f"{reference}\n{binary}\n{stat.st_size}\n{stat.st_mtime_ns}\n{base_name}\n{entrypoint}")
    name = reference.rsplit("/", 1)[-1].replace(":", "-")
    archive = image.images_dir() / f"kind-{name}-{key:08x}.tar"
    if archive.is_file():
        return archive
    log(f"Building {reference} from {binary}")
    container = _run(f"{name}: from", ["buildah", "from", "scratch"], log).strip().splitlines()[-1]
    try:
        if base is not None:
            _run(f"{name}: add base", ["buildah", "add", container, str(base), "/"], log)
        target = f"/usr/local/bin/{binary.name}"
        _run(f"{name}: add", ["buildah", "add", "--chmod", "0755", container, str(binary), target], log)
        config = ["--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        if entrypoint:
            config += ["--entrypoint", json.dumps([entrypoint])]
        _run(f"{name}: config", ["buildah", "config", *config, container], log)
        _run(f"{name}: commit", ["buildah", "commit", "--quiet", "--format", "docker", container, reference], log)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)
    image._push(reference, archive, log)
    subprocess.run(["buildah", "rmi", reference], capture_output=True)  # only the archive is needed
    return archive


def component_archives(binaries: dict[str, Path], references: dict[str, str], rootfs: Path, log: Log) -> list[Path]:
    archives = []
    for name, reference in references.items():
        if name == "pause":
            continue
        base = rootfs if name == "kube-proxy" else None
        entrypoint = f"/usr/local/bin/{binaries[name].name}" if name == "coredns" else None
        archives.append(_component_archive(reference, binaries[name], log, base=base, entrypoint=entrypoint))
    return archives


# ---------------------------------------------------------------------------------------------
# Preloading: a host containerd, rooted in the image's /var/lib/containerd, imports the images


def _preload(root: Path, containerd: Path, archives: dict[Path, tuple[str, str]], log: Log) -> None:
    """Import each archive (pinned, not unpacked, as kind does); archives maps each to the name it
    holds and the reference kubeadm asks for, which it is tagged with when they differ."""
    ctr = containerd.parent / "ctr"
    with tempfile.TemporaryDirectory(prefix="orderflow-kind-preload-") as tmp:
        socket = Path(tmp) / "containerd.sock"
        config = Path(tmp) / "config.toml"
        # Only the image store: no CRI, no NRI socket, no /opt/containerd on the host.
        disabled = [
            "io.containerd.grpc.v1.cri",
            "io.containerd.cri.v1.images",
            "io.containerd.cri.v1.runtime",
            "io.containerd.nri.v1.nri",
            "io.containerd.internal.v1.opt",
            "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.snapshotter.v1.zfs",
            "io.containerd.snapshotter.v1.devmapper",
            "io.containerd.snapshotter.v1.erofs",
            "io.containerd.tracing.processor.v1.otlp",
        ]
        config.write_text(
            f'version = 3\nroot = "{root}"\nstate = "{Path(tmp) / "state"}"\n'
            f"disabled_plugins = {json.dumps(disabled)}\n"
            f'[grpc]\n  address = "{socket}"\n[ttrpc]\n  address = "{socket}.ttrpc"\n'
        )
        logfile = (Path(tmp) / "containerd.log").open("w")
        proc = subprocess.Popen(
            [str(containerd), "--config", str(config)], stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 30
            while subprocess.run([str(ctr), "-a", str(socket), "version"], capture_output=True).returncode != 0:
                if proc.poll() is not None or time.monotonic() > deadline:
                    logfile.flush()
                    raise KindError(
                        f"the preload containerd did not start:\n{(Path(tmp) / 'containerd.log').read_text()}"
                    )
                time.sleep(0.2)
            ctr_k8s = [str(ctr), "-a", str(socket), "-n", "k8s.io"]
            for archive, (held, reference) in archives.items():
                argv = [*ctr_k8s, "images", "import", "--no-unpack", "--label=io.cri-containerd.pinned=pinned"]
                _run(f"preload {reference}", [*argv, str(archive)], log)
                if held != reference:
                    _run(f"tag {reference}", [*ctr_k8s, "images", "tag", "--force", held, reference], log)
            listed = _run("preload: list", [*ctr_k8s, "images", "list", "-q"], lambda line: None)
            missing = [ref for _, ref in archives.values() if ref not in listed.split()]
            if missing:
                raise KindError(f"preloaded images lack {missing}; containerd lists:\n{listed}")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
            logfile.close()


# ---------------------------------------------------------------------------------------------
# Files the node needs besides kind's base files


def containerd_config(pause: str) -> str:
    """kind's base config.toml, in containerd 2's version 3, with what this VM needs:
    restrict_oom_score_adj, as CAP_SYS_RESOURCE is missing from the bounding set."""
    runtime = 'plugins."io.containerd.cri.v1.runtime"'
    return f"""\
version = 3

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  discard_unpacked_layers = true
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{pause}"

[{runtime}]
  # Without it every sandbox fails with "can't get final child's PID from pipe: EOF": lowering
  # oom_score_adj needs CAP_SYS_RESOURCE, which this VM's bounding set lacks.
  restrict_oom_score_adj = true
  [{runtime}.containerd]
    default_runtime_name = "runc"
    [{runtime}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      base_runtime_spec = "/etc/containerd/cri-base.json"
      [{runtime}.containerd.runtimes.runc.options]
        SystemdCgroup = true
"""


def cni_config() -> str:
    """kindnetd's conflist without kindnetd: one node, so a static range and no routes to others."""
    conflist = {
        "cniVersion": "0.4.0",
        "name": "kindnet",
        "plugins": [
            {
                "type": "ptp",
                "ipMasq": False,
                "mtu": 1500,
                "ipam": {
                    "type": "host-local",
                    "dataDir": "/run/cni-ipam-state",
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "ranges": [[{"subnet": POD_RANGE, "gateway": POD_GATEWAY}]],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conflist, indent=2) + "\n"


# kind applies /kind/manifests/default-cni.yaml with kubectl; the network is the static conflist.
DEFAULT_CNI_MANIFEST = """\
# The node's CNI is a static ptp + host-local conflist (/etc/cni/net.d/10-kindnet.conflist):
# kindnetd's image cannot be built here. kind applies this file, so it holds a note, not a network.
apiVersion: v1
kind: ConfigMap
metadata:
  name: orderflow-kind-cni
  namespace: kube-system
data:
  conflist: /etc/cni/net.d/10-kindnet.conflist
"""

# Pods with dnsPolicy Default (CoreDNS) read kubelet's resolv.conf. podman's would forward to the
# host's resolver, off this machine; the pod gateway has no DNS server, so lookups of outside names
# fail at once and nothing leaves. Cluster names are CoreDNS's and unaffected.
RESOLV_CONF = f"nameserver {POD_GATEWAY}\n"

# kind's /etc/default/kubelet, plus: kubelet 1.36 refuses cgroup v1 unless told, and kind does not.
KUBELET_DEFAULTS = (
    "KUBELET_EXTRA_ARGS=--runtime-cgroups=/system.slice/containerd.service --fail-cgroupv1=false"
    " --resolv-conf=/etc/kubernetes/orderflow-resolv.conf\n"
)


def _cri_base_spec(ctr: Path) -> str:
    """What kind's Dockerfile makes with `ctr oci spec | jq`: the hook and no rlimits."""
    done = subprocess.run([str(ctr), "oci", "spec"], capture_output=True, text=True)
    if done.returncode != 0:
        raise KindError(f"ctr oci spec failed: {done.stderr}")
    spec = json.loads(done.stdout)
    spec.setdefault("hooks", {}).setdefault("createContainer", []).append({"path": "/kind/bin/mount-product-files.sh"})
    spec["process"].pop("rlimits", None)
    return json.dumps(spec, indent=2) + "\n"


def _install_files(root: Path, kind_files: Path, binaries: dict[str, Path], pause: str) -> None:
    """Lay kind's base files and the node's binaries into the mounted root filesystem."""
    for source in sorted(kind_files.rglob("*")):
        if source.is_dir():
            continue
        relative = source.relative_to(kind_files)
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        executable = relative.parts[:3] == ("usr", "local", "bin") or relative.parts[:2] == ("kind", "bin")
        target.chmod(0o755 if executable else 0o644)
    (root / "kind").chmod(0o755)
    # kubelet.service expects /usr/bin/kubelet (kind's buildcontext does the same).
    for name in ("kubelet", "kubeadm", "kubectl"):
        shutil.copyfile(binaries[name], root / "usr/bin" / name)
        (root / "usr/bin" / name).chmod(0o755)
    containerd_dir = binaries["containerd"].parent
    for name in (*tools.CONTAINERD_COMMANDS, "crictl"):
        source = binaries["crictl"] if name == "crictl" else containerd_dir / name
        shutil.copyfile(source, root / "usr/local/bin" / name)
        (root / "usr/local/bin" / name).chmod(0o755)
    etc = root / "etc"
    (etc / "containerd/config.toml").write_text(containerd_config(pause))
    (etc / "containerd/cri-base.json").write_text(_cri_base_spec(containerd_dir / "ctr"))
    (etc / "cni/net.d").mkdir(parents=True, exist_ok=True)
    (etc / "cni/net.d/10-kindnet.conflist").write_text(cni_config())
    (etc / "default/kubelet").write_text(KUBELET_DEFAULTS)
    (etc / "kubernetes/orderflow-resolv.conf").write_text(RESOLV_CONF)
    (root / "kind/version").write_text(f"v{tools.KUBERNETES_VERSION}")
    (root / "kind/manifests").mkdir(parents=True, exist_ok=True)
    (root / "kind/manifests/default-cni.yaml").write_text(DEFAULT_CNI_MANIFEST)
    # What `systemctl enable` does for kind's three units.
    wants = etc / "systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in ("kubelet.service", "containerd.service", "undo-mount-hacks.service"):
        link = wants / unit
        link.unlink(missing_ok=True)
        link.symlink_to(f"/etc/systemd/system/{unit}")


# ---------------------------------------------------------------------------------------------
# The node image


NODE_BINARIES = ("kubelet", "kubeadm", "kubectl", "containerd", "crictl")
# Component name in kubeadm's list -> the tool that provides its binary.
COMPONENT_TOOLS = {
    "kube-apiserver": "kube-apiserver",
    "kube-controller-manager": "kube-controller-manager",
    "kube-scheduler": "kube-scheduler",
    "kube-proxy": "kube-proxy",
    "etcd": "etcd",
    "coredns": "coredns-kubeadm",
}


def _labels_of(reference: str) -> dict[str, str] | None:
    found = image._buildah_image(reference)
    return None if found is None else image._labels(found)


def build_node_image(log: Log = _stderr, *, force: bool = False) -> str:
    """Build (or find up to date) the node image in the host's container storage; return its name."""
    check_host()
    binaries = {name: tools.ensure(name, log) for name in {*NODE_BINARIES, *COMPONENT_TOOLS.values()}}
    kind_files = kind_module_dir(log) / "images/base/files"
    references = component_images(binaries["kubeadm"])
    rootfs = node_rootfs(log)
    components = {name: binaries[tool] for name, tool in COMPONENT_TOOLS.items()}
    component_references = [ref for name, ref in references.items() if name != "pause"]
    archives = component_archives(components, references, rootfs, log)
    pause_archive = image.pause_archive(log)
    key_inputs = [
        NODE_RECIPE_VERSION,
        rootfs.name,
        [archive.name for archive in archives],
        pause_archive.name,
        {name: f"{path}:{path.stat().st_size}:{path.stat().st_mtime_ns}" for name, path in sorted(binaries.items())},
        hashlib.sha256(b"".join(p.read_bytes() for p in sorted(kind_files.rglob("*")) if p.is_file())).hexdigest(),
        containerd_config(references["pause"]),
        cni_config(),
        KUBELET_DEFAULTS,
        RESOLV_CONF,
    ]
    key = hashlib.sha256(json.dumps(key_inputs, sort_keys=True).encode()).hexdigest()[:16]
    name = node_image_name()
    if not force and (_labels_of(name) or {}).get(NODE_KEY_LABEL) == key:
        log(f"Node image {name} is up to date (key {key})")
        return name
    previous = image._buildah_image(name)
    log(f"Assembling the kind node image {name}")
    started = time.monotonic()
    container = _run("node: from", ["buildah", "from", "scratch"], log).strip().splitlines()[-1]
    try:
        mount = Path(_run("node: mount", ["buildah", "mount", container], log).strip().splitlines()[-1])
        _run("node: unpack root filesystem", ["tar", "-xpf", str(rootfs), "--numeric-owner", "-C", str(mount)], log)
        _install_files(mount, kind_files, binaries, references["pause"])
        preload = {archive: (ref, ref) for archive, ref in zip(archives, component_references, strict=True)}
        preload[pause_archive] = (image.PAUSE_IMAGE, references["pause"])
        _preload(mount / "var/lib/containerd", binaries["containerd"], preload, log)
        _run("node: umount", ["buildah", "umount", container], log)
        config = [
            "--env",
            "container=docker",
            "--stop-signal",
            "SIGRTMIN+3",
            "--entrypoint",
            json.dumps(["/usr/local/bin/entrypoint", "/sbin/init"]),
            "--label",
            f"{NODE_KEY_LABEL}={key}",
        ]
        _run("node: config", ["buildah", "config", *config, container], log)
        _run("node: commit", ["buildah", "commit", "--quiet", "--format", "docker", container, name], log)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)
    # The previous build, now untagged, would keep its 1.2 GB in the storage for good.
    if previous is not None and previous.get("FromImageID") != (image._buildah_image(name) or {}).get("FromImageID"):
        subprocess.run(["buildah", "rmi", str(previous.get("FromImageID"))], capture_output=True)
    log(f"Node image {name} built in {time.monotonic() - started:.0f}s")
    return name


# ---------------------------------------------------------------------------------------------
# A cluster: kind create / delete, and the host left as it was found
#
# kind deletes its node container and volume, but not what podman and netavark leave on the host:
# the "kind" network, net.ipv4.ip_forward switched on, nftables tables with NETAVARK chains, and
# empty libpod_parent cgroups. ``up`` records the host's state before the first cluster; ``down``
# deletes the cluster and restores that state once no podman container is left.

HOST_STATE_FILE = "host-before.json"
# The tables netavark writes its rules into (through iptables-nft).
NETAVARK_TABLES = (("ip", "filter"), ("ip", "nat"), ("ip6", "filter"), ("ip6", "nat"))


def _host_state_path() -> Path:
    return tools.cache_dir() / "kind" / HOST_STATE_FILE


def _nft_tables() -> list[str] | None:
    """``["ip filter", ...]`` as nft lists them, or None without the nft command."""
    if shutil.which("nft") is None:
        return None
    done = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    return [line.removeprefix("table ").strip() for line in done.stdout.splitlines() if line.startswith("table ")]


def record_host_state() -> dict[str, object]:
    """What ``down`` restores; kept from before the first cluster while clusters come and go."""
    path = _host_state_path()
    if path.is_file():
        recorded: dict[str, object] = json.loads(path.read_text())
        return recorded
    state: dict[str, object] = {
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
        "nft_tables": _nft_tables(),
        "lib_modules_created": not Path("/lib/modules").exists(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2) + "\n")
    return state


def _kind_env() -> dict[str, str]:
    return {**os.environ, **podman_env()}


def up(config: Path, kubeconfig: Path, log: Log = _stderr) -> None:
    """``kind create cluster`` from ``config`` on the node image made here (built when missing), on
    an internal network; the kubeconfig then points at the node's own address."""
    check_host(("podman", "buildah", "mmdebstrap", "go"))
    name = cluster_name(config)
    state = record_host_state()
    if state["lib_modules_created"]:
        Path("/lib/modules").mkdir(exist_ok=True)  # kind mounts it into the node; nothing reads it here
    kind = tools.ensure("kind", log)
    node_image = build_node_image(log)
    started = time.monotonic()
    ensure_network(log)
    argv = [str(kind), "create", "cluster", "--config", str(config), "--image", node_image]
    argv += ["--kubeconfig", str(kubeconfig), "--wait", "2m"]
    try:
        _run("kind create cluster", argv, log, env=_kind_env(), echo=lambda line: True)
    except KindError:
        log("kind create cluster failed; `orderflow kind down` removes what it left")
        raise
    server = f"https://{node_address(name)}:6443"
    text = kubeconfig.read_text()
    kubeconfig.write_text(re.sub(r"server: https://127\.0\.0\.1:\d+", f"server: {server}", text))
    log(f"Cluster up in {time.monotonic() - started:.0f}s; kubeconfig {kubeconfig} (server {server})")


def cluster_name(config: Path) -> str:
    """The cluster's name as kind reads it from its config (kind's default: "kind")."""
    try:
        loaded = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KindError(f"cannot read the kind config {config}: {exc}") from exc
    found = loaded.get("name") if isinstance(loaded, dict) else None
    return found if isinstance(found, str) and found else "kind"


# kind puts every node on the podman network "kind" and reuses it when it exists. Made here first
# as an internal network, it has no NAT and the node no default route: nothing in the node (an
# image pull, a DNS lookup) can reach beyond this machine, and netavark writes no firewall rules
# on the host. Without DNS there is no aardvark-dns forwarding to the host's resolver; the node
# finds itself through the /etc/hosts podman writes. The explicit gateway gives the host bridge
# an address (without it an internal network without DNS has none, and the host no route to the
# node). The cost: the API port kind publishes on 127.0.0.1 forwards nothing (no DNAT), so the
# kubeconfig names the node's address instead.
NETWORK_NAME = "kind"
NETWORK_SUBNET = "10.89.0.0/24"
NETWORK_GATEWAY = "10.89.0.1"


def ensure_network(log: Log) -> None:
    inspected = _podman("network", "inspect", NETWORK_NAME)
    if inspected.returncode == 0:
        found = json.loads(inspected.stdout)
        if not (found and found[0].get("internal")):
            raise KindError(
                f"podman network {NETWORK_NAME} exists and is not internal (plain kind made it?): its node "
                f"could reach beyond this machine. Remove it first: `podman network rm {NETWORK_NAME}` "
                "(with CONTAINERS_CONF from `orderflow kind env`)"
            )
        return
    argv = ["podman", "network", "create", "--internal", "--disable-dns"]
    argv += ["--subnet", NETWORK_SUBNET, "--gateway", NETWORK_GATEWAY, NETWORK_NAME]
    _run("podman network create", argv, log, env=_kind_env())


def node_address(name: str) -> str:
    """The control-plane node's address on the kind network, once the host routes to it through
    the network's bridge (never through the default route, which leads off this machine)."""
    node = f"{name}-control-plane"
    template = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
    done = _podman("inspect", node, "--format", template)
    addresses = done.stdout.split()
    if done.returncode != 0 or not addresses:
        raise KindError(f"no address of {node}: {done.stderr.strip()}")
    address = addresses[0]
    route = subprocess.run(["ip", "route", "get", address], capture_output=True, text=True).stdout
    bridge = json.loads(_podman("network", "inspect", NETWORK_NAME).stdout or "[{}]")[0].get("network_interface")
    if not bridge or f" dev {bridge} " not in route:
        raise KindError(f"the host does not route {address} through the kind bridge ({bridge}): {route.strip()}")
    return address


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, env=_kind_env())


def down(name: str, log: Log = _stderr) -> list[str]:
    """Delete the cluster, then whatever podman left on the host once no container is left.
    Returns what could not be cleaned, as sentences."""
    kind = tools.locate("kind")
    if kind is not None:
        _run("kind delete cluster", [str(kind), "delete", "cluster", "--name", name], log, env=_kind_env())
    left = _podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    if left:
        return [f"podman containers remain ({', '.join(left)}); the host's network state is left as it is"]
    if "kind" in _podman("network", "ls", "--format", "{{.Name}}").stdout.split():
        _podman("network", "rm", "kind")
    problems = _remove_netavark_rules(log)
    problems += _remove_empty_cgroups("libpod_parent")
    path = _host_state_path()
    if path.is_file():
        state = json.loads(path.read_text())
        Path("/proc/sys/net/ipv4/ip_forward").write_text(str(state["ip_forward"]))
        log(f"net.ipv4.ip_forward restored to {state['ip_forward']}")
        modules = Path("/lib/modules")
        if state.get("lib_modules_created") and modules.is_dir() and not any(modules.iterdir()):
            modules.rmdir()
        if not problems:
            path.unlink()
    return problems


def netavark_only(saved: str) -> bool:
    """Whether an ``iptables-save -t <table>`` output holds nothing but netavark's chains and rules
    (so the table, which iptables-nft made for netavark, can go)."""
    for line in saved.splitlines():
        chain = line.split()[0][1:] if line.startswith(":") else ""
        if chain and chain not in _BUILTIN_CHAINS and not chain.startswith("NETAVARK"):
            return False
        if line.startswith("-A ") and "NETAVARK" not in line:
            return False
    return True


_BUILTIN_CHAINS = ("INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING")


def _remove_netavark_rules(log: Log) -> list[str]:
    problems = []
    tables = _nft_tables()
    recorded = json.loads(_host_state_path().read_text()).get("nft_tables") if _host_state_path().is_file() else None
    for family, table in NETAVARK_TABLES:
        save = "iptables-save" if family == "ip" else "ip6tables-save"
        saved = subprocess.run([save, "-t", table], capture_output=True, text=True).stdout
        if "NETAVARK" not in saved:
            continue
        was_there = recorded is None or f"{family} {table}" in recorded
        if tables is not None and netavark_only(saved) and not was_there:
            subprocess.run(["nft", "delete", "table", family, table], check=False)
            log(f"nft table {family} {table} (netavark's only) deleted")
            continue
        # The table holds other rules, or was there before: take out netavark's chains only.
        command = "iptables" if family == "ip" else "ip6tables"
        for line in saved.splitlines():
            if line.startswith("-A ") and "-j NETAVARK" in line and not line.split()[1].startswith("NETAVARK"):
                subprocess.run([command, "-t", table, "-D", *shlex.split(line[3:])], check=False)
        chains = [line.split()[0][1:] for line in saved.splitlines() if line.startswith(":NETAVARK")]
        for chain in chains:
            subprocess.run([command, "-t", table, "-F", chain], check=False)
        for chain in chains:
            subprocess.run([command, "-t", table, "-X", chain], check=False)
        log(f"netavark's chains removed from {family} {table}")
        if tables is None and not was_there:
            problems.append(
                f"table {family} {table} is empty but left: deleting it needs nft (apt-get install nftables)"
            )
    return problems


def _remove_empty_cgroups(name: str) -> list[str]:
    problems = []
    for hierarchy in sorted(Path("/sys/fs/cgroup").iterdir()):
        top = hierarchy / name
        if not top.is_dir():
            continue
        for group in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                group.rmdir()
        try:
            top.rmdir()
        except OSError as exc:
            problems.append(f"cgroup {top} not removed: {exc}")
    return problems


def leftovers(before: dict[str, object]) -> list[str]:
    """What a cluster left on the host compared with ``before`` (``record_host_state``'s record):
    podman containers, the kind network, nft tables, ip_forward, libpod cgroups, /lib/modules."""
    found = []
    containers = _podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    if containers:
        found.append(f"podman containers {', '.join(containers)}")
    if NETWORK_NAME in _podman("network", "ls", "--format", "{{.Name}}").stdout.split():
        found.append(f"podman network {NETWORK_NAME}")
    tables, recorded = _nft_tables(), before.get("nft_tables")
    if tables is not None and isinstance(recorded, list):
        extra = sorted(set(tables) - set(recorded))
        if extra:
            found.append(f"nft tables {', '.join(extra)}")
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    if forward != before.get("ip_forward"):
        found.append(f"net.ipv4.ip_forward = {forward}")
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob("*/libpod_parent")]
    if cgroups:
        found.append(f"cgroups {', '.join(cgroups)}")
    if before.get("lib_modules_created") and Path("/lib/modules").exists():
        found.append("/lib/modules")
    return found
