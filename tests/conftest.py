import pathlib

import pytest

pytest_plugins = ["orderflow.dev.testing.plugin"]

_INTEGRATION = {"integration", "e2e", "faults", "node"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEGRATION & set(pathlib.Path(str(item.fspath)).parts):
            item.add_marker(pytest.mark.integration)
