"""Plugin registries.

One :class:`Registry` type, five instances: :data:`strategies`, :data:`spaces`,
:data:`estimators`, :data:`datasets` and :data:`executors`.  Built-in plugins register themselves with a decorator::

    from nas_engine.registry import estimators

    @estimators.register("my-proxy")
    class MyProxy(Estimator): ...

Third-party packages register through entry points in the groups
``nas_engine.strategies``, ``nas_engine.spaces``, ``nas_engine.estimators``,
``nas_engine.datasets`` and ``nas_engine.executors`` (``name = "package.module:ClassName"``); they are loaded
lazily, the first time a registry is asked for a name it does not know or for
its full list.

``create(kind, name, **kwargs)`` instantiates a plugin; the constructor keyword
arguments are its whole configuration (as in scikit-learn).  A dataset plugin
is a reader (see :mod:`nas_engine.data`), so ``create("dataset", name, **kwargs)``
loads the dataset: it is :func:`nas_engine.data.load_dataset` (the data module
installs itself as the dataset registry's creator, since this module sits below
it and cannot import it).  An executor (where evaluations run, see
:mod:`nas_engine.executors`) is a subclass of
:class:`~nas_engine.executors.Executor`; :func:`nas_engine.executors.create_executor`
creates one by name through :data:`executors` (and adds the ``"auto"`` choice).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from importlib import metadata
from typing import Any

__all__ = [
    "Registry",
    "PluginNotFoundError",
    "strategies",
    "spaces",
    "estimators",
    "datasets",
    "executors",
    "register",
    "create",
    "from_config",
    "describe_plugin",
    "estimator_class",
    "list_plugins",
    "get_registry",
]


class PluginNotFoundError(LookupError):
    """Raised for an unknown plugin name; the message lists the known names."""


class Registry:
    """A name -> factory mapping for one kind of plugin."""

    def __init__(self, kind: str, group: str, builtin_modules: tuple[str, ...] = ()):
        self.kind = kind
        self.group = group
        self._builtin_modules = builtin_modules
        self._factories: dict[str, Callable[..., Any]] = {}
        self._entry_points_loaded = False
        self._builtins_loaded = False
        self._creator: Callable[..., Any] | None = None

    # -- registration -------------------------------------------------------
    def register(self, name: str, *, override: bool = False) -> Callable:
        """Class/function decorator registering a factory under ``name``."""
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"{self.kind} plugin name must be a non-empty string, got {name!r}")

        def decorator(factory):
            own = getattr(factory, "name", None) if isinstance(factory, type) else None  # a class attribute
            if isinstance(own, str) and own != name:
                raise ValueError(
                    f"{self.kind} class {_qualname(factory)} sets name={own!r} but is registered as {name!r}; "
                    "drop the name attribute: the registered name is the plugin's name")
            _refuse_reserved_parameters(self.kind, name, factory)
            existing = self._factories.get(name)
            if existing is not None and existing is not factory and not override:
                raise ValueError(
                    f"{self.kind} plugin {name!r} is already registered "
                    f"(by {_qualname(existing)}); pass override=True to replace it"
                )
            self._factories[name] = factory
            try:
                factory.registry_name = name
            except (AttributeError, TypeError):  # pragma: no cover - builtins
                pass
            return factory

        return decorator

    # -- lookup ---------------------------------------------------------------
    def _load_builtins(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            for mod in self._builtin_modules:
                importlib.import_module(mod)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=self.group):
            if ep.name in self._factories:
                continue
            try:
                factory = ep.load()
                self._factories[ep.name] = factory
                if isinstance(factory, type) and "registry_name" not in vars(factory):
                    factory.registry_name = ep.name  # its name is the entry point's, as with @register
            except Exception as exc:  # a broken third-party plugin must not break the engine
                import warnings

                warnings.warn(
                    f"could not load {self.kind} plugin {ep.name!r} from entry point "
                    f"{ep.value!r} (group {self.group!r}): {exc}",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def names(self) -> list[str]:
        """All registered names (built-ins and entry points), sorted."""
        self._load_builtins()
        self._load_entry_points()
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered under ``name``."""
        self._load_builtins()
        if name not in self._factories:
            self._load_entry_points()
        try:
            return self._factories[name]
        except (KeyError, TypeError):
            raise PluginNotFoundError(
                f"unknown {self.kind} {name!r}; known {self.kind} plugins: "
                f"{', '.join(self.names()) or '(none)'}"
            ) from None

    def set_creator(self, creator: Callable[..., Any] | None) -> None:
        """Make :meth:`create` call ``creator(name, **kwargs)`` instead of the registered factory (the dataset
        registry's: its factories are readers and :func:`nas_engine.data.load_dataset` builds the dataset)."""
        self._creator = creator

    def create(self, name: str, /, **kwargs) -> Any:
        """The plugin ``name`` built with ``kwargs`` (``name`` is positional-only: a constructor parameter may
        be called ``kind``; one called ``name`` is refused at registration)."""
        self._load_builtins()  # the built-in modules may install a creator
        if self._creator is not None:
            return self._creator(name, **kwargs)
        return self.get(name)(**kwargs)

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
        except PluginNotFoundError:
            return False
        return True

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r})"


