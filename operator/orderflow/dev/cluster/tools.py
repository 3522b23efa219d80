"""Find or build the cluster's binaries: the control plane (etcd, kube-apiserver, kubectl, helm) and,
for the kind node image that runs Pods, the kind CLI and the node's own (kubelet, kubeadm,
kube-proxy, kube-scheduler, kube-controller-manager, containerd v2, crictl and CoreDNS).

No binary can be downloaded here, but the Go module proxy can be reached, so each tool is built
once from its Go module into a per-user cache keyed by version (like envtest's asset cache) and
reused from then on. A binary already in ``KUBEBUILDER_ASSETS`` or on ``PATH`` is used instead
when its version fits.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

KUBERNETES_VERSION = "1.36.3"
ETCD_VERSION = "3.6.16"
HELM_VERSION = "3.22.0"
ACTIONLINT_VERSION = "1.7.12"
# containerd 1.x stops working with kubelet 1.37; v2 builds from its Go module without cgo.
CONTAINERD_VERSION = "2.4.2"
COREDNS_VERSION = "1.15.0"
CLI_UTILS_VERSION = "0.37.2"  # sigs.k8s.io/cli-utils: kstatus
GOPHER_LUA_VERSION = "1.1.2"
# Prometheus 3.16.0 is the Go module's v0.316.0: promtool checks and unit-tests the charts' alerts.
PROMETHEUS_MODULE_VERSION = "0.316.0"
PROMETHEUS_VERSION = "3.16.0"  # github.com/yuin/gopher-lua: Argo CD's Lua interpreter
# The benchmark's peer (make bench-peer): the Temporal CLI's dev server. Newer tags do not build
# from the module proxy.
TEMPORAL_CLI_VERSION = "1.5.1"
# A kind cluster (`orderflow kind`): the kind CLI, and what its node image holds besides the node's
# own binaries: kubeadm (from the same k8s.io/kubernetes module) and crictl.
KIND_VERSION = "0.33.0"
CRI_TOOLS_VERSION = "1.37.0"

# k8s.io/kubernetes replaces every staging module with a local path that is not in the module
# zip; a throwaway module points each of them back at the published module instead.
_STAGING_MODULES = [
    "api",
    "apiextensions-apiserver",
    "apimachinery",
    "apiserver",
    "cli-runtime",
    "client-go",
    "cloud-provider",
    "cluster-bootstrap",
    "code-generator",
    "component-base",
    "component-helpers",
    "controller-manager",
    "cri-api",
    "cri-client",
    "cri-streaming",
    "csi-translation-lib",
    "dynamic-resource-allocation",
    "endpointslice",
    "externaljwt",
    "kms",
    "kube-aggregator",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "metrics",
    "mount-utils",
    "pod-security-admission",
    "sample-apiserver",
    "streaming",
]


class ToolError(RuntimeError):
    """A tool could not be found or built; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Tool:
    name: str
    version: str
    # Accepts the `--version` output of a binary found outside the cache.
    fits: Callable[[str], bool]
    version_args: tuple[str, ...] = ("--version",)
    # Bumped when the build recipe changes what an already-cached binary of the same version does:
    # it is part of the cache key, so the fixed binary is built instead of the stale one reused.
    recipe: int = 0


def _minor_within(output: str, prefix: str, major: int, minors: range) -> bool:
    match = re.search(rf"{prefix}v?(\d+)\.(\d+)\.(\d+)", output)
    if match is None:
        return False
    return int(match[1]) == major and int(match[2]) in minors


