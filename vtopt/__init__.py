"""vtopt: learn to choose VTracer's parameters per image.

Plugin authors need only ``from vtopt import hookimpl``; the interfaces
their components implement are in :mod:`vtopt.components` and the hooks in
:mod:`vtopt.hookspecs`.
"""

from .plugin_manager import PluginManager, hookimpl

__all__ = ["hookimpl", "PluginManager"]
__version__ = "0.1.0"
