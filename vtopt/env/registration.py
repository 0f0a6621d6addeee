"""vtopt's environment id and its registration with gymnasium, whichever of the two is imported first.

``import vtopt`` calls :func:`register_with_gymnasium`: it registers :data:`GYM_ID` at once when
gymnasium is loaded, else when gymnasium is first imported (a one-time import hook), so that
``gymnasium.make(GYM_ID)`` works in either order without ``import vtopt`` paying for gymnasium.
"""

from __future__ import annotations

import importlib.abc
import sys

#: The id under which vtopt's environment is registered with gymnasium.
GYM_ID = "vtopt/VTracer-v0"


def register_gym_env() -> None:
    """Register :data:`GYM_ID` with gymnasium; the env's modules load on ``make``."""
    import gymnasium as gym

    if GYM_ID not in gym.registry:
        gym.register(GYM_ID, entry_point="vtopt.env.poolenv:make_gym_env")  # one env module imports the other


class _OnGymnasiumImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``gymnasium`` is imported, it lets the usual finders find it and
    registers :data:`GYM_ID` once gymnasium's module has run; then it removes itself."""

    def find_spec(self, name, path, target=None):
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = next((s for f in sys.meta_path if (s := getattr(f, "find_spec", lambda *a: None)(name, path, target))),
                    None)  # the finder that would have found it without this one
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            register_gym_env()

        spec.loader.exec_module = exec_module  # this spec's own loader object
        return spec


def register_with_gymnasium() -> None:
    """Register :data:`GYM_ID` now if gymnasium is loaded, else as soon as it is imported."""
    if "gymnasium" in sys.modules:
        register_gym_env()
    elif not any(isinstance(f, _OnGymnasiumImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _OnGymnasiumImport())
