"""The pure parts of `orderflow image build`: what goes into the build context, and the cache keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderflow.dev.cluster import image

ROOT = Path(__file__).resolve().parents[3]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def test_copy_sources_reads_copy_and_add_but_not_other_stages() -> None:
    dockerfile = (
        "FROM python:3.11-slim AS build\n"
        "COPY pyproject.toml README.md ./\n"
        "copy --chown=1:1 operator ./operator\n"
        'COPY ["data file.txt", "/data/"]\n'
        "ADD https://example.com/x.tgz /x.tgz\n"
        "COPY a \\\n     b /dst/\n"
        "FROM python:3.11-slim\n"
        "COPY --from=build /wheels /wheels\n"
        "RUN echo COPY nothing\n"
    )
    assert image.copy_sources(dockerfile) == ["pyproject.toml", "README.md", "operator", "data file.txt", "a", "b"]


def test_the_projects_dockerfile_needs_exactly_its_sources() -> None:
    assert image.copy_sources((ROOT / "Dockerfile").read_text()) == [
        "packaging/lock/runtime.txt",
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "operator",
    ]


@pytest.mark.parametrize(
    ("pattern", "path", "ignored"),
    [
        ("**/__pycache__", "operator/orderflow/__pycache__/cli.cpython-311.pyc", True),
        ("**/__pycache__", "__pycache__/x.pyc", True),
        (".venv", ".venv/bin/python", True),
        (".venv", "operator/.venv", False),  # no `**`: only at the top, as in Docker
        ("*.md", "README.md", True),
        ("*.md", "docs/deploy.md", False),
        ("docs/*.md", "docs/deploy.md", True),
        ("bench/results", "bench/results/run-1/out.json", True),
        ("/bench/results/", "bench/results/x", True),
        ("**/*.egg-info", "operator/orderflow.egg-info/PKG-INFO", True),
        ("file?.txt", "file1.txt", True),
        ("file?.txt", "file10.txt", False),
        ("file[0-9].txt", "file7.txt", True),
        ("a/**", "a/b/c", True),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("a.b", "aXb", False),  # a dot is literal
    ],
)
def test_dockerignore_patterns_match_as_docker_does(pattern: str, path: str, ignored: bool) -> None:
    assert image.is_ignored(path, image.parse_dockerignore(pattern)) is ignored


def test_the_last_matching_dockerignore_pattern_wins() -> None:
    rules = image.parse_dockerignore("# comment\n\n*.md\n!README.md\n")
    assert image.is_ignored("NOTES.md", rules)
    assert not image.is_ignored("README.md", rules)
    assert not image.is_ignored("pyproject.toml", rules)


def test_context_holds_only_what_the_dockerfile_copies_minus_dockerignore(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "Dockerfile": "FROM python:3.11-slim\nCOPY pyproject.toml README.md ./\nCOPY operator ./operator\n",
            ".dockerignore": ".venv\n**/__pycache__\noperator/orderflow/secret.txt\n",
            "pyproject.toml": "",
            "README.md": "",
            "Makefile": "",
            "tests/unit/test_x.py": "",
            ".venv/bin/python": "",
            "operator/orderflow/__init__.py": "",
            "operator/orderflow/cluster/pause/main.go": "package main\n",
            "operator/orderflow/__pycache__/__init__.cpython-311.pyc": "",
            "operator/orderflow/secret.txt": "",
            "operator/orderflow.egg-info/PKG-INFO": "",
        },
    )
    assert image.context_files(root) == [
        "Dockerfile",
        "README.md",
        "operator/orderflow/__init__.py",
        "operator/orderflow/cluster/pause/main.go",
        "pyproject.toml",
    ]


def test_egg_info_and_pycache_stay_out_even_when_dockerignore_lets_them_in(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "Dockerfile": "FROM scratch\nCOPY operator /operator\n",
            ".dockerignore": "!**/__pycache__\n!operator/x.egg-info\n",
            "operator/m.py": "",
            "operator/__pycache__/m.cpython-311.pyc": "",
            "operator/x.egg-info/PKG-INFO": "",
        },
    )
    assert image.context_files(root) == ["Dockerfile", "operator/m.py"]


def test_a_missing_copy_source_is_a_clear_error(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"Dockerfile": "FROM scratch\nCOPY nowhere /x\n"})
    with pytest.raises(image.ImageError, match="nowhere"):
        image.context_files(root)


def test_the_projects_context_has_no_build_leftovers() -> None:
    files = image.context_files(ROOT)
    assert {"Dockerfile", "pyproject.toml", "README.md", "operator/orderflow/cli.py"} <= set(files)
    assert not [f for f in files if f.startswith("operator/orderflow/dev/")]  # the image carries no dev wing
    assert not [f for f in files if "__pycache__" in f or ".egg-info" in f]
    assert {f for f in files if not f.startswith("operator/")} == {
        "Dockerfile",
        "packaging/lock/runtime.txt",
        "pyproject.toml",
        "README.md",
        "LICENSE",
    }


def test_base_key_changes_with_each_input_and_ignores_package_order_and_comments() -> None:
    sources = ["Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n"]
    key = image.base_key("bookworm", ["python3", "passwd"], sources, b"CA")
    assert key == image.base_key("bookworm", ["passwd", "python3"], sources, b"CA")
    assert key == image.base_key("bookworm", ["passwd", "python3"], ["# snapshot 2025\n" + sources[0]], b"CA")
    others = {
        image.base_key("trixie", ["python3", "passwd"], sources, b"CA"),
        image.base_key("bookworm", ["python3", "passwd", "curl"], sources, b"CA"),
        image.base_key("bookworm", ["python3", "passwd"], [sources[0].replace("main", "main contrib")], b"CA"),
        image.base_key("bookworm", ["python3", "passwd"], sources, b"other CA"),
        image.base_key("bookworm", ["python3", "passwd"], sources, b"CA", recipe=image.BASE_RECIPE_VERSION + 1),
    }
    assert key not in others
    assert len(others) == 5


def test_pause_key_follows_the_source() -> None:
    source, go_mod = image._pause_source(), image._pause_go_mod()
    assert "syscall.SIGCHLD" in source
    assert image.pause_key(source, go_mod) == image.pause_key(source, go_mod)
    assert image.pause_key(source + "\n", go_mod) != image.pause_key(source, go_mod)


@pytest.mark.parametrize("tag", ["dev", "0.1.0", "pr-12_a"])
def test_valid_tags_pass(tag: str) -> None:
    assert image.check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", "-x", "a:b", "a/b", "x" * 129])
def test_invalid_tags_are_refused(tag: str) -> None:
    with pytest.raises(image.ImageError, match="not a valid image tag"):
        image.check_tag(tag)


def test_missing_host_tools_name_the_apt_line_and_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image.shutil, "which", lambda command: None)
    monkeypatch.setattr(image.os, "geteuid", lambda: 1000)
    with pytest.raises(image.ImageError) as raised:
        image.check_host(("buildah", "mmdebstrap", "go"))
    message = str(raised.value)
    assert "apt-get install -y buildah mmdebstrap" in message
    assert "go not found" in message
    assert "needs root" in message
