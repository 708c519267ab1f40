"""The one configurable base of every plugin, and the argument checks plugins share.

:class:`Configurable` is to strategies, estimators and search spaces what
scikit-learn's ``BaseEstimator`` is to estimators: **the constructor's
arguments are the whole configuration**.  A subclass

* lists every parameter explicitly in ``__init__`` (no ``*args`` / ``**kwargs``:
  a parameter that is not in the signature is invisible to ``get_params``,
  ``repr``, ``clone`` and the stored search configuration);
* stores each parameter as an attribute **of the same name** (it may normalise
  the value, e.g. ``int`` -> ``float``, as long as passing it back to the
  constructor gives the same object);

and gets, without writing any of it:

* ``name``: the name it was registered under (``@register("estimator", "my-proxy")``),
  or the kebab-case class name for an unregistered class;
* ``get_params()``: ``{parameter: self.<parameter>}`` read from the ``__init__``
  signature (of the class and of each parent it calls through explicit arguments);
* ``repr``: ``ClassName(a=1, b=2)``; ``clone()``: a new, unfitted instance with
  the same parameters; ``to_config()``: ``{"name": ..., "params": ...}`` as
  JSON-compatible data (nested plugins as their own config), the form a run
  store keeps and :func:`nas_engine.registry.from_config` reverses.

A subclass that takes ``*args``/``**kwargs`` is refused when the class is
created; a parameter not stored under its own name is reported by
``get_params`` with the attribute it expected.

The checks (:func:`check_int`, :func:`check_float`, :func:`check_choice`,
:func:`check_bool`) validate one constructor argument and raise a one-line
``ValueError`` naming the class, the parameter, what was expected and the value
given.  This module imports nothing else from the engine.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import math
import numbers
import re
from collections.abc import Collection, Sequence
from typing import Any

__all__ = [
    "Configurable",
    "PluginContractError",
    "parameters",
    "check_int",
    "check_float",
    "check_bool",
    "check_choice",
    "kebab_case",
    "config_diff",
]


class PluginContractError(TypeError):
    """A plugin class breaks the plugin contract (the message says which rule and how to fix it)."""


def kebab_case(name: str) -> str:
    """``"ConvCount"`` -> ``"conv-count"``; ``"TSEEMA"`` -> ``"tseema"``; ``"NB201Space"`` -> ``"nb201-space"``."""
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name)
    return s.lower().strip("-_").replace("_", "-")


def _init_parameters(cls: type) -> list[inspect.Parameter]:
    """The configuration parameters of ``cls``: its ``__init__``'s parameters except ``self``."""
    init = cls.__init__
    if init is object.__init__:
        return []
    params = list(inspect.signature(init).parameters.values())[1:]
    return params


