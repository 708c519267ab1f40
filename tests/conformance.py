"""Plugin conformance checks (in the spirit of scikit-learn's ``check_estimator``), shared by plugin tests."""

from __future__ import annotations

import json

from nas_engine.registry import create, get_registry


def check_plugin(kind: str, name: str):
    """A registered plugin: defaults construct, ``get_params`` is JSON-able and round-trips through ``create``.

    Returns the default instance for further checks.
    """
    assert name in get_registry(kind).names()
    obj = create(kind, name)
    assert obj.name == name
    params = json.loads(json.dumps(obj.get_params()))  # as a stored search config holds them
    again = create(kind, name, **params)
    assert type(again) is type(obj) and again.get_params() == obj.get_params()
    assert repr(obj).startswith(type(obj).__name__ + "(") and repr(again) == repr(obj)
    return obj
