"""Build the controllers' image, and the kind node's pause image, with no registry.

The project's ``Dockerfile`` is built unchanged with buildah. Its ``FROM python:3.11-slim`` cannot be
pulled here, so a stand-in is made once: a Debian root filesystem with python3 and pip, created by
mmdebstrap from the host's apt sources, cached as a tarball in ``<cache>/images/`` (keyed by what
determines it) and imported FROM scratch under both names the short name resolves to. The pause
image every Pod sandbox needs is a static Go program (``pause/main.go``) packed FROM scratch.

Images leave buildah's storage as docker-archive tarballs in ``<cache>/images/``, which ``kind load
image-archive`` loads into a kind node (the pause image is preloaded into the node image itself,
``orderflow.dev.cluster.kind``). Everything here needs root (buildah's storage in
``/var/lib/containers``) and installs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from orderflow.dev import checkout
from orderflow.dev.cluster import tools

Log = Callable[[str], None]

# Bump when the base recipe below changes in a way the key does not see.
BASE_RECIPE_VERSION = 1
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-pip", "python3-venv", "passwd", "ca-certificates")
BASE_IMAGE = "localhost/python:3.11-slim"
# What `FROM python:3.11-slim` means to buildah; both names point at the same local image.
BASE_ALIAS = "docker.io/library/python:3.11-slim"
BASE_KEY_LABEL = "dev.orderflow.base-key"
BASE_ENV = ("LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
# Documentation is of no use in a controller image and adds tens of MB to every image load.
_DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_APT_SOURCES = Path("/etc/apt")

PAUSE_RECIPE_VERSION = 1
PAUSE_IMAGE = "localhost/pause:local"
PROJECT_REPOSITORY = "localhost/orderflow"
DEFAULT_TAG = "dev"

APT_INSTALL = "apt-get install -y buildah mmdebstrap"
# Never sent to the build, whatever .dockerignore says: build leftovers of the editable install.
ALWAYS_IGNORED = ("**/__pycache__", "**/*.pyc", "**/*.egg-info")

# buildah bud's progress lines: "STEP 2/5: COPY ...", prefixed with "[1/2] " in multi-stage builds.
_BUD_STEP = re.compile(r"(\[\d+/\d+\] )?STEP \d+")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class ImageError(RuntimeError):
    """An image could not be built; the message names the step and what to do."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def images_dir() -> Path:
    return tools.cache_dir() / "images"


def project_archive(tag: str = DEFAULT_TAG) -> Path:
    return images_dir() / f"orderflow-{tag}.tar"


def check_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise ImageError(f"{tag!r} is not a valid image tag (letters, digits, `_`, `.`, `-`; at most 128)")
    return tag


# ---------------------------------------------------------------------------------------------
# Host checks and running commands


def check_host(commands: Iterable[str] = ("buildah", "mmdebstrap")) -> None:
    """Fail with one actionable message when a command is missing or we are not root."""
    missing = [command for command in commands if shutil.which(command) is None]
    apt = [command for command in missing if command in ("buildah", "mmdebstrap")]
    problems = []
    if apt:
        problems.append(f"{' and '.join(apt)} not found on PATH; install them (as root) with:\n    {APT_INSTALL}")
    if "go" in missing:
        problems.append("go not found on PATH; the pause image is built from source with Go >= 1.26")
    if "buildah" in commands and shutil.which("crun") and hybrid_cgroups():
        # buildah prefers crun when it is installed (podman's package pulls it in), and crun 1.8
        # stops every RUN step on this layout with "cgroups in hybrid mode not supported".
        problems.append(
            "crun is installed and refuses this host's hybrid cgroups (buildah prefers it): apt-get remove crun"
        )
    if os.geteuid() != 0:
        problems.append(
            "buildah needs root here (its storage is /var/lib/containers; there is no rootless setup): "
            "run as root, e.g. `sudo .venv/bin/orderflow image build`"
        )
    if problems:
        raise ImageError("\n".join(problems))


def hybrid_cgroups(root: Path = Path("/sys/fs/cgroup")) -> bool:
    """cgroup v1 controllers with the v2 hierarchy mounted beside them (``unified``), as here."""
    return (root / "unified").is_dir() and (root / "memory").is_dir()


