"""The plugin host: loading plugins, component registries, and a typed facade.

Load order: entry points of the ``vtopt`` group, the ``vtopt``
distribution's own (the built-ins in ``plugins/``) first, then other
distributions' in name order; then whatever code registers with
:meth:`PluginManager.register`. ``VTOPT_DISABLE_PLUGIN_AUTOLOAD=1`` loads
only the built-ins' entry points; ``VTOPT_BLOCK_PLUGINS=a,b`` skips the named
plugins (entry-point names).
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import os
from typing import Any, Callable

import attrs
import pluggy

from . import hookspecs
from .errors import ParamError, UnknownComponent, VtoptError, check_param_names

hookimpl = pluggy.HookimplMarker("vtopt")

KINDS = {
    "algorithm": "vtopt_register_algorithms",
    "curriculum": "vtopt_register_curricula",
    "metric": "vtopt_register_metrics",
    "monitor": "vtopt_register_monitors",
    "executor": "vtopt_register_executors",
}


class PluginError(VtoptError):
    """A plugin that cannot be loaded or is inconsistent."""


@attrs.frozen
class Component:
    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str  # the registered plugin name that provides it


@attrs.frozen
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    provides: dict[str, list[str]]  # kind -> component names


class _Manager(pluggy.PluginManager):
    def parse_hookimpl_opts(self, plugin, name):
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("vtopt_"):
            method = getattr(plugin, name, None)
            if inspect.isroutine(method):
                return {}  # unmarked vtopt_* routines are hook implementations too
        return opts


class PluginManager:
    """Typed facade over pluggy: core code calls methods, not string-named hooks."""

    def __init__(self, autoload: bool | None = None, blocked: tuple[str, ...] | None = None):
        self.pm = _Manager("vtopt")
        self.pm.add_hookspecs(hookspecs)
        self._dists: dict[str, md.Distribution] = {}
        self._components: dict[str, dict[str, Component]] | None = None
        if autoload is None:
            autoload = os.environ.get("VTOPT_DISABLE_PLUGIN_AUTOLOAD", "") not in ("1", "true", "yes")
        if blocked is None:
            blocked = tuple(b.strip() for b in os.environ.get("VTOPT_BLOCK_PLUGINS", "").split(",") if b.strip())
        self.blocked = set(blocked)
        self._from_code: dict[str, Any] = {}  # name -> plugin registered from code, to reach every worker
        self._load_entry_points(builtins_only=not autoload)

    @classmethod
    def with_plugins(cls, plugins: tuple[tuple[str, Any], ...] = ()) -> "PluginManager":
        """A fresh manager (entry points) plus ``plugins`` as :meth:`code_plugins` returned them."""
        pm = cls()
        for name, plugin in plugins:
            pm.register(plugin, name=name)
        return pm

    def code_plugins(self) -> tuple[tuple[str, Any], ...]:
        """(name, plugin) of the plugins registered from code, for worker processes and trials to register
        too: :class:`vtopt.WorkerFactory` and :class:`vtopt.Trial` carry them (they must pickle)."""
        return tuple(self._from_code.items())

    # -- loading -------------------------------------------------------------
    def _load_entry_points(self, builtins_only: bool) -> None:
        eps = md.entry_points(group="vtopt")

        def order(ep):
            dist = ep.dist.name if ep.dist else ""
            return (dist != "vtopt", dist, ep.name)

        for ep in sorted(eps, key=order):
            dist_name = ep.dist.name if ep.dist else None
            if builtins_only and dist_name != "vtopt":
                continue
            if ep.name in self.blocked or self.pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name!r} (entry point {ep.value} from {dist_name}) failed to load: "
                    f"{type(exc).__name__}: {exc} (skip it with VTOPT_BLOCK_PLUGINS={ep.name})"
                ) from exc
            self.register(plugin, name=ep.name, portable=False)
            if ep.dist is not None:
                self._dists[ep.name] = ep.dist

    def register(self, plugin: Any, name: str | None = None, portable: bool = True) -> str:
        """Register a plugin object (a module, class instance ...); returns its name.

        Fails, naming the plugin and the hook, when it implements a hook that
        does not exist or takes an argument the hook does not have. Unless
        ``portable`` is False (entry points, a run's own monitors), the plugin
        also goes to every worker process and sweep trial built from this manager.
        """
        try:
            name = self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            lines = str(exc).splitlines()
            raise PluginError(f"{lines[0]}: {lines[-1]}" if len(lines) > 1 else str(exc)) from None
        except ValueError as exc:
            raise PluginError(f"cannot register plugin {name or plugin!r}: {exc}") from None
        self._check_pending(name)
        self._components = None
        if portable:
            self._from_code[name] = plugin
        return name

    def unregister(self, plugin: Any) -> None:
        self.pm.unregister(plugin)
        self._from_code = {n: p for n, p in self._from_code.items() if p is not plugin}
        self._components = None

    def _check_pending(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        for hook_name in dir(self.pm.hook):
            if hook_name.startswith("_"):
                continue
            caller = getattr(self.pm.hook, hook_name)
            if caller.spec is None and any(impl.plugin is plugin for impl in caller.get_hookimpls()):
                self.pm.unregister(plugin)
                known = ", ".join(sorted(KNOWN_HOOKS))
                raise PluginError(f"plugin {name!r} implements unknown hook {hook_name!r}; known hooks: {known}")

    # -- components ------------------------------------------------------------
    def _registry(self) -> dict[str, dict[str, Component]]:
        if self._components is None:
            registry: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
            for kind, hook_name in KINDS.items():
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    plugin_name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
                    provided = impl.function() or {}
                    if not isinstance(provided, dict):
                        raise PluginError(f"plugin {plugin_name!r}: {hook_name} must return a dict of name -> factory")
                    for comp_name, factory in provided.items():
                        seen = registry[kind].get(comp_name)
                        if seen is not None:
                            raise PluginError(
                                f"{kind} {comp_name!r} is provided by two plugins: {seen.plugin!r} and {plugin_name!r}"
                            )
                        registry[kind][comp_name] = Component(kind, comp_name, factory, plugin_name)
            self._components = registry
        return self._components

    def components(self, kind: str) -> dict[str, Component]:
        return dict(self._registry()[kind])

    def create(self, kind: str, name: str, params: dict[str, Any] | None = None, validate: bool = True) -> Any:
        """Build a component from its registered name and params, then run its ``validate()`` if it has
        one (:class:`vtopt.components.Validating`; skipped with ``validate=False``, as when a model file
        is loaded).

        Raises UnknownComponent (listing what is available) or ParamError.
        """
        comps = self._registry()[kind]
        comp = comps.get(name)
        if comp is None:
            raise UnknownComponent(kind, name, {n: c.plugin for n, c in comps.items()})
        params = dict(params or {})
        try:
            signature = inspect.signature(comp.factory)
        except ValueError:
            signature = None  # no signature available (builtin): let the call decide
        if signature is not None:
            if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
                check_param_names(f"{kind} {name!r}", params, (
                    n for n, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)))
            try:
                signature.bind(**params)
            except TypeError as exc:
                raise ParamError(_offending_key(exc, params), f"{exc}") from None
        try:
            component = comp.factory(**params)
            if validate and callable(getattr(component, "validate", None)):
                component.validate()
            return component
        except ParamError:
            raise
        except (TypeError, ValueError) as exc:
            raise ParamError(_offending_key(exc, params), str(exc)) from None

    # -- listing -------------------------------------------------------------
    def plugins(self) -> list[PluginInfo]:
        registry = self._registry()
        out = []
        for name, _plugin in self.pm.list_name_plugin():
            dist = self._dists.get(name)
            provides = {
                kind: sorted(c.name for c in comps.values() if c.plugin == name)
                for kind, comps in registry.items()
            }
            out.append(PluginInfo(name, dist.name if dist else None, dist.version if dist else None,
                                  {k: v for k, v in provides.items() if v}))
        return out

    # -- events (typed facade) -------------------------------------------------
    def run_started(self, run) -> None:
        self.pm.hook.vtopt_run_started(run=run)

    def episode_finished(self, run, episode: dict, timesteps: int) -> None:
        self.pm.hook.vtopt_episode_finished(run=run, episode=episode, timesteps=timesteps)

    def rollout_finished(self, run, timesteps: int, stats: dict) -> None:
        self.pm.hook.vtopt_rollout_finished(run=run, timesteps=timesteps, stats=stats)

    def stage_changed(self, run, previous, stage, timesteps: int) -> None:
        self.pm.hook.vtopt_stage_changed(run=run, previous=previous, stage=stage, timesteps=timesteps)

    def evaluated(self, run, evaluation: dict, timesteps: int) -> None:
        self.pm.hook.vtopt_evaluated(run=run, evaluation=evaluation, timesteps=timesteps)

    def checkpoint_saved(self, run, path, timesteps: int) -> None:
        self.pm.hook.vtopt_checkpoint_saved(run=run, path=path, timesteps=timesteps)

    def alert(self, run, alert: str, message: str, timesteps: int) -> None:
        self.pm.hook.vtopt_alert(run=run, alert=alert, message=message, timesteps=timesteps)

    def run_aborted(self, run, reason: str) -> None:
        self.pm.hook.vtopt_run_aborted(run=run, reason=reason)

    def run_finished(self, run, summary: dict) -> None:
        self.pm.hook.vtopt_run_finished(run=run, summary=summary)


KNOWN_HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("vtopt_"))


def _offending_key(exc: Exception, params: dict[str, Any]) -> str | None:
    text = str(exc)
    for key in params:
        if f"'{key}'" in text:
            return key
    return None