_KUBE_MINOR = int(KUBERNETES_VERSION.split(".")[1])
TOOLS = {
    "etcd": Tool("etcd", ETCD_VERSION, lambda out: _minor_within(out, "etcd Version: ", 3, range(6, 8))),
    "kube-apiserver": Tool(
        "kube-apiserver",
        KUBERNETES_VERSION,
        lambda out: _minor_within(out, "Kubernetes ", 1, range(_KUBE_MINOR - 1, _KUBE_MINOR + 2)),
    ),
    "kubectl": Tool(
        "kubectl",
        KUBERNETES_VERSION,
        # kubectl supports one minor version of skew either way.
        lambda out: _minor_within(out, "Client Version: ", 1, range(_KUBE_MINOR - 1, _KUBE_MINOR + 2)),
        ("version", "--client"),
    ),
    # Recipe 1: the default Kubernetes version of `helm template` and `helm lint` is set, as upstream does.
    "helm": Tool(
        "helm", HELM_VERSION, lambda out: _minor_within(out, "", 3, range(14, 100)), ("version", "--short"), recipe=1
    ),
}
# Only the tests use these: `make demo` never waits for them (about 3 of a cold demo's 8 minutes).
TEST_TOOLS = {
    # Checks .github/workflows in the tests.
    "actionlint": Tool(
        "actionlint", ACTIONLINT_VERSION, lambda out: _minor_within(out, "", 1, range(7, 100)), ("-version",)
    ),
    "promtool": Tool(
        "promtool", PROMETHEUS_MODULE_VERSION, lambda out: _minor_within(out, "promtool, version ", 3, range(0, 100))
    ),
    # The tests read every phase's status with the kstatus library (kstatus/main.go beside this file).
    "kstatus": Tool("kstatus", CLI_UTILS_VERSION, lambda out: f"cli-utils v{CLI_UTILS_VERSION}" in out, ("-version",)),
    # ... and run the Argo CD health check (gitops/argocd/health.lua) as Argo CD does (luahealth/).
    "lua-health": Tool(
        "lua-health", GOPHER_LUA_VERSION, lambda out: f"gopher-lua v{GOPHER_LUA_VERSION}" in out, ("-version",)
    ),
}


# Small Go programs of ours (main.go in a folder beside this file) and the module each needs.
GO_PROGRAMS = {
    "kstatus": ("kstatus", "sigs.k8s.io/cli-utils"),
    "lua-health": ("luahealth", "github.com/yuin/gopher-lua"),
}


def _kube_component(name: str) -> Tool:
    return Tool(
        name, KUBERNETES_VERSION, lambda out: _minor_within(out, "Kubernetes ", 1, range(_KUBE_MINOR, _KUBE_MINOR + 1))
    )


# Only `orderflow kind` needs these (the kind CLI, and what its node image holds): the fast control
# plane never builds them. coredns-kubeadm is CoreDNS with the plugins kubeadm's Corefile uses.
NODE_COMPONENTS = ("kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager")
KIND_TOOLS = {
    **{name: _kube_component(name) for name in NODE_COMPONENTS},
    # The cache directory also holds containerd-shim-runc-v2 and ctr, built in the same step.
    "containerd": Tool(
        "containerd", CONTAINERD_VERSION, lambda out: _minor_within(out, "containerd/v2 ", 2, range(0, 100))
    ),
    "kubeadm": Tool(
        "kubeadm",
        KUBERNETES_VERSION,
        lambda out: _minor_within(out, "", 1, range(_KUBE_MINOR, _KUBE_MINOR + 1)),
        ("version", "-o", "short"),
    ),
    "kind": Tool("kind", KIND_VERSION, lambda out: f"kind v{KIND_VERSION} " in out, ("version",)),
    "crictl": Tool("crictl", CRI_TOOLS_VERSION, lambda out: f"crictl version v{CRI_TOOLS_VERSION}" in out),
    "coredns-kubeadm": Tool(
        "coredns-kubeadm",
        COREDNS_VERSION,
        lambda out: _minor_within(out, "CoreDNS-", 1, range(11, 100)),
        ("-version",),
    ),
}
# Only `make bench-peer` needs this one.
PEER_TOOLS = {
    "temporal": Tool(
        "temporal", TEMPORAL_CLI_VERSION, lambda out: f"temporal version {TEMPORAL_CLI_VERSION} " in out, ("--version",)
    ),
}
ALL_TOOLS = {**TOOLS, **TEST_TOOLS, **KIND_TOOLS, **PEER_TOOLS}