class Configurable:
    """Base of strategies, estimators and search spaces (see the module docstring)."""

    #: the registered name, set on the class by the registry's decorator
    registry_name: str | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for p in _init_parameters(cls):
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise PluginContractError(
                    f"{cls.__qualname__}.__init__ takes {'*' if p.kind is p.VAR_POSITIONAL else '**'}{p.name}: "
                    "a plugin lists every constructor parameter explicitly (they are its configuration; "
                    "repeat a parent's parameters and pass them on by name)")
            if p.kind is p.POSITIONAL_ONLY:
                raise PluginContractError(
                    f"{cls.__qualname__}.__init__ has the positional-only parameter {p.name!r}: "
                    "parameters must be passable by name (they are stored and passed back as keywords)")

    # -- identity ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The registered name (or the kebab-case class name of an unregistered class)."""
        cls = type(self)
        return cls.registry_name if cls.registry_name is not None else kebab_case(cls.__name__)

    @classmethod
    def param_names(cls) -> list[str]:
        """The names of the constructor's parameters, in signature order."""
        return [p.name for p in _init_parameters(cls)]

    def get_params(self) -> dict[str, Any]:
        """``{parameter: value}`` for every constructor parameter (read from the attribute of that name)."""
        out = {}
        for name in self.param_names():
            try:
                out[name] = getattr(self, name)
            except AttributeError:
                raise PluginContractError(
                    f"{type(self).__qualname__}.__init__ takes the parameter {name!r} but the instance has no "
                    f"attribute {name!r}: store every constructor argument under its own name "
                    f"(self.{name} = {name}) so that it is part of the configuration") from None
        return out

    def clone(self):
        """A new instance with the same parameters (and none of the state that setup or use created)."""
        return type(self)(**copy.deepcopy(self.get_params()))

    def to_config(self) -> dict[str, Any]:
        """``{"name": ..., "params": ...}`` as JSON-compatible data (what a run store keeps)."""
        return {"name": self.name, "params": {k: _jsonable(v, f"{type(self).__name__}.{k}")
                                              for k, v in self.get_params().items()}}

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        """Constructor arguments for a *fast* instance, used by :mod:`nas_engine.testing`.

        Default: none (the defaults).  A plugin whose defaults are expensive
        (a supernet trained for 100 epochs, a predictor fitted on 100 trained
        networks) returns a small configuration of the same algorithm here.
        """
        return {}

    def __repr__(self) -> str:
        try:
            params = self.get_params()
        except PluginContractError:
            return f"{type(self).__name__}(<parameters not stored>)"
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as JSON-compatible data: nested plugins as their config, tuples as lists."""
    if isinstance(value, Configurable):
        return value.to_config()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if callable(getattr(value, "item", None)) and getattr(value, "shape", None) == ():  # numpy / torch scalars
        return _jsonable(value.item(), where)
    string = getattr(value, "string", None)  # an Architecture: its string
    if isinstance(string, str) and hasattr(value, "space_name"):
        return string
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise PluginContractError(
            f"parameter {where} = {value!r} ({type(value).__name__}) is not JSON-compatible: plugin parameters "
            "must be numbers, strings, booleans, None, lists/dicts of those, or plugins") from None
    return value


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys where two JSON-like configurations differ (``["estimator.params.weight"]``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in old or k not in new:
                out.append(key)
            else:
                out += config_diff(old[k], new[k], key)
        return out
    if _same(old, new):
        return []
    return [prefix or "(root)"]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def parameters(cls: type) -> type:
    """Class decorator: a plugin's parameters declared as annotated class attributes.

    ``@parameters`` makes ``cls`` a keyword-only dataclass without generated
    ``__eq__``/``__repr__``: its ``__init__`` takes every declared attribute
    (a parent's first) by name, so a subclass adds parameters without
    repeating its parent's; validate them in ``__post_init__`` (call the
    parent's).  Class attributes that are not parameters are annotated
    ``ClassVar`` or left unannotated.
    """
    return dataclasses.dataclass(eq=False, repr=False, kw_only=True)(cls)


# -- argument checks ---------------------------------------------------------------------
def _fail(who: str | None, name: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{who + ': ' if who else ''}{name} must be {expected}, got {value!r}")


def check_int(value: Any, name: str, *, who: str | None = None, low: int | None = 1, high: int | None = None,
              none: bool = False) -> int | None:
    """``value`` as an ``int`` if it is an integer (not ``bool``; numpy integers too) in ``[low, high]``
    (or ``None`` when allowed)."""
    if value is None and none:
        return None
    bounds = " and ".join(s for s in ((f">= {low}" if low is not None else ""),
                                       (f"<= {high}" if high is not None else "")) if s)
    expected = f"an integer{' ' + bounds if bounds else ''}{' or None' if none else ''}"
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or (low is not None and value < low) or (high is not None and value > high)):
        raise _fail(who, name, expected, value)
    return int(value)


def check_float(value: Any, name: str, *, who: str | None = None, low: float | None = None,
                high: float | None = None, low_open: bool = False, high_open: bool = False,
                none: bool = False) -> float | None:
    """``value`` as a finite ``float`` in the given interval (or ``None`` when allowed)."""
    if value is None and none:
        return None
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    expected = f"a finite number{' ' + ' and '.join(parts) if parts else ''}{' or None' if none else ''}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(who, name, expected, value)
    if low is not None and (value <= low if low_open else value < low):
        raise _fail(who, name, expected, value)
    if high is not None and (value >= high if high_open else value > high):
        raise _fail(who, name, expected, value)
    return float(value)


def check_bool(value: Any, name: str, *, who: str | None = None, none: bool = False) -> bool | None:
    """``value`` if it is a ``bool`` (or ``None`` when allowed)."""
    if value is None and none:
        return None
    if not isinstance(value, bool):
        raise _fail(who, name, "True, False or None" if none else "True or False", value)
    return value


def check_choice(value: Any, name: str, choices: Collection[Any] | Sequence[Any], *, who: str | None = None) -> Any:
    """``value`` if it is one of ``choices``."""
    try:
        ok = value in choices
    except TypeError:
        ok = False
    if not ok:
        names = [repr(c) for c in choices]
        raise _fail(who, name, " or ".join(names) if len(names) == 2 else "one of " + ", ".join(names), value)
    return value