def _run(
    step: str,
    argv: Sequence[str],
    log: Log,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    echo: Callable[[str], bool] = lambda line: False,
) -> str:
    """Run one step, with a heartbeat on long ones; on failure say which step and show its tail."""
    started = time.monotonic()
    lines: list[str] = []
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise ImageError(f"{step}: could not start `{argv[0]}`: {exc}") from exc
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(20):
            last = lines[-1][:100] if lines else ""
            log(f"  {step}: {time.monotonic() - started:.0f}s ... {last}")

    threading.Thread(target=heartbeat, daemon=True).start()
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.rstrip()
        lines.append(line)
        if echo(line):
            log(f"  {line}")
    code = proc.wait()
    done.set()
    if code != 0:
        tail = "\n".join(lines[-30:])
        raise ImageError(f"{step} failed (exit {code}): {shlex.join(argv)}\n{tail}")
    log(f"  {step}: done in {time.monotonic() - started:.0f}s")
    return "\n".join(lines)


def _buildah_image(name: str) -> dict[str, Any] | None:
    """buildah's view of a local image, or None when it has none by that name."""
    done = subprocess.run(["buildah", "inspect", "--type", "image", name], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def _labels(inspected: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] | None = inspected.get("OCIv1", {}).get("config", {}).get("Labels")
    return labels or {}


def _scratch_image(
    image: str, source: Path, dest: str, config: Sequence[str], log: Log, add_options: Sequence[str] = ()
) -> None:
    """Commit ``image`` FROM scratch: one ``buildah add`` (which unpacks a tarball), then ``buildah config``."""
    step = image.rsplit("/", 1)[-1]
    container = _run(f"{step}: buildah from scratch", ["buildah", "from", "scratch"], log).strip().splitlines()[-1]
    try:
        _run(f"{step}: buildah add", ["buildah", "add", *add_options, container, str(source), dest], log)
        _run(f"{step}: buildah config", ["buildah", "config", *config, container], log)
        _run(f"{step}: buildah commit", ["buildah", "commit", "--quiet", "--format", "docker", container, image], log)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)


def _partial(target: Path) -> Path:
    """Where to write ``target`` before renaming it: per process, as two builds may run at once."""
    return target.with_name(f"{target.name}.{os.getpid()}.partial")


def _push(image: str, archive: Path, log: Log) -> None:
    """Write a docker-archive atomically: a killed push never leaves a truncated tarball behind."""
    partial = _partial(archive)
    partial.unlink(missing_ok=True)  # docker-archive refuses to write into an existing file
    _run(f"save {image}", ["buildah", "push", "--quiet", image, f"docker-archive:{partial}:{image}"], log)
    partial.replace(archive)


# ---------------------------------------------------------------------------------------------
# The base image: python:3.11-slim made locally


def host_apt_sources(root: Path = HOST_APT_SOURCES) -> list[Path]:
    """The host's apt source files that hold entries; mmdebstrap pastes each into the rootfs."""
    candidates = [root / "sources.list", *sorted((root / "sources.list.d").glob("*.list"))]
    candidates += sorted((root / "sources.list.d").glob("*.sources"))
    return [path for path in candidates if path.is_file() and _significant(path.read_text())]


def _significant(text: str) -> str:
    """Source text without comments and blank lines: what apt reads, and what the key hashes."""
    kept = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in kept if line and not line.startswith("#"))


def base_key(
    suite: str,
    packages: Iterable[str],
    sources: Sequence[str] = (),
    ca_bundle: bytes = b"",
    recipe: int = BASE_RECIPE_VERSION,
) -> str:
    """A short digest of everything the root filesystem is made from (package order is irrelevant)."""
    recipe_inputs = {
        "recipe": recipe,
        "suite": suite,
        "packages": sorted(set(packages)),
        "sources": [_significant(text) for text in sources],
        "ca_bundle": hashlib.sha256(ca_bundle).hexdigest() if ca_bundle else "",
    }
    return hashlib.sha256(json.dumps(recipe_inputs, sort_keys=True).encode()).hexdigest()[:16]


def _host_base_key() -> tuple[str, list[Path]]:
    sources = host_apt_sources()
    ca_bundle = HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.is_file() else b""
    key = base_key(BASE_SUITE, BASE_PACKAGES, [path.read_text() for path in sources], ca_bundle)
    return key, sources


def base_rootfs(key: str, sources: Sequence[Path], log: Log = _stderr) -> Path:
    """The cached root filesystem tarball for this key, made with mmdebstrap when missing."""
    tarball = images_dir() / f"base-{BASE_SUITE}-python-{key}.tar"
    if tarball.is_file():
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    log(f"Making the {BASE_SUITE} + python3 root filesystem with mmdebstrap (once; about 2-3 minutes)")
    hooks = [
        # python:3.11-slim lets pip install system-wide; Debian's python refuses without this.
        'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
        # apt lists are only needed to install more packages, which the Dockerfile does not.
        'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
    ]
    if HOST_CA_BUNDLE.is_file():
        # pip in the build reaches PyPI through whatever the host trusts.
        bundle = shlex.quote(str(HOST_CA_BUNDLE))
        hooks.append(f'cp {bundle} "$1"/etc/ssl/certs/ca-certificates.crt')
    return debian_tarball(tarball, BASE_SUITE, BASE_PACKAGES, hooks, sources, log)