def cache_dir() -> Path:
    explicit = os.environ.get("ORDERFLOW_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orderflow"


def cached_path(tool: Tool) -> Path:
    # Recipe 0 keeps the original key, so a recipe change rebuilds only the tool it concerns.
    revision = f"-r{tool.recipe}" if tool.recipe else ""
    return cache_dir() / "bin" / f"{tool.name}-v{tool.version}{revision}" / tool.name


def _version_output(binary: Path, tool: Tool) -> str:
    try:
        done = subprocess.run([str(binary), *tool.version_args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + done.stderr


def _candidates(name: str) -> list[Path]:
    found = []
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / name).is_file():
        found.append(Path(assets) / name)
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    return found


def locate(name: str) -> Path | None:
    """Return a usable binary without building: the cache first, then KUBEBUILDER_ASSETS and PATH."""
    tool = ALL_TOOLS[name]
    cached = cached_path(tool)
    if cached.is_file():  # the cache is keyed by version and written atomically: no need to run it
        return cached
    for candidate in _candidates(name):
        if tool.fits(_version_output(candidate, tool)):
            return candidate
    return None


def ensure(name: str, log: Callable[[str], None] = print) -> Path:
    """Return a usable binary, building it into the cache first when none is found."""
    found = locate(name)
    if found:
        return found
    tool = ALL_TOOLS[name]
    _build(tool, log)
    return cached_path(tool)


def ensure_all(log: Callable[[str], None] = print, group: dict[str, Tool] = TOOLS) -> dict[str, Path]:
    return {name: ensure(name, log) for name in group}


# ---------------------------------------------------------------------------------------------
# Building from Go modules


def _go() -> str:
    go = shutil.which("go")
    if not go:
        raise ToolError(
            "Go is needed to build the control plane once (no binary can be downloaded here) and "
            "was not found on PATH. Install Go >= 1.26, or put etcd, kube-apiserver, kubectl and "
            "helm on PATH or in KUBEBUILDER_ASSETS."
        )
    return go


def _go_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CGO_ENABLED="0", GOFLAGS="-mod=mod", GOWORK="off")
    env.setdefault("GOTOOLCHAIN", "local")
    env["PWD"] = str(workdir)
    return env


def _run_go(args: list[str], workdir: Path, label: str, log: Callable[[str], None]) -> None:
    """Run a go command, printing a heartbeat so a long cold build is visibly alive."""
    started = time.monotonic()
    lines: list[str] = []
    proc = subprocess.Popen(
        [_go(), *args],
        cwd=workdir,
        env=_go_env(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(15):
            log(f"  {label}: {len(lines)} steps, {time.monotonic() - started:.0f}s")

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
    code = proc.wait()
    done.set()
    if code != 0:
        tail = "\n".join(lines[-30:])
        raise ToolError(f"`go {' '.join(args)}` failed for {label} (exit {code}):\n{tail}")
    log(f"  {label}: done in {time.monotonic() - started:.0f}s")


def _ldflags(pairs: dict[str, str]) -> str:
    return " ".join(["-s", "-w", *(f"-X {key}={value}" for key, value in pairs.items())])


def _kube_version_flags() -> dict[str, str]:
    # Without these the server reports v0.0.0-master on /version, which breaks Helm's kubeVersion.
    major, minor, _ = KUBERNETES_VERSION.split(".")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    flags = {}
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags.update(
            {
                f"{pkg}.gitVersion": f"v{KUBERNETES_VERSION}",
                f"{pkg}.gitMajor": major,
                f"{pkg}.gitMinor": minor,
                f"{pkg}.gitTreeState": "clean",
                f"{pkg}.buildDate": now,
            }
        )
    return flags


def _helm_version_flags(workdir: Path) -> dict[str, str]:
    """Helm's version, and the Kubernetes version `helm template` and `helm lint` assume without a
    cluster. Left unset, Helm defaults to v1.20.0 and refuses any chart with a newer `kubeVersion`
    (ours says >=1.30). Helm's Makefile derives it from the client-go it builds with (v0.N.x gives
    1.N; the Makefile's "major + 1"), so the same is done here: this helm behaves as a released one."""
    done = subprocess.run(
        [_go(), "list", "-m", "-f", "{{.Version}}", "k8s.io/client-go"],
        cwd=workdir,
        env=_go_env(workdir),
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.fullmatch(r"v0\.(\d+)\.\d+\S*", done.stdout.strip())
    if done.returncode != 0 or match is None:
        raise ToolError(f"cannot tell which client-go helm v{HELM_VERSION} builds with: {done.stdout}{done.stderr}")
    kube = {"k8sVersionMajor": "1", "k8sVersionMinor": match[1]}
    return {
        "helm.sh/helm/v3/internal/version.version": f"v{HELM_VERSION}",
        "helm.sh/helm/v3/internal/version.gitTreeState": "clean",
        **{
            f"helm.sh/helm/v3/pkg/{pkg}.{key}": value
            for pkg in ("chartutil", "lint/rules")
            for key, value in kube.items()
        },
    }


def _go_mod(workdir: Path, name: str, require: str, more: str = "") -> None:
    """A throwaway module that requires what is to be built (``module@version``-like ``require``)."""
    (workdir / "go.mod").write_text(f"module orderflow.local/{name}\n\ngo 1.26.0\n\n{more}require {require}\n")


def _tools_go(workdir: Path, packages: list[str]) -> None:
    """Blank imports, so one `go mod tidy` resolves every command to be built."""
    imports = "".join(f'\t_ "{package}"\n' for package in packages)
    (workdir / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports})\n")


def _kubernetes_module(workdir: Path, commands: tuple[str, ...]) -> None:
    staging = ".".join(("0", *KUBERNETES_VERSION.split(".")[1:]))
    replaces = "\n".join(f"replace k8s.io/{m} => k8s.io/{m} v{staging}" for m in _STAGING_MODULES)
    _go_mod(
        workdir, "kubernetes", f"k8s.io/kubernetes v{KUBERNETES_VERSION}\n\n{replaces}", "godebug default=go1.26\n\n"
    )
    _tools_go(workdir, [f"k8s.io/kubernetes/cmd/{command}" for command in commands])


def _etcd_module(workdir: Path) -> None:
    _go_mod(workdir, "etcd", f"go.etcd.io/etcd/server/v3 v{ETCD_VERSION}")
    (workdir / "main.go").write_text(
        'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
        "func main() { etcdmain.Main(os.Args) }\n"
    )


def _build(tool: Tool, log: Callable[[str], None]) -> None:
    target = cached_path(tool)
    target.parent.mkdir(parents=True, exist_ok=True)
    log(
        f"Building {tool.name} v{tool.version} from Go modules into {target.parent} "
        "(once; a cold build takes several minutes on 2 cores)"
    )
    with tempfile.TemporaryDirectory(prefix=f"orderflow-build-{tool.name}-") as tmp:
        workdir = Path(tmp)
        partial = target.with_name(target.name + ".partial")
        if tool.name in ("kube-apiserver", "kubectl", "kubeadm", *NODE_COMPONENTS):
            _kubernetes_module(workdir, (tool.name,))
            _run_go(["mod", "tidy"], workdir, f"{tool.name} modules", log)
            package = f"k8s.io/kubernetes/cmd/{tool.name}"
            flags = _ldflags(_kube_version_flags())
            _run_go(["build", "-v", "-ldflags", flags, "-o", str(partial), package], workdir, tool.name, log)
        elif tool.name == "etcd":
            _etcd_module(workdir)
            _run_go(["mod", "tidy"], workdir, "etcd modules", log)
            _run_go(["build", "-v", "-ldflags", "-s -w", "-o", str(partial), "."], workdir, "etcd", log)
        elif tool.name == "containerd":
            _containerd_module(workdir)
            _run_go(["mod", "tidy"], workdir, "containerd modules", log)
            partial.mkdir(exist_ok=True)
            flags = _ldflags({"github.com/containerd/containerd/v2/version.Version": f"v{tool.version}"})
            commands = [f"github.com/containerd/containerd/v2/cmd/{c}" for c in CONTAINERD_COMMANDS]
            tags = "no_btrfs no_devmapper no_zfs no_aufs"  # snapshotters that need cgo or host tools
            _run_go(
                ["build", "-v", "-tags", tags, "-ldflags", flags, "-o", f"{partial}/", *commands],
                workdir,
                "containerd",
                log,
            )
            _replace_dir(partial, target.parent)
            return _check_built(tool, target)
        elif tool.name == "coredns-kubeadm":
            _coredns_module(workdir, COREDNS_KUBEADM_PLUGINS)
            _run_go(["mod", "tidy"], workdir, "coredns modules", log)
            _run_go(["build", "-v", "-ldflags", "-s -w", "-o", str(partial), "."], workdir, tool.name, log)
        elif tool.name == "helm":
            _build_module_command(tool, "helm.sh/helm/v3", "cmd/helm", _helm_version_flags, workdir, partial, log)
        elif tool.name in GO_PROGRAMS:
            source, module = GO_PROGRAMS[tool.name]
            _go_mod(workdir, tool.name, f"{module} v{tool.version}")
            shutil.copy(Path(__file__).parent / source / "main.go", workdir / "main.go")
            _run_go(["mod", "tidy"], workdir, f"{tool.name} modules", log)
            flags = _ldflags({"main.version": f"v{tool.version}"})
            _run_go(["build", "-v", "-ldflags", flags, "-o", str(partial), "."], workdir, tool.name, log)
        elif tool.name == "promtool":
            versions = {"github.com/prometheus/common/version.Version": PROMETHEUS_VERSION}
            _build_module_command(
                tool, "github.com/prometheus/prometheus", "cmd/promtool", versions, workdir, partial, log
            )
        elif tool.name == "temporal":
            versions = {"github.com/temporalio/cli/temporalcli.Version": tool.version}
            _build_module_command(tool, "github.com/temporalio/cli", "cmd/temporal", versions, workdir, partial, log)
        elif tool.name == "kind":
            # kind's version is a constant in its source: no flags needed.
            _build_module_command(tool, "sigs.k8s.io/kind", "", {}, workdir, partial, log)
        elif tool.name == "crictl":
            versions = {"sigs.k8s.io/cri-tools/pkg/version.Version": f"v{tool.version}"}
            _build_module_command(tool, "sigs.k8s.io/cri-tools", "cmd/crictl", versions, workdir, partial, log)
        elif tool.name == "actionlint":
            versions = {"github.com/rhysd/actionlint.version": f"v{tool.version}"}
            _build_module_command(
                tool, "github.com/rhysd/actionlint", "cmd/actionlint", versions, workdir, partial, log
            )
        else:  # pragma: no cover - TOOLS and this function are kept in step
            raise ToolError(f"no build recipe for {tool.name}")
        partial.replace(target)  # atomic: a killed build never leaves a half-written binary
    _check_built(tool, target)


def _check_built(tool: Tool, target: Path) -> None:
    if not tool.fits(_version_output(target, tool)):
        raise ToolError(f"built {target} but its version output does not match v{tool.version}")


def _replace_dir(built: Path, target_dir: Path) -> None:
    """Move a multi-binary build into the cache directory; the main binary moves last, so the
    cache (which trusts the main binary's presence) never sees a half-filled directory."""
    main = target_dir.name.rsplit("-v", 1)[0]
    for binary in sorted(built.iterdir(), key=lambda path: path.name == main):
        binary.replace(target_dir / binary.name)
    built.rmdir()


CONTAINERD_COMMANDS = ("containerd", "containerd-shim-runc-v2", "ctr")


def _containerd_module(workdir: Path) -> None:
    _go_mod(workdir, "containerd", f"github.com/containerd/containerd/v2 v{CONTAINERD_VERSION}")
    _tools_go(workdir, [f"github.com/containerd/containerd/v2/cmd/{c}" for c in CONTAINERD_COMMANDS])


# The plugins of the Corefile kubeadm writes, in CoreDNS's own order (plugin.cfg): the order of
# this list is the order a query passes through them.
COREDNS_KUBEADM_PLUGINS = (
    "reload",
    "ready",
    "health",
    "prometheus",
    "errors",
    "log",
    "loadbalance",
    "cache",
    "kubernetes",
    "loop",
    "forward",
)

_COREDNS_PACKAGES = {"prometheus": "metrics"}


def _coredns_module(workdir: Path, plugins: tuple[str, ...]) -> None:
    """Only the plugins a cluster needs: CoreDNS's full set pulls in every cloud SDK."""
    _go_mod(workdir, "coredns", f"github.com/coredns/coredns v{COREDNS_VERSION}")
    # Each plugin's package is named after its directive, except prometheus's.
    packages = [_COREDNS_PACKAGES.get(plugin, plugin) for plugin in plugins]
    imports = "".join(f'\t_ "github.com/coredns/coredns/plugin/{package}"\n' for package in packages)
    directives = ", ".join(f'"{plugin}"' for plugin in plugins)
    (workdir / "main.go").write_text(
        "package main\n\nimport (\n"
        '\t"github.com/coredns/coredns/core/dnsserver"\n\t"github.com/coredns/coredns/coremain"\n'
        f"{imports})\n\n"
        f"func init() {{ dnsserver.Directives = []string{{{directives}}} }}\n\n"
        "func main() { coremain.Run() }\n"
    )


def _build_module_command(
    tool: Tool,
    module: str,
    command: str,
    ldflags: Callable[[Path], dict[str, str]] | dict[str, str],
    workdir: Path,
    output: Path,
    log: Callable[[str], None],
) -> None:
    """Modules without replace directives build from a throwaway module that requires them.
    ``ldflags`` may be a function of that module, for flags read from its resolved dependencies."""
    (workdir / "go.mod").write_text(f"module orderflow.local/{tool.name}\n\ngo 1.26.0\n")
    _run_go(["get", f"{module}@v{tool.version}"], workdir, f"{tool.name} modules", log)
    flags = _ldflags(ldflags(workdir) if callable(ldflags) else ldflags)
    package = f"{module}/{command}" if command else module
    _run_go(["build", "-v", "-ldflags", flags, "-o", str(output), package], workdir, tool.name, log)


def selection(args: list[str]) -> dict[str, Tool]:
    """The tools ``main`` builds for these arguments."""
    named = [a for a in args if not a.startswith("-")]
    unknown = [name for name in named if name not in ALL_TOOLS]
    if unknown:
        raise SystemExit(f"no tool {', '.join(unknown)}: one of {', '.join(ALL_TOOLS)}")
    if named:
        return {name: ALL_TOOLS[name] for name in named}
    group = dict(TOOLS)
    if "--tests" in args:
        group.update(TEST_TOOLS)
    if "--kind" in args:
        group.update(KIND_TOOLS)
    return group


def main(argv: list[str] | None = None) -> None:
    """`python -m orderflow.dev.cluster.tools [--tests] [--kind] [NAME ...]` builds ahead of time
    (CI warm-up): the control plane's tools; with --tests also those only the tests use, with
    --kind the kind CLI and its node image's binaries too; or the tools named (e.g. temporal)."""
    group = selection(sys.argv[1:] if argv is None else argv)
    for name, path in ensure_all(lambda line: print(line, file=sys.stderr, flush=True), group).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
