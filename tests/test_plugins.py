import ast
import sys

import pytest
from conftest import REPO, install_fake_plugin

import vtopt
from vtopt import hookimpl
from vtopt.cli import main
from vtopt.errors import UnknownComponent
from vtopt.plugin.manager import PluginError, PluginManager

BUILTINS = {"ppo", "a2c", "sac", "ssim", "ssim_rgb", "size", "paths", "mse", "psnr", "staged", "uniform", "structlog"}


BUILTIN_PLUGINS = {"sb3", "metrics", "curricula", "monitors", "search", "portfolio", "local", "ray"}


def test_builtins_come_from_entry_points(vtopt_pm):
    pm = vtopt_pm()
    infos = {i.name: i for i in pm.plugins()}
    assert set(infos) == BUILTIN_PLUGINS  # exactly the built-ins: nothing installed in this environment leaks in
    assert all(infos[n].distribution == "vtopt" and infos[n].version for n in BUILTIN_PLUGINS)
    provided = {name for i in infos.values() for names in i.provides.values() for name in names}
    assert BUILTINS <= provided


def test_plugins_command_lists_components(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for name in BUILTINS:
        assert name in out
    assert "vtopt 0.1.0" in out


def test_unknown_component_lists_what_is_available(vtopt_pm):
    pm = vtopt_pm()
    with pytest.raises(UnknownComponent, match=r"unknown curriculum 'zigzag'; available: ") as info:
        pm.create("curriculum", "zigzag")
    assert "staged (from curricula)" in str(info.value) and "uniform (from curricula)" in str(info.value)


class Half:
    def prepare(self, image):
        return None

    def compute(self, sample, state):
        return 0.5


def test_register_from_code(vtopt_pm):
    pm = vtopt_pm()
    class Mine:
        @hookimpl
        def vtopt_register_metrics(self):
            return {"half": Half}

    pm.register(Mine(), name="mine")
    assert pm.create("metric", "half").compute(None, None) == 0.5
    assert pm.components("metric")["half"].plugin == "mine"
    listed = {i.name: i for i in pm.plugins()}["mine"]
    assert listed.provides == {"metric": ["half"]} and listed.distribution is None


def test_misspelt_hook_fails_naming_plugin_and_hook(vtopt_pm):
    pm = vtopt_pm()
    class Typo:
        def vtopt_register_metric(self):  # missing "s"
            return {}

    with pytest.raises(PluginError, match=r"plugin 'typo' implements unknown hook 'vtopt_register_metric'"):
        pm.register(Typo(), name="typo")
    assert pm.pm.get_plugin("typo") is None


def test_wrong_hook_signature_fails(vtopt_pm):
    pm = vtopt_pm()
    class Wrong:
        @hookimpl
        def vtopt_run_started(self, run, colour):
            pass

    with pytest.raises(PluginError, match=r"Plugin 'wrong' for hook 'vtopt_run_started': Argument\(s\) \{'colour'\}"):
        pm.register(Wrong(), name="wrong")


def test_two_plugins_with_one_name_is_an_error(vtopt_pm):
    pm = vtopt_pm()
    class Clash:
        @hookimpl
        def vtopt_register_metrics(self):
            return {"ssim": Half}

    pm.register(Clash(), name="clash")
    with pytest.raises(PluginError, match=r"metric 'ssim' is provided by two plugins: 'metrics' and 'clash'"):
        pm.components("metric")


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A real distribution on sys.path, found through importlib.metadata entry points."""
    install_fake_plugin(tmp_path, monkeypatch, "extra", "vtopt_extra_metric", "vtopt-extra-metric", "2.5", """
        from vtopt import hookimpl

        class Quarter:
            def prepare(self, image):
                return None
            def compute(self, sample, state):
                return 0.25

        @hookimpl
        def vtopt_register_metrics():
            return {"quarter": Quarter}
    """)
    yield
    sys.modules.pop("vtopt_extra_metric", None)


def test_third_party_entry_point_is_loaded(installed_plugin):
    pm = PluginManager()
    info = {i.name: i for i in pm.plugins()}["extra"]
    assert (info.distribution, info.version, info.provides) == ("vtopt-extra-metric", "2.5", {"metric": ["quarter"]})
    assert pm.create("metric", "quarter").compute(None, None) == 0.25


def test_autoload_can_be_disabled_and_plugins_blocked(installed_plugin, monkeypatch):
    monkeypatch.setenv("VTOPT_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = PluginManager()
    names = {i.name for i in pm.plugins()}
    assert names == BUILTIN_PLUGINS  # the built-ins stay, nothing else
    monkeypatch.delenv("VTOPT_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("VTOPT_BLOCK_PLUGINS", "extra,monitors")
    names = {i.name for i in PluginManager().plugins()}
    assert names == BUILTIN_PLUGINS - {"monitors"}


def test_core_never_imports_the_builtin_plugins():
    builtin = {p.name for p in (REPO / "plugins").iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert builtin
    for source in (REPO / "vtopt").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in builtin | {"plugins"}, f"{source} imports {name}"




class _Searcher:
    def learn(self, ctx): pass
    def save(self, path): pass
    def load(self, path): pass
    def predict(self, observation, deterministic=True): return None
    def start_image(self, image, default=None): pass


def test_a_component_is_checked_against_its_interface_and_capabilities_when_created(vtopt_pm):
    class Parts:
        @hookimpl
        def vtopt_register_metrics(self):
            return {"computeless": lambda: type("Computeless", (), {"prepare": lambda self, image: None})()}

        @hookimpl
        def vtopt_register_algorithms(self):
            return {"half_search": _Searcher}

        @hookimpl
        def vtopt_register_executors(self):
            return {"no_envs": lambda: type("NoEnvs", (), {"run_images": None, "run_sweep": None})()}

    pm = vtopt_pm()
    pm.register(Parts(), name="parts")
    with pytest.raises(PluginError, match=r"^plugin 'parts' \(registered from code\): metric 'computeless' is not a "
                                          r"vtopt\.Metric: it lacks compute$"):
        pm.create("metric", "computeless")
    with pytest.raises(PluginError, match=r"algorithm 'half_search' is not a vtopt\.SearchAlgorithm \(it has "
                                          r"start_image\): it lacks observe$"):
        pm.create("algorithm", "half_search")
    with pytest.raises(PluginError, match=r"executor 'no_envs' is not a vtopt\.Executor: it lacks make_vec_env$"):
        pm.create("executor", "no_envs")
    _Searcher.observe = lambda self, params, score, outcome=None: None
    try:
        assert isinstance(pm.create("algorithm", "half_search"), vtopt.SearchAlgorithm)
    finally:
        del _Searcher.observe


def test_the_builtins_state_their_capabilities(vtopt_pm):
    from vtopt.config.checks import runs_here

    pm = vtopt_pm()
    assert isinstance(pm.create("algorithm", "tpe"), vtopt.SearchAlgorithm)
    assert isinstance(pm.create("algorithm", "ppo", validate=False), vtopt.UpdatableAlgorithm)
    assert not isinstance(pm.create("algorithm", "ppo", validate=False), vtopt.SearchAlgorithm)
    assert isinstance(pm.create("curriculum", "staged"), vtopt.StagedCurriculum)
    assert not isinstance(pm.create("curriculum", "uniform"), vtopt.StagedCurriculum)
    assert runs_here(pm.create("executor", "local")) and runs_here(pm.components("executor")["local"].factory)
    assert not runs_here(pm.components("executor")["ray"].factory)