def debian_tarball(
    tarball: Path, suite: str, packages: Sequence[str], hooks: Sequence[str], sources: Sequence[Path], log: Log
) -> Path:
    """A minbase root filesystem of ``suite`` with ``packages`` written to ``tarball`` by
    mmdebstrap (documentation left out but the copyrights, ``hooks`` run on it as customize
    hooks), through a partial file so that a failed build leaves nothing; ImageError if it fails.
    Also the kind node's (``kind.node_rootfs``)."""
    partial = _partial(tarball)
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--format=tar",
        f"--include={','.join(packages)}",
        *(f"--dpkgopt=path-exclude={pattern}" for pattern in _DPKG_EXCLUDES),
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        *(f"--customize-hook={hook}" for hook in hooks),
        suite,
        str(partial),
        # With no source file, mmdebstrap uses deb.debian.org with updates and security.
        *(str(path) for path in sources),
    ]
    try:
        _run("mmdebstrap", argv, log)
    except ImageError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(tarball)
    return tarball


def ensure_base(log: Log = _stderr) -> str:
    """Make `python:3.11-slim` resolve locally; skipped when buildah already has this key's image."""
    key, sources = _host_base_key()
    present = _buildah_image(BASE_IMAGE)
    if present is None or _labels(present).get(BASE_KEY_LABEL) != key:
        tarball = base_rootfs(key, sources, log)
        log(f"Importing {tarball.name} as {BASE_IMAGE}")
        config = ["--cmd", "python3", "--label", f"{BASE_KEY_LABEL}={key}"]
        config += [arg for env in BASE_ENV for arg in ("--env", env)]
        _scratch_image(BASE_IMAGE, tarball, "/", config, log)
    else:
        log(f"Base image {BASE_IMAGE} is up to date (key {key})")
    _run("base: tag", ["buildah", "tag", BASE_IMAGE, BASE_ALIAS], lambda line: None)
    return key


# ---------------------------------------------------------------------------------------------
# The pause image: the kind node's sandbox image


def _pause_source() -> str:
    return resources.files("orderflow.dev.cluster").joinpath("pause/main.go").read_text()


def _pause_go_mod() -> str:
    return "module orderflow.local/pause\n\ngo 1.26.0\n"


def pause_key(source: str, go_mod: str, recipe: int = PAUSE_RECIPE_VERSION) -> str:
    return hashlib.sha256(f"{recipe}\n{go_mod}\n{source}".encode()).hexdigest()[:16]


def pause_archive(log: Log = _stderr) -> Path:
    """The pause image as a docker-archive for ``ctr images import``; built once, then reused."""
    source, go_mod = _pause_source(), _pause_go_mod()
    archive = images_dir() / f"pause-{pause_key(source, go_mod)}.tar"
    if archive.is_file():
        return archive
    check_host(("buildah", "go"))
    archive.parent.mkdir(parents=True, exist_ok=True)
    log(f"Building the pause image {PAUSE_IMAGE}")
    with tempfile.TemporaryDirectory(prefix="orderflow-pause-") as tmp:
        workdir = Path(tmp)
        (workdir / "go.mod").write_text(go_mod)
        (workdir / "main.go").write_text(source)
        # Static (no cgo), and built by the Go on PATH: no toolchain download.
        env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOWORK": "off", "GOFLAGS": ""}
        argv = [shutil.which("go") or "go", "build", "-trimpath", "-ldflags=-s -w", "-o", "pause", "."]
        _run("pause: go build", argv, log, env=env, cwd=workdir)
        config = ["--entrypoint", '["/pause"]', "--user", "65535:65535"]
        _scratch_image(PAUSE_IMAGE, workdir / "pause", "/pause", config, log, add_options=("--chmod", "0755"))
    _push(PAUSE_IMAGE, archive, log)
    return archive


# ---------------------------------------------------------------------------------------------
# The project image: the Dockerfile, unchanged


