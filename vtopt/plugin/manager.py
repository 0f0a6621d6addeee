"""The plugin host: loading plugins, component registries, and a typed facade.

Load order: entry points of the ``vtopt`` group, the ``vtopt``
distribution's own (the built-ins in ``plugins/``) first, then other
distributions' in name order; then whatever code registers with
:meth:`PluginManager.register`. ``VTOPT_DISABLE_PLUGIN_AUTOLOAD=1`` loads
only the built-ins' entry points; ``VTOPT_BLOCK_PLUGINS=a,b`` skips the named
plugins (entry-point names).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata as md
import inspect
import os
from typing import Any, Callable, Iterator

import attrs
import pluggy

from ..errors import ParamError, PluginFault, UnknownComponent, VtoptError, check_param_names, offending_key
from . import hookspecs
from .components import Baseline, Validating, nonconformance
from .hookspecs import KINDS

hookimpl = pluggy.HookimplMarker("vtopt")


def _warn(event: str, **fields: Any) -> None:
    import structlog  # only when a plugin misbehaves: ``import vtopt`` stays light

    structlog.get_logger("vtopt.plugins").warning(event, **fields)


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


class PluginSet:
    """A plugin manager's settings and its plugins registered from code, to rebuild it elsewhere
    (another process, another machine). Modules travel by name; other plugins are pickled, so a
    plugin class must be importable there (defined at module level) unless the executor forks."""

    def __init__(self, autoload: bool = True, blocked: tuple[str, ...] = (), plugins: tuple = ()):
        self.autoload, self.blocked, self.plugins = autoload, tuple(blocked), tuple(plugins)

    def manager(self) -> "PluginManager":
        pm = PluginManager(autoload=self.autoload, blocked=self.blocked)
        for name, plugin in self.plugins:
            if isinstance(plugin, _ModuleRef):
                plugin = importlib.import_module(plugin.name)
            pm.register(plugin, name=name)
        return pm

    def __getstate__(self):
        import types

        plugins = tuple((name, _ModuleRef(p.__name__) if isinstance(p, types.ModuleType) else p)
                        for name, p in self.plugins)
        return {"autoload": self.autoload, "blocked": self.blocked, "plugins": plugins}


@attrs.frozen
class _ModuleRef:
    name: str


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
        self.blocked, self.autoload = set(blocked), autoload
        self._from_code: dict[str, Any] = {}  # name -> plugin registered from code, to reach every worker
        self.disabled: dict[str, str] = {}  # monitors turned off after their hook raised: name -> error
        self.stop_on_error: set[str] = set()  # monitors (by registered name) whose errors stop the run
        self._load_entry_points(builtins_only=not autoload)

    def portable(self) -> "PluginSet":
        """What worker processes and sweep trials need to build a manager like this one: its
        settings and the plugins registered from code (:class:`vtopt.WorkerFactory` and
        :class:`vtopt.Trial` carry it)."""
        return PluginSet(self.autoload, tuple(sorted(self.blocked)), tuple(self._from_code.items()))

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
            if any(impl.plugin is plugin and (impl.hookwrapper or getattr(impl, "wrapper", False))
                   for impl in caller.get_hookimpls()):
                self.pm.unregister(plugin)  # vtopt calls each implementation on its own (a fault names it)
                raise PluginError(f"plugin {name!r}: {hook_name} is a hook wrapper; vtopt's hooks take plain "
                                  "implementations only")

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
        """Build a component from its registered name and params, check it against its kind's interface
        and the capabilities it begins (:func:`vtopt.plugin.components.nonconformance`), then run its
        ``validate()`` if it is :class:`vtopt.Validating` (skipped with ``validate=False``, as when a model
        file is loaded).

        Raises UnknownComponent (listing what is available), ParamError, or PluginError (it does not conform).
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
                raise ParamError(offending_key(exc, params), f"{exc}") from None
        try:
            component = comp.factory(**params)
            problem = nonconformance(kind, component)
            if problem is not None:
                raise PluginError(f"plugin {self.origin(comp.plugin)}: {kind} {name!r} {problem}")
            if validate and isinstance(component, Validating):
                component.validate()
            return component
        except ParamError:
            raise
        except (TypeError, ValueError) as exc:
            raise ParamError(offending_key(exc, params), str(exc)) from None

    def create_executor(self, name: str, address: str | None = None) -> Any:
        """An executor by name, given the cluster ``address`` when there is one (``--address``,
        ``resources.address``); executors that run on this machine take none."""
        return self.create("executor", name, {"address": address} if address else {})

    # -- listing -------------------------------------------------------------
    def plugins(self) -> list[PluginInfo]:
        registry, out = self._registry(), []
        for name, _plugin in self.pm.list_name_plugin():
            dist = self._dists.get(name)
            provides = {kind: sorted(c.name for c in comps.values() if c.plugin == name) for kind, comps in registry.items()}
            out.append(PluginInfo(name, dist.name if dist else None, dist.version if dist else None,
                                  {k: v for k, v in provides.items() if v}))
        return out

    # -- faults ----------------------------------------------------------------
    def origin(self, plugin_name: str) -> str:
        """How a plugin is named in errors: ``'extras' (vtopt-extras 0.1.0)``."""
        dist = self._dists.get(plugin_name)
        if dist is not None:
            return f"{plugin_name!r} ({dist.name} {dist.version})"
        return f"{plugin_name!r} (registered from code)"

    def component_origin(self, kind: str, name: str) -> str:
        comp = self._registry()[kind].get(name)
        return self.origin(comp.plugin) if comp is not None else "?"

    @contextlib.contextmanager
    def blame(self, kind: str, name: str, method: str) -> Iterator[None]:
        """Turn an exception escaping a component's method into a one-line :class:`PluginFault`
        naming the plugin, the component and the method (vtopt's own errors pass through)."""
        try:
            yield
        except VtoptError:
            raise
        except Exception as exc:
            if getattr(exc, "vtopt_core", False):  # raised by vtopt's own code called from the plugin
                raise
            raise PluginFault(self.component_origin(kind, name), f"{kind} {name!r}", method, exc) from exc

    # -- configuration and evaluation (typed facade) -------------------------------
    def _collect(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """(plugin name, result) of each implementation, called in pluggy's order as the caller iterates
        (for a ``firstresult`` hook: up to the first result that is not None); one that raises is a
        PluginFault naming its plugin. Hooks that take the host get this manager as ``pm``."""
        caller = getattr(self.pm.hook, hook_name)
        kwargs.setdefault("pm", self)
        first = bool(caller.spec and caller.spec.opts.get("firstresult"))
        for impl in reversed(caller.get_hookimpls()):
            name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            try:
                result = impl.function(**{a: kwargs[a] for a in impl.argnames})
            except VtoptError:
                raise
            except Exception as exc:
                raise PluginFault(self.origin(name), "hooks", hook_name, exc) from exc
            if result is not None or not first:
                yield name, result
                if first:
                    return

    def config_defaults(self) -> list[dict[str, Any]]:
        """Each plugin's defaults for what a config leaves out (``vtopt_config_defaults``), in call
        order: the first to give a value wins (:func:`vtopt.config.schema.fill_defaults` merges them)."""
        out = []
        for name, result in self._collect("vtopt_config_defaults"):
            if result is None:
                continue
            if not isinstance(result, dict):
                raise PluginError(f"plugin {name!r}: vtopt_config_defaults must return a mapping")
            out.append(result)
        return out

    def check_config(self, config: Any, algorithm: Any, curriculum: Any) -> list[tuple[str, str]]:
        problems = []
        for name, result in self._collect("vtopt_check_config", config=config, algorithm=algorithm,
                                          curriculum=curriculum):
            for item in result or ():
                if not (isinstance(item, tuple) and len(item) == 2):
                    raise PluginError(f"plugin {name!r}: vtopt_check_config must return (key path, message) pairs")
                problems.append((str(item[0]), str(item[1])))
        return problems

    def add_options(self, command: str, parser: Any) -> None:
        """Each plugin's options for subcommand ``command``; an option that two plugins (or a plugin and
        vtopt) both add is an error naming both."""
        import argparse

        owners = {option: "vtopt" for option in parser._option_string_actions}
        calls = self._collect("vtopt_add_options", command=command, parser=parser)
        while True:
            before = set(parser._option_string_actions)
            try:
                name, _ = next(calls)
            except StopIteration:
                return
            except PluginFault as fault:
                if not isinstance(fault.__cause__, argparse.ArgumentError):
                    raise
                option = str(fault.__cause__).rsplit(": ", 1)[-1].split(", ")[0]
                theirs = owners.get(option, "?")
                raise PluginError(f"plugin {fault.origin}: vtopt_add_options: {command} {option} is added by "
                                  + ("vtopt itself" if theirs == "vtopt" else f"plugin {theirs!r} too")) from None
            owners.update({option: name for option in set(parser._option_string_actions) - before})

    def commands(self) -> list[tuple[str, Any]]:
        """(plugin name, command) for each command plugins add (``vtopt_add_commands``), in call order."""
        return [(name, command) for name, result in self._collect("vtopt_add_commands") for command in result or ()]

    def baselines_by_plugin(self, budget: int, options: dict[str, Any] | None = None) -> dict[str, list[Any]]:
        """Each plugin's :class:`vtopt.Baseline` objects (``vtopt_baselines``), in call order; a name
        offered twice is an error naming both plugins."""

        seen: dict[str, str] = {}
        out: dict[str, list[Any]] = {}
        for name, result in self._collect("vtopt_baselines", budget=budget, options=dict(options or {})):
            for baseline in result or ():
                if not isinstance(baseline, Baseline):
                    raise PluginError(f"plugin {name!r}: vtopt_baselines must return vtopt.Baseline objects")
                if baseline.name in seen or baseline.name in ("policy", "defaults"):
                    raise PluginError(f"baseline {baseline.name!r} is offered by plugin {name!r} and "
                                      + (f"plugin {seen[baseline.name]!r}" if baseline.name in seen else "vtopt"))
                seen[baseline.name] = name
                out.setdefault(name, []).append(baseline)
        return out

    def baselines(self, budget: int, options: dict[str, Any] | None = None) -> list[Any]:
        return [b for offered in self.baselines_by_plugin(budget, options).values() for b in offered]

    def reference_params(self, conversions: int) -> list[dict[str, Any]] | None:
        """The first plugin's reference sets (``vtopt_reference_params``), or None when no plugin offers any."""
        for _name, result in self._collect("vtopt_reference_params", conversions=conversions):
            return [dict(p) for p in result]
        return None

    # -- events (typed facade) -------------------------------------------------
    def _emit(self, hook_name: str, **kwargs: Any) -> None:
        hook = getattr(self.pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # pluggy's order: last registered first
            name = self.pm.get_name(impl.plugin)
            try:
                impl.function(**{a: kwargs[a] for a in impl.argnames})
            except VtoptError:  # Interrupted, or a fault already named (an alert raised inside this hook)
                raise
            except Exception as exc:
                self._hook_failed(name, impl.plugin, hook_name, exc, kwargs)

    def _hook_failed(self, name: str | None, plugin: Any, hook_name: str, exc: Exception, kwargs: dict) -> None:
        """A monitor (registered for a run as ``monitor:NAME:i``) whose hook raised is disabled for the rest
        of the run, with a warning and an alert, unless it is in :attr:`stop_on_error`; any other plugin's
        hook that raises stops the run with a :class:`PluginFault`."""
        monitor = name is not None and name.startswith("monitor:")
        what = f"monitor {name.split(':')[1]!r}" if monitor else "hooks"
        origin = (self.component_origin("monitor", name.split(":")[1]) if monitor
                  else self.origin(name or repr(plugin)))
        fault = PluginFault(origin, what, hook_name, exc)
        if not monitor or name in self.stop_on_error:
            raise fault from exc
        self.pm.unregister(plugin)
        self.disabled[name] = str(fault)
        _warn("monitor_disabled", error=str(fault))
        run, message = kwargs.get("run"), f"{fault}; the monitor is off for the rest of the run"
        if hook_name == "vtopt_run_started":  # the other monitors hear it once they have started
            self._deferred.append(message)
        elif run is not None and hook_name != "vtopt_alert":
            run.alert("monitor_disabled", message, kwargs.get("timesteps", 0))

    def run_started(self, run) -> None:
        self.disabled.clear()
        self._deferred: list[str] = []
        self._emit("vtopt_run_started", run=run)
        for message in self._deferred:
            run.alert("monitor_disabled", message, 0)

    def episode_finished(self, run, episode: dict, timesteps: int) -> None:
        self._emit("vtopt_episode_finished", run=run, episode=episode, timesteps=timesteps)

    def rollout_finished(self, run, timesteps: int, stats: dict) -> None:
        self._emit("vtopt_rollout_finished", run=run, timesteps=timesteps, stats=stats)

    def stage_changed(self, run, previous, stage, timesteps: int) -> None:
        self._emit("vtopt_stage_changed", run=run, previous=previous, stage=stage, timesteps=timesteps)

    def evaluated(self, run, evaluation: dict, timesteps: int) -> None:
        self._emit("vtopt_evaluated", run=run, evaluation=evaluation, timesteps=timesteps)

    def checkpoint_saved(self, run, path, timesteps: int) -> None:
        self._emit("vtopt_checkpoint_saved", run=run, path=path, timesteps=timesteps)

    def alert(self, run, alert: str, message: str, timesteps: int) -> None:
        self._emit("vtopt_alert", run=run, alert=alert, message=message, timesteps=timesteps)

    def run_aborted(self, run, reason: str) -> None:
        try:
            self._emit("vtopt_run_aborted", run=run, reason=reason)
        except PluginFault as fault:  # the run is failing already: say so, and keep its own error
            _warn("hook_failed", error=str(fault))

    def run_finished(self, run, summary: dict) -> None:
        self._emit("vtopt_run_finished", run=run, summary=summary)


KNOWN_HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("vtopt_"))