#: constructor parameters a plugin class may not have: ``name`` is the plugin's registered name (its ``name``
#: attribute and the ``name`` of its stored configuration), so a parameter of that name could never be told apart
RESERVED_PARAMETERS = ("name",)


def _refuse_reserved_parameters(kind: str, name: str, factory: Any) -> None:
    """Refuse a plugin class whose constructor takes a parameter the engine reserves."""
    if not isinstance(factory, type):
        return
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
        return
    bad = [p for p in params if p in RESERVED_PARAMETERS]
    if bad:
        raise ValueError(f"{kind} class {_qualname(factory)} (registering {name!r}) has a constructor parameter "
                         f"named {bad[0]!r}, which the engine reserves for the plugin's registered name; "
                         "rename the parameter")


def _qualname(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


strategies = Registry("strategy", "nas_engine.strategies", ("nas_engine.strategies",))
spaces = Registry("space", "nas_engine.spaces", ("nas_engine.spaces",))
estimators = Registry("estimator", "nas_engine.estimators", ("nas_engine.estimators",))
#: dataset readers, one module each; importing nas_engine.data registers the core built-ins (cifar10, digits,
#: npz, synthetic-cifar10), and the other modules here are imported when the registry is first asked for a name
datasets = Registry("dataset", "nas_engine.datasets", (
    "nas_engine.data", "nas_engine.data.cifar100", "nas_engine.data.imagenet16", "nas_engine.data.imagefolder"))

#: where evaluations run (inline, processes, ray); the classes register themselves in nas_engine.executors
executors = Registry("executor", "nas_engine.executors", ("nas_engine.executors",))

_KINDS = {
    "strategy": strategies,
    "strategies": strategies,
    "space": spaces,
    "spaces": spaces,
    "estimator": estimators,
    "estimators": estimators,
    "dataset": datasets,
    "datasets": datasets,
    "executor": executors,
    "executors": executors,
}


def get_registry(kind: str) -> Registry:
    try:
        return _KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown plugin kind {kind!r}; expected one of 'strategy', 'space', 'estimator', 'dataset', 'executor'"
        ) from None


def register(kind: str, name: str, **kw) -> Callable:
    """``@register("estimator", "my-proxy")``: decorator on the registry of ``kind``."""
    return get_registry(kind).register(name, **kw)


def create(kind: str, name: str, /, **kwargs) -> Any:
    """Instantiate the plugin ``name`` of ``kind`` with constructor ``kwargs`` (``kind`` and ``name`` are
    positional-only, so a constructor parameter called ``kind`` is passed on)."""
    return get_registry(kind).create(name, **kwargs)


def from_config(kind: str, config: dict[str, Any]) -> Any:
    """The plugin a ``to_config()`` dict describes: ``create(kind, config["name"], **config["params"])``."""
    if not isinstance(config, dict) or not isinstance(config.get("name"), str) \
            or not isinstance(config.get("params", {}), dict):
        raise ValueError(f"a {kind} config must be a dict {{'name': str, 'params': dict}}, got {config!r}")
    return create(kind, config["name"], **config.get("params", {}))


def _short(v: Any) -> str:
    if isinstance(v, (list, tuple, dict)) and len(v) > 3:
        return f"<{len(v)} items>"
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def describe_plugin(cfg: Any) -> str:
    """``name(param=value, ...)`` of a stored plugin configuration ``{"name", "params"}`` (or its name): the
    one-line reading of what :func:`from_config` builds (long values shortened)."""
    if isinstance(cfg, dict):
        params = ", ".join(f"{k}={_short(v)}" for k, v in cfg.get("params", {}).items())
        return f"{cfg.get('name')}({params})"
    return str(cfg)


def estimator_class(config: dict[str, Any] | None) -> type | None:
    """The registered class of the estimator a stored search configuration names (``config["estimator"]``:
    a name or a ``{"name", "params"}`` dict); None when unknown or not a class."""
    cfg = (config or {}).get("estimator")
    name = cfg.get("name") if isinstance(cfg, dict) else cfg
    if not isinstance(name, str):
        return None
    try:
        factory = estimators.get(name)
    except LookupError:
        return None
    return factory if isinstance(factory, type) else None


def list_plugins(kind: str | None = None) -> dict[str, list[str]] | list[str]:
    """Registered names for ``kind``, or a dict kind -> names when ``kind`` is None."""
    if kind is None:
        return {k: r.names() for k, r in (("strategy", strategies), ("space", spaces), ("estimator", estimators),
                                          ("dataset", datasets), ("executor", executors))}
    return get_registry(kind).names()