def copy_sources(dockerfile: str) -> list[str]:
    """The context paths the Dockerfile's COPY and ADD read (not `--from` stages, not URLs)."""
    joined = re.sub(r"\\[ \t]*\n", " ", dockerfile)
    found: list[str] = []
    for line in joined.splitlines():
        words = line.strip().split(None, 1)
        if len(words) < 2 or words[0].upper() not in ("COPY", "ADD"):
            continue
        rest = words[1].strip()
        flags = []
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.strip()
        if any(flag.startswith("--from") for flag in flags):
            continue
        parts = json.loads(rest) if rest.startswith("[") else rest.split()
        for source in parts[:-1]:
            if "://" not in source and source not in found:
                found.append(source)
    return found


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """One .dockerignore pattern as Docker's patternmatcher compiles it (`**` spans directories)."""
    out, i = "^", 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                out += ".*" if i + 1 >= len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(char)
            else:  # a character class passes through, as in Docker
                out += pattern[i : end + 1]
                i = end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + "$")


def parse_dockerignore(text: str) -> list[tuple[re.Pattern[str], bool]]:
    """Each pattern with whether it excludes (False for a `!` exception), in file order."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line[1:].strip() if include else line).lstrip("/")
        rules.append((_ignore_regex(pattern), not include))
    return rules


def is_ignored(relative: str, rules: Sequence[tuple[re.Pattern[str], bool]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for regex, excludes in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = excludes
    return ignored


def context_files(root: Path) -> list[str]:
    """The files a build of root's Dockerfile needs, relative to root, sorted: the Dockerfile and
    what its COPY/ADD read, minus .dockerignore and build leftovers (__pycache__, *.egg-info)."""
    dockerfile = root / "Dockerfile"
    ignore = root / ".dockerignore"
    rules = parse_dockerignore(ignore.read_text() if ignore.is_file() else "")
    rules += parse_dockerignore("\n".join(ALWAYS_IGNORED))
    selected = {"Dockerfile"}
    for source in copy_sources(dockerfile.read_text()):
        matches = sorted(root.glob(source.lstrip("/"))) if any(c in source for c in "*?[") else [root / source]
        if not any(match.exists() for match in matches):
            raise ImageError(f"the Dockerfile copies {source!r}, which is not in {root}")
        for match in matches:
            for path in [match] if match.is_file() else sorted(match.rglob("*")):
                relative = path.relative_to(root).as_posix()
                if path.is_file() and not is_ignored(relative, rules):
                    selected.add(relative)
    return sorted(selected)


def default_context() -> Path:
    """The checkout this package runs from (editable install), else the current directory."""
    root = checkout()
    return root if root is not None and (root / "Dockerfile").is_file() else Path.cwd()


def build_project(tag: str = DEFAULT_TAG, context: Path | None = None, log: Log = _stderr) -> Path:
    """Build ``localhost/orderflow:<tag>`` from the Dockerfile and save it as a docker-archive."""
    root = (context or default_context()).resolve()
    if not (root / "Dockerfile").is_file():
        raise ImageError(f"no Dockerfile in {root}; pass --context <checkout>")
    image = f"{PROJECT_REPOSITORY}:{check_tag(tag)}"
    archive = project_archive(tag)
    archive.parent.mkdir(parents=True, exist_ok=True)
    files = context_files(root)
    with tempfile.TemporaryDirectory(prefix="orderflow-image-ctx-") as tmp:
        ctx = Path(tmp)
        for relative in files:
            (ctx / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / relative, ctx / relative)
        log(f"Building {image} from {root / 'Dockerfile'} ({len(files)} files in the context)")
        iidfile = ctx.parent / f"{ctx.name}.iid"
        argv = ["buildah", "bud", "--pull=never", "--network=host", "--layers", "--iidfile", str(iidfile)]
        argv += ["-t", image, "-f", str(ctx / "Dockerfile"), str(ctx)]
        try:
            _run(f"build {image}", argv, log, echo=lambda line: _BUD_STEP.match(line) is not None)
            image_id = iidfile.read_text().strip()
        finally:
            iidfile.unlink(missing_ok=True)
    # An unchanged rebuild hits every cached layer; then the archive already holds this image.
    saved_id = archive.with_suffix(".id")
    if archive.is_file() and saved_id.is_file() and saved_id.read_text() == image_id:
        log(f"{archive.name} already holds this image")
        return archive
    saved_id.unlink(missing_ok=True)
    _push(image, archive, log)
    saved_id.write_text(image_id)
    return archive


def build(tag: str = DEFAULT_TAG, context: Path | None = None, log: Log = _stderr) -> Path:
    """``orderflow image build``: the base image, then the project's. Returns the project image's
    archive, for ``kind load image-archive``."""
    check_tag(tag)
    check_host(("buildah", "mmdebstrap"))
    ensure_base(log)
    return build_project(tag, context, log)
