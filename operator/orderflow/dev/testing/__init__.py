"""Test support: the pytest plugin that runs the real control plane and the controllers.

It ships in the wheel but needs the ``test`` extra, which the controllers never install: say so
at import, by name, instead of failing later on whichever import comes first.
"""

from importlib.util import find_spec

from orderflow import DEV_INSTALL

_NEEDS = ("pytest", "kubernetes")  # the plugin's imports beyond the controllers' own dependencies
_missing = [name for name in _NEEDS if find_spec(name) is None]
if _missing:
    raise ImportError(
        f"orderflow.dev.testing (the pytest plugin) needs {' and '.join(_missing)}: "
        f"install the dev wing: {DEV_INSTALL}",
        name=_missing[0],
    )
