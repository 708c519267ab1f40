import pytest

from nas_engine import create, list_plugins
from nas_engine.registry import PluginNotFoundError, Registry, estimators, get_registry, register


def test_builtins_are_registered():
    plugins = list_plugins()
    assert {"random", "regularized-evolution"} <= set(plugins["strategy"])
    assert "nb201" in plugins["space"]
    assert {"tse", "tse-e", "tse-ema", "tlmini", "sovl", "valacc"} <= set(plugins["estimator"])


def test_create_passes_constructor_arguments():
    est = create("estimator", "tse-ema", epochs=3, gamma=0.9)
    assert (est.epochs, est.gamma) == (3, 0.9)
    assert est.name == "tse-ema"


def test_unknown_name_lists_known_ones():
    with pytest.raises(PluginNotFoundError) as info:
        create("estimator", "tse-emaa")
    msg = str(info.value)
    assert "'tse-emaa'" in msg and "tse-ema" in msg and "valacc" in msg


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown plugin kind 'optimiser'"):
        get_registry("optimiser")


def test_register_decorator_and_duplicates():
    reg = Registry("widget", "nas_engine.test_widgets")

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A and reg.names() == ["a"] and A.registry_name == "a"
    with pytest.raises(ValueError, match="already registered"):
        @reg.register("a")
        class B:
            pass


def test_register_into_global_registry_and_override():
    @register("estimator", "test-only-estimator")
    class Dummy:
        def __init__(self, x=1):
            self.x = x

    try:
        assert create("estimator", "test-only-estimator", x=5).x == 5
        assert "test-only-estimator" in list_plugins("estimator")
    finally:
        estimators._factories.pop("test-only-estimator")


def test_entry_points_are_loaded(monkeypatch):
    from importlib import metadata

    ep = metadata.EntryPoint(name="third-party", value="collections:OrderedDict", group="nas_engine.test_ep")
    monkeypatch.setattr(metadata, "entry_points", lambda group: [ep] if group == "nas_engine.test_ep" else [])
    reg = Registry("widget", "nas_engine.test_ep")
    import collections

    assert reg.get("third-party") is collections.OrderedDict
    assert reg.names() == ["third-party"]
