"""The plugin conformance suite: ``check_space``, ``check_strategy``, ``check_estimator``.

In the spirit of scikit-learn's ``check_estimator`` and timm's tests over
``list_models()``: one set of checks that every registered plugin passes, and
that a plugin author runs on their own plugin::

    from nas_engine.testing import check_plugin, parametrize_plugins

    check_plugin("estimator", "my-proxy")          # one registered plugin, every check

    @parametrize_plugins()                          # pytest: one test per (registered plugin, check)
    def test_conforms(kind, name, check):           # ids like estimator-my-proxy-check_scores_are_seeded
        check_plugin(kind, name, check)

Each kind's checks are named functions, run in order (:func:`plugin_checks`
lists those of a plugin: ``check_registered``, ``check_configuration``, then
the kind's, e.g. ``check_mutants`` only for a ``Mutable`` space).  Run one
at a time, the checks of one plugin share their expensive set-ups (an
estimator's scores, a strategy's uninterrupted run): they are computed once
and kept for that plugin's next check.

What is checked (a failure raises :class:`ConformanceError` whose message says
what the plugin did and what was expected):

* every plugin (:func:`check_configuration`): ``name`` is the registered
  name; ``get_params()`` covers the constructor and round trips through the
  constructor, ``clone()``, ``repr`` and JSON (``to_config`` ->
  :func:`~nas_engine.registry.from_config`);
* spaces (:func:`check_space`): sampling is deterministic for a seed; the
  string round trip; ``to_graph`` is a ``networkx.DiGraph``; pickling of the
  space and its architectures; ``canonical`` is deterministic and survives the
  string and pickle round trips; malformed strings and foreign objects are
  refused with a ``ValueError``/``TypeError`` naming them; the network builds
  and gives finite logits of the right shape; ``Mutable``: mutants are valid and
  differ; ``Encodable``: one fixed length, finite numbers; ``Enumerable``:
  ``len`` equals the count ``enumerate`` gives, with no duplicates; the size
  vocabulary (:func:`check_size`): ``default_size`` declares the size
  parameters, every named size resolves over exactly those keys, and unknown
  keys, bad values and unknown size names are refused naming them;
* strategies (:func:`check_strategy`): proposals are architectures of the
  space; the same seed gives the same proposals; **a search interrupted after
  6 evaluations and continued from ``state_dict()`` (through JSON, on a fresh
  clone after ``setup``, as a stored search resumes) proposes exactly what an
  uninterrupted one does**; a space without a required capability is refused
  naming it;
* datasets (:func:`check_dataset`, on a load with given options): float32
  NCHW splits of one square resolution and channel count, int64 labels in
  range, provenance indices of the splits' sizes, a training split
  normalised to zero mean and unit variance per channel, a deterministic
  reload, a fingerprint that names the dataset, resolution and seed and
  changes with the seed, ``resolution=`` honoured, augmentation and pickling
  work;
* estimators (:func:`check_estimator`): ``Estimate`` fields of the right types,
  a finite score and cost, JSON-compatible ``info``, the same score for the
  same seed on a clone; curve estimators score a faster-learning curve higher;
  a context without data either works or is refused with a ``ValueError``/``TypeError``
  (never an ``AttributeError`` or ``KeyError`` from inside the plugin);
* a plugin of an optional extra names the packages it needs in
  ``requires_packages`` (and how to get them in ``install_hint``): where one
  cannot be imported, :func:`parametrize_plugins` marks its checks skipped
  with a message naming it (:func:`missing_packages`);
* executors (:func:`check_executor`, light: they are not configurable plugins
  and :func:`parametrize_plugins` leaves them out by default): the registered
  factory is an :class:`~nas_engine.executors.Executor` subclass that says its
  registered name and is created with its defaults; the in-process one runs a
  task (``run=True`` makes a remote one start workers and run one too).

The checks run on a fast instance: ``create(kind, name,
**cls.conformance_params())`` (see :class:`~nas_engine.config.Configurable`),
NAS-Bench-201 as the default space, scikit-learn's 8x8 digits and each space's
smallest named size (``"tiny"``: NB201 at width 4) as the default data and
protocol.  A dataset plugin (a reader, not a
configurable class) is checked on ``load_dataset(name, **options)`` with the
options in its ``conformance_options`` attribute (none by default); a dataset
that reads files is checked with :func:`check_dataset` and a ``root``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import pickle
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import torch

from .config import Configurable, PluginContractError
from .context import Context
from .curves import LearningCurve
from .data import Dataset, augment_batch, clear_cache, load_dataset
from .estimators.base import CurveEstimator, Estimate, Estimator
from .executors import Executor, create_executor
from .registry import create, from_config, get_registry, list_plugins
from .results import Budget, Evaluation
from .spaces.base import Architecture, Encodable, Enumerable, HasSupernet, Mutable, SearchSpace
from .strategies.base import Strategy
from .training import Protocol

__all__ = [
    "ConformanceError",
    "check_configuration",
    "check_space",
    "check_size",
    "smallest_scale",
    "check_strategy",
    "check_estimator",
    "check_dataset",
    "check_executor",
    "check_plugin",
    "check_registered",
    "plugin_checks",
    "registered_plugins",
    "parametrize_plugins",
    "missing_packages",
    "conformance_context",
]

#: the protocol of the default context: each space's "tiny" size where it has one (NB201: width 4, one cell per
#: stage, about 0.1 s per epoch on digits), else its "small" or default one (:func:`smallest_scale`)
PROTOCOL = Protocol(schedule_epochs=4, batch_size=64, lr=0.05, scale="tiny", device="cpu")
#: evaluations of the uninterrupted run and the point where the interrupted one is resumed (the issue's 6 + 4)
EVALUATIONS, RESUME_AFTER = 10, 6
#: NB201 cells with a convolution on every input-output path (every zero-cost measure is defined on them)
NB201_ARCHS = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_3x3~0|none~1|nor_conv_1x1~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|",
)


class ConformanceError(AssertionError):
    """A plugin failed a conformance check (the message says what it did and what was expected)."""


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise ConformanceError(message)


def _who(plugin: Any) -> str:
    return f"{type(plugin).__name__} ({getattr(plugin, 'name', '?')!r})"


# -- configuration ---------------------------------------------------------------------------------
def check_configuration(plugin: Configurable, kind: str | None = None) -> None:
    """``name``, ``get_params``, ``clone``, ``repr`` and the JSON round trip of one plugin instance."""
    who = _who(plugin)
    _expect(isinstance(plugin, Configurable),
            f"{who} does not derive from nas_engine.api's Strategy / Estimator / SearchSpace (Configurable)")
    _expect(isinstance(plugin.name, str) and bool(plugin.name), f"{who}: name must be a non-empty string")
    if kind is not None and plugin.name in get_registry(kind).names():
        factory = get_registry(kind).get(plugin.name)
        _expect(not isinstance(factory, type) or isinstance(plugin, factory),
                f"{who}: its name {plugin.name!r} is registered for {factory!r}, another class")
    try:
        params = plugin.get_params()
    except PluginContractError as exc:
        raise ConformanceError(f"{who}: {exc}") from None
    _expect(list(params) == type(plugin).param_names(),
            f"{who}: get_params() gives {sorted(params)}, the constructor takes {type(plugin).param_names()}: "
            "do not override get_params; store every constructor argument under its own name")
    try:
        again = type(plugin)(**params)
    except Exception as exc:
        raise ConformanceError(f"{who}: passing get_params() back to the constructor fails "
                               f"({type(exc).__name__}: {exc}); store the arguments as the constructor accepts them"
                               ) from None
    _expect(_same_config(again, plugin), f"{who}: {type(plugin).__name__}(**get_params()) has other parameters "
            f"({again.get_params()} vs {params}): the constructor must keep what it is given")
    clone = plugin.clone()
    _expect(clone is not plugin and type(clone) is type(plugin) and _same_config(clone, plugin),
            f"{who}: clone() must give a new {type(plugin).__name__} with the same parameters")
    _expect(repr(plugin).startswith(type(plugin).__name__ + "(") and repr(clone) == repr(plugin),
            f"{who}: repr must be ClassName(param=value, ...) and equal for a clone, got {repr(plugin)!r}")
    try:
        text = json.dumps(plugin.to_config(), allow_nan=True)
    except (PluginContractError, TypeError, ValueError) as exc:
        raise ConformanceError(f"{who}: its configuration is not JSON-compatible: {exc}") from None
    if kind is not None and plugin.name in get_registry(kind).names():
        rebuilt = from_config(kind, json.loads(text))
        _expect(json.dumps(rebuilt.to_config(), allow_nan=True) == text,
                f"{who}: from_config(to_config()) through JSON gives {rebuilt!r}, not {plugin!r}: parameter "
                "values must survive JSON (lists for tuples, plain numbers) and be accepted back")


def _same_config(a: Configurable, b: Configurable) -> bool:
    try:
        return json.dumps(a.to_config(), allow_nan=True) == json.dumps(b.to_config(), allow_nan=True)
    except (PluginContractError, TypeError, ValueError):
        return a.get_params() == b.get_params()


# -- the default context ---------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _digits() -> Dataset:
    return load_dataset("digits", n_train=512, n_val=128)


def conformance_context(space: SearchSpace | None = None, *, data: Dataset | None = None,
                        protocol: Protocol | None = None, evaluations: int = EVALUATIONS, seed: int = 0) -> Context:
    """The context the checks use: NB201 (or ``space``), 8x8 digits, :data:`PROTOCOL`, seed 0."""
    space = space if space is not None else create("space", "nb201")
    return Context(space=space, data=data if data is not None else _digits(),
                   protocol=protocol if protocol is not None else PROTOCOL.replace(scale=smallest_scale(space)),
                   seed=seed,
                   budget=Budget(evaluations=evaluations))


def _sample_archs(space: SearchSpace, n: int) -> list[Architecture]:
    if space.name == "nb201":
        return [space.from_string(s) for s in NB201_ARCHS[:n]]
    return [space.sample(np.random.default_rng(1000 + i)) for i in range(n)]


# -- one plugin under check ------------------------------------------------------------------------------
class _Subject:
    """One plugin instance under check, its check options, and what several of its checks share (computed on
    first use and kept, failures included, so that checks run one at a time repeat no expensive set-up)."""

    def __init__(self, obj: Any, **options: Any):
        self.obj, self.options, self.who = obj, options, _who(obj)
        self._memo: dict[str, tuple[bool, Any]] = {}

    def shared(self, key: str, compute) -> Any:
        if key not in self._memo:
            try:
                self._memo[key] = (True, compute())
            except Exception as exc:
                self._memo[key] = (False, exc)
        ok, value = self._memo[key]
        if not ok:
            raise value
        return value


class _Check(NamedTuple):
    name: str
    run: Callable[[_Subject], None]
    applies: Callable[[Any], bool] = lambda obj: True


def _run_checks(checks: Sequence[_Check], subject: _Subject) -> None:
    for check in checks:
        if check.applies(subject.obj):
            check.run(subject)


# -- spaces -----------------------------------------------------------------------------------------
def check_space(space: SearchSpace, *, samples: int = 8, in_channels: int = 3, side: int = 8,
                enumerate_limit: int = 200_000) -> None:
    """The space invariants (see the module docstring) on ``samples`` sampled architectures."""
    _run_checks(SPACE_CHECKS, _Subject(space, samples=samples, in_channels=in_channels, side=side,
                                       enumerate_limit=enumerate_limit))


def _space_options(s: _Subject) -> dict[str, Any]:
    return {"samples": 8, "in_channels": 3, "side": 8, "enumerate_limit": 200_000, **s.options}


def _space_samples(s: _Subject) -> list[Architecture]:
    space, n = s.obj, _space_options(s)["samples"]
    return s.shared("samples", lambda: [space.sample(np.random.default_rng(i)) for i in range(n)])


def _check_space_configuration(s: _Subject) -> None:
    check_configuration(s.obj, "space")


def _check_sampling_is_seeded(s: _Subject) -> None:
    space = s.obj
    a0, b0 = space.sample(np.random.default_rng(0)), space.sample(np.random.default_rng(0))
    _expect(a0 == b0, f"{s.who}: sample(rng) must depend only on rng: two generators seeded 0 gave {a0} and {b0}")


def _check_round_trips(s: _Subject) -> None:
    space, who = s.obj, s.who
    for a in _space_samples(s):
        _expect(isinstance(a, Architecture), f"{who}: sample() returned {type(a).__name__}, not an Architecture")
        _expect(a.space_name == space.name, f"{who}: sample() gave an architecture of space {a.space_name!r}")
        text = space.to_string(a)
        b = space.from_string(text)
        _expect(b == a and b.string == text and hash(b) == hash(a),
                f"{who}: from_string(to_string(a)) must equal a; {text!r} came back as {b.string!r}")
        g = space.to_graph(a)
        _expect(isinstance(g, nx.DiGraph) and g.number_of_nodes() > 0,
                f"{who}: to_graph must give a non-empty networkx.DiGraph, got {type(g).__name__}")
        p = pickle.loads(pickle.dumps(a))
        _expect(p == a, f"{who}: an architecture must survive pickling (workers receive them), {a} did not")
        c = space.canonical(a)
        hash(c)
        _expect(space.canonical(b) == c and space.canonical(p) == c,
                f"{who}: canonical(a) must not change through the string or pickle round trip ({a})")


def _check_space_pickles(s: _Subject) -> None:
    _expect(pickle.loads(pickle.dumps(s.obj)) == s.obj,
            f"{s.who}: the space must survive pickling and compare equal (spaces travel to worker processes)")


def _check_refuses_malformed_input(s: _Subject) -> None:
    space, who = s.obj, s.who
    bad = "\u2603 not an architecture"
    try:
        space.from_string(bad)
    except ValueError as exc:
        _expect("\n" not in str(exc) and str(exc) != "", f"{who}: from_string({bad!r}) must raise a one-line "
                f"ValueError naming the bad value, got {str(exc)!r}")
    else:
        raise ConformanceError(f"{who}: from_string({bad!r}) must raise ValueError")
    try:
        space.check_architecture("not an architecture")
    except (TypeError, ValueError):
        pass
    else:
        raise ConformanceError(f"{who}: check_architecture(str) must raise TypeError")


def _check_network_builds(s: _Subject) -> None:
    o = _space_options(s)
    _check_network(s.obj, _space_samples(s)[0], o["in_channels"], o["side"])


def _check_mutants(s: _Subject) -> None:
    space, who = s.obj, s.who
    for i, a in enumerate(_space_samples(s)):
        m = space.mutate(a, np.random.default_rng(i))
        _expect(isinstance(m, Architecture) and m.space_name == space.name and m != a,
                f"{who}: mutate(a) must give a different architecture of this space; {a} gave {m}")
        _expect(space.from_string(m.string) == m, f"{who}: the mutant {m} of {a} does not parse back")


def _check_encoding(s: _Subject) -> None:
    codes = [np.asarray(s.obj.encode(a)) for a in _space_samples(s)]
    _expect(all(c.ndim >= 1 and np.issubdtype(c.dtype, np.number) and np.isfinite(c).all() for c in codes),
            f"{s.who}: encode(a) must give an array of finite numbers")
    _expect(len({c.shape for c in codes}) == 1, f"{s.who}: encode(a) must have one fixed shape for every "
            f"architecture, got {sorted({c.shape for c in codes})}")


def _check_enumeration(s: _Subject) -> None:
    space, who = s.obj, s.who
    n = len(space)
    _expect(isinstance(n, int) and n > 0, f"{who}: len(space) must be a positive integer, got {n!r}")
    if n <= _space_options(s)["enumerate_limit"]:
        strings = [a.string for a in space.enumerate()]
        _expect(len(strings) == n, f"{who}: enumerate() gave {len(strings)} architectures, len(space) says {n}")
        _expect(len(set(strings)) == n, f"{who}: enumerate() gave {n - len(set(strings))} duplicates")
        known = set(strings)
        _expect(all(a.string in known for a in _space_samples(s)),
                f"{who}: sample() gave an architecture enumerate() lacks")


def _check_supernet(s: _Subject) -> None:
    net = s.obj.supernet(10, in_channels=_space_options(s)["in_channels"], **_small_size(s.obj))
    _expect(isinstance(net, torch.nn.Module), f"{s.who}: supernet() must give a torch.nn.Module")


def check_size(space: SearchSpace) -> None:
    """The space's size vocabulary: ``default_size`` declares its size parameters (a mapping of names to
    positive numbers, which ``resolve_size`` accepts as they are), every named size resolves to a mapping over
    exactly those keys, ``build`` accepts the resolved size, and an unknown key, a bad value or an unknown
    size name raise a one-line ``ValueError`` naming it."""
    who = _who(space)
    declared = space.default_size
    _expect(isinstance(declared, dict) and all(isinstance(k, str) and k.isidentifier() for k in declared),
            f"{who}: default_size must be a dict of size parameter names to values, got {declared!r}")
    _expect(space.resolve_size() == declared,
            f"{who}: resolve_size() must give default_size, got {space.resolve_size()!r} for {declared!r}")
    for name in space.size_names():
        size = space.resolve_size(scale=name)
        _expect(set(size) == set(declared), f"{who}: the size {name!r} resolves to keys {sorted(size)}, expected "
                f"the declared {sorted(declared)}")

    def refused(what: str, call) -> None:
        try:
            call()
        except ValueError as exc:
            _expect("\n" not in str(exc) and str(exc) != "", f"{who}: {what} must raise a one-line ValueError, "
                    f"got {str(exc)!r}")
        else:
            raise ConformanceError(f"{who}: {what} must raise ValueError")

    refused("resolve_size({'no_such_size': 1})", lambda: space.resolve_size({"no_such_size": 1}))
    if declared:
        refused("resolve_size(scale='no-such-size')", lambda: space.resolve_size(scale="no-such-size"))
    for key in declared:
        refused(f"resolve_size({{{key!r}: -1}})", lambda key=key: space.resolve_size({key: -1}))
        refused(f"resolve_size({{{key!r}: True}})", lambda key=key: space.resolve_size({key: True}))


def _check_size(s: _Subject) -> None:
    check_size(s.obj)


def smallest_scale(space: SearchSpace) -> str:
    """The smallest named size of ``space`` the checks use: ``"tiny"``, else ``"small"``, else ``"default"``."""
    return next(s for s in ("tiny", "small", "default") if s in space.size_names())


def _small_size(space: SearchSpace) -> dict[str, Any]:
    return space.resolve_size(scale=smallest_scale(space))


def _check_network(space: SearchSpace, a: Architecture, in_channels: int, side: int) -> None:
    who = _who(space)
    model = space.build(a, 10, in_channels=in_channels, **_small_size(space))
    _expect(isinstance(model, torch.nn.Module), f"{who}: build() must give a torch.nn.Module, got {type(model)}")
    with torch.no_grad():
        out = model.eval()(torch.randn(2, in_channels, side, side, generator=torch.Generator().manual_seed(0)))
    out = out[-1] if isinstance(out, (tuple, list)) else out
    _expect(tuple(out.shape) == (2, 10) and bool(torch.isfinite(out).all()),
            f"{who}: build(a, num_classes=10) must map a (2, {in_channels}, {side}, {side}) batch to finite (2, 10) "
            f"logits, got shape {tuple(out.shape)}")


# -- strategies -----------------------------------------------------------------------------------------
def _fake_outcome(arch: Architecture) -> tuple[float, str]:
    """A deterministic made-up score in [0, 1) (every fifth-ish architecture fails), from the string alone."""
    h = int.from_bytes(hashlib.sha256(arch.string.encode()).digest()[:4], "little")
    return (-math.inf, "failed") if h % 5 == 0 else (h / 2**32, "ok")


class _Driver:
    """Asks and tells like an inline search: one evaluation at a time, repeats answered from earlier results."""

    def __init__(self, strategy: Strategy, space: SearchSpace):
        self.strategy, self.space = strategy, space
        self.queue: deque[Architecture] = deque()
        self.history: list[Evaluation] = []
        self.done: dict[str, Evaluation] = {}

    def run(self, until: int) -> None:
        who = _who(self.strategy)
        while len(self.history) < until:
            if not self.queue:
                proposed = self.strategy.ask()
                _expect(isinstance(proposed, list), f"{who}: ask() must return a list, got {type(proposed).__name__}")
                for a in proposed:
                    try:
                        self.space.check_architecture(a)
                    except (TypeError, ValueError) as exc:
                        raise ConformanceError(f"{who}: ask() proposed something that is not an architecture of "
                                               f"the search space: {exc}") from None
                if not proposed:
                    return
                self.queue.extend(proposed)
            arch = self.queue.popleft()
            prev = self.done.get(arch.string)
            score, status = (prev.score, prev.status) if prev else _fake_outcome(arch)
            ev = Evaluation(index=len(self.history), arch=arch, score=score, cost_seconds=0.0 if prev else 1.0,
                            epochs=0.0 if prev else 1.0, status=status, reason=None if status == "ok" else "made up",
                            seed=0, cached=prev is not None)
            self.history.append(ev)
            self.done.setdefault(arch.string, ev)
            self.strategy.tell([ev])

    def proposals(self) -> list[str]:
        return [e.arch.string for e in self.history]


def check_strategy(strategy: Strategy, *, space: SearchSpace | None = None, ctx: Context | None = None,
                   evaluations: int = EVALUATIONS, resume_after: int = RESUME_AFTER) -> None:
    """The strategy checks (see the module docstring): determinism and continuation after a state round trip."""
    _run_checks(STRATEGY_CHECKS, _Subject(strategy, space=space, ctx=ctx, evaluations=evaluations,
                                          resume_after=resume_after))


def _strategy_options(s: _Subject) -> dict[str, Any]:
    return {"space": None, "ctx": None, "evaluations": EVALUATIONS, "resume_after": RESUME_AFTER, **s.options}


def _strategy_context(s: _Subject) -> Context:
    o = _strategy_options(s)
    return s.shared("ctx", lambda: o["ctx"] if o["ctx"] is not None
                    else conformance_context(o["space"], evaluations=o["evaluations"]))


def _fresh_driver(s: _Subject) -> _Driver:
    ctx = _strategy_context(s)
    strategy = s.obj.clone()
    strategy.setup(ctx.space, replace(ctx, strategy=strategy))
    return _Driver(strategy, ctx.space)


def _full_run(s: _Subject) -> _Driver:
    """The uninterrupted run the determinism and resume checks compare with (run once)."""
    def run() -> _Driver:
        full = _fresh_driver(s)
        full.run(_strategy_options(s)["evaluations"])
        _expect(len(full.history) > 0, f"{s.who}: proposed nothing on {full.space.name!r}")
        return full

    return s.shared("full", run)


def _check_strategy_configuration(s: _Subject) -> None:
    check_configuration(s.obj, "strategy")


def _check_proposals_are_seeded(s: _Subject) -> None:
    full = _full_run(s)
    again = _fresh_driver(s)
    again.run(_strategy_options(s)["evaluations"])
    _expect(again.proposals() == full.proposals(), f"{s.who}: two runs with the same seed proposed different "
            f"architectures; draw every random choice from self.rng (seeded by setup)")


def _check_resumes_from_state_dict(s: _Subject) -> None:
    who, o = s.who, _strategy_options(s)
    resume_after = o["resume_after"]
    full = _full_run(s)
    first = _fresh_driver(s)
    first.run(resume_after)
    try:
        text = json.dumps(first.strategy.state_dict(), allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ConformanceError(f"{who}: state_dict() must be JSON-compatible (a run store keeps it): {exc}") from None
    resumed = _fresh_driver(s)
    space = resumed.space
    resumed.strategy.load_state_dict(json.loads(text))
    resumed.queue = deque(space.from_string(a.string) for a in first.queue)
    resumed.history, resumed.done = list(first.history), dict(first.done)
    resumed.run(o["evaluations"])
    got, want = resumed.proposals(), full.proposals()
    for i, (g, w) in enumerate(zip(got, want)):
        _expect(g == w, f"{who}: a search resumed after {resume_after} evaluations proposed {g} as evaluation {i}, "
                f"an uninterrupted one {w}: state_dict() must hold everything the strategy needs to continue "
                "(its population, observations, queues, RNG), and load_state_dict() restore it")
    _expect(len(got) == len(want), f"{who}: a search resumed after {resume_after} evaluations made {len(got)} "
            f"evaluations, an uninterrupted one {len(want)}: state_dict() must hold everything to continue")


def _check_required_capabilities(s: _Subject) -> None:
    strategy, who, ctx = s.obj, s.who, _strategy_context(s)
    bare, names = _Without(ctx.space), [cap.__name__ for cap in strategy.requires]
    try:
        strategy.clone().setup(bare, replace(ctx, space=bare))
    except TypeError as exc:
        _expect(any(n in str(exc) for n in names), f"{who}: setup on a space without its required "
                f"capabilities ({', '.join(names)}) must name the missing one, got {exc}")
    else:
        raise ConformanceError(f"{who} requires {', '.join(names)} but setup accepted a space without them")


class _Without(SearchSpace):
    """A space with the core methods of ``space`` and none of its capabilities."""

    def __init__(self, space: SearchSpace):
        self.space = space

    @property
    def name(self) -> str:
        return self.space.name

    def sample(self, rng):
        return self.space.sample(rng)

    def from_string(self, s):
        return self.space.from_string(s)

    def to_graph(self, a):
        return self.space.to_graph(a)

    def build(self, a, num_classes, **size):
        return self.space.build(a, num_classes, **size)


# -- estimators -----------------------------------------------------------------------------------------
def _estimator_context(estimator: Estimator, ctx: Context | None) -> Context:
    if ctx is not None:
        return ctx
    ctx = conformance_context()
    if estimator.conformance_strategy is not None:  # e.g. inherited-weight estimators need a one-shot strategy
        cls = get_registry("strategy").get(estimator.conformance_strategy)
        strategy = create("strategy", estimator.conformance_strategy, **cls.conformance_params())
        strategy.setup(ctx.space, ctx)
        ctx = replace(ctx, strategy=strategy)
    return ctx


def check_estimator(estimator: Estimator, *, ctx: Context | None = None,
                    archs: Sequence[Architecture] | None = None) -> None:
    """The estimator checks (see the module docstring) on three architectures."""
    _run_checks(ESTIMATOR_CHECKS, _Subject(estimator, ctx=ctx, archs=archs))


def _estimator_inputs(s: _Subject) -> tuple[Context, list[Architecture]]:
    def make():
        ctx = _estimator_context(s.obj, s.options.get("ctx"))
        archs = s.options.get("archs")
        return ctx, list(archs) if archs is not None else _sample_archs(ctx.space, 3)

    return s.shared("inputs", make)


def _scores(s: _Subject) -> list[float]:
    ctx, archs = _estimator_inputs(s)
    est = s.obj.clone()
    est.validate_context(ctx)
    out = []
    for a in archs:
        e = est.estimate(a, ctx)
        _check_estimate(s.who, a, e)
        out.append(e.score)
    return out


def _check_estimator_configuration(s: _Subject) -> None:
    check_configuration(s.obj, "estimator")


def _check_estimates(s: _Subject) -> None:
    s.shared("first", lambda: _scores(s))


def _check_scores_are_seeded(s: _Subject) -> None:
    first, second = s.shared("first", lambda: _scores(s)), _scores(s)
    _expect(first == second, f"{s.who}: the same architectures in the same context (same seed) gave other scores "
            f"({first} vs {second}); seed every random choice from ctx.arch_seed(arch)")


def _check_scores_higher_is_better(s: _Subject) -> None:
    _check_higher_is_better(s.obj)


def _check_refuses_missing_data(s: _Subject) -> None:
    ctx, archs = _estimator_inputs(s)
    bad = replace(ctx, data=None, table=None)
    try:
        e = s.obj.clone()
        e.validate_context(bad)
        e.estimate(archs[0], bad)
    except (ValueError, TypeError) as exc:
        _expect(bool(str(exc)), f"{s.who}: refusing a context without data must say why")
    except Exception as exc:
        raise ConformanceError(f"{s.who}: a context without data (data=None, no table) must be refused with a "
                               f"ValueError saying what is missing, got {type(exc).__name__}: {exc}") from None


def _check_estimate(who: str, arch: Architecture, e: Estimate) -> None:
    _expect(isinstance(e, Estimate), f"{who}: estimate() must return an Estimate, got {type(e).__name__}")
    _expect(isinstance(e.score, (int, float, np.floating)) and not isinstance(e.score, bool)
            and math.isfinite(e.score), f"{who}: the score of {arch} must be a finite number, got {e.score!r}")
    for field in ("cost_seconds", "epochs"):
        v = getattr(e, field)
        _expect(isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0,
                f"{who}: Estimate.{field} must be a finite number >= 0, got {v!r}")
    _expect(e.curve is None or isinstance(e.curve, LearningCurve),
            f"{who}: Estimate.curve must be a LearningCurve or None, got {type(e.curve).__name__}")
    try:
        json.dumps(e.info, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ConformanceError(f"{who}: Estimate.info must be JSON-compatible (the run store keeps it): {exc}"
                               ) from None


def _check_higher_is_better(estimator: CurveEstimator) -> None:
    """A curve whose losses are lower and accuracies higher at every epoch must score higher."""
    who = _who(estimator)
    T = estimator.epochs

    def curve(scale: float) -> LearningCurve:
        loss = [scale * 2.0 / (t + 1) for t in range(T)]
        acc = [min(1.0, 0.5 / scale * (t + 1) / T) for t in range(T)]
        return LearningCurve(train_loss=loss, val_loss=[v * 1.1 for v in loss], train_acc=acc, val_acc=acc,
                             minibatch_losses=[[v * 1.05, v, v * 0.95] for v in loss],
                             epoch_seconds=[1.0] * T)

    better, worse = estimator.score(curve(1.0)), estimator.score(curve(2.0))
    _expect(better > worse, f"{who}: a curve with lower losses and higher accuracies scored {better}, a worse one "
            f"{worse}: scores are higher-is-better (negate losses)")


# -- datasets ----------------------------------------------------------------------------------------------
def check_dataset(name: str, **options: Any) -> Dataset:
    """The dataset invariants (see the module docstring) of ``load_dataset(name, **options)``; returns that
    dataset.  ``options`` are :func:`~nas_engine.data.load_dataset`'s (``root=``, ``n_train=``, ``seed=``, the
    dataset's own); keep the load small, it is repeated four times."""
    who = f"dataset {name!r}"
    known = list_plugins("dataset")
    _expect(name in known, f"{who} is not registered (known: {', '.join(known)})")
    ds = load_dataset(name, **options)
    _expect(isinstance(ds, Dataset), f"{who}: load_dataset returned {type(ds).__name__}, not a Dataset")
    _expect(ds.name == name, f"{who}: the Dataset is named {ds.name!r}, not by its registered name")
    res, channels = ds.resolution, ds.in_channels
    splits = [("train", ds.x_train, ds.y_train), ("val", ds.x_val, ds.y_val)]
    if ds.x_test is not None or ds.y_test is not None:
        splits.append(("test", ds.x_test, ds.y_test))
    _expect(ds.n_train > 0, f"{who}: the training split is empty")
    _expect(isinstance(ds.num_classes, int) and ds.num_classes >= 1, f"{who}: num_classes={ds.num_classes!r}")
    for split, x, y in splits:
        _expect(isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor),
                f"{who}: {split} images and labels must be tensors")
        _expect(x.dtype == torch.float32 and x.dim() == 4 and tuple(x.shape[1:]) == (channels, res, res),
                f"{who}: {split} images are {x.dtype} {tuple(x.shape)}, expected float32 "
                f"(N, {channels}, {res}, {res})")
        _expect(y.dtype == torch.int64 and tuple(y.shape) == (len(x),),
                f"{who}: {split} labels are {y.dtype} {tuple(y.shape)}, expected int64 ({len(x)},)")
        _expect(bool(torch.isfinite(x).all()), f"{who}: {split} images hold NaN or inf")
        _expect(len(y) == 0 or 0 <= int(y.min()) <= int(y.max()) < ds.num_classes,
                f"{who}: {split} labels outside 0..{ds.num_classes - 1}")
    train_idx, val_idx = ds.info.get("train_indices"), ds.info.get("val_indices")
    if train_idx is not None and val_idx is not None:
        _expect(len(train_idx) == ds.n_train and len(val_idx) == ds.n_val,
                f"{who}: info's train_indices / val_indices must have one entry per image of the split")
    _expect(len(ds.mean) == channels and len(ds.std) == channels and all(s > 0 for s in ds.std),
            f"{who}: mean / std must give one value per channel (std > 0), got {ds.mean} / {ds.std}")
    var, mean = torch.var_mean(ds.x_train, dim=(0, 2, 3), correction=0)
    varying = torch.tensor([s > 1e-6 for s in ds.std])  # a constant channel stays 0 after normalising
    _expect(bool((mean.abs() < 1e-3).all()) and bool(((var - 1).abs() < 1e-2)[varying].all()),
            f"{who}: the training split must be normalised per channel (mean 0, variance 1), "
            f"got means {mean.tolist()} and variances {var.tolist()}")
    _expect(isinstance(ds.crop_padding, int) and ds.crop_padding >= 0 and isinstance(ds.flip, bool),
            f"{who}: crop_padding must be an int >= 0 and flip a bool, got {ds.crop_padding!r}, {ds.flip!r}")
    batch = ds.x_train[:4]
    augmented = augment_batch(batch, torch.Generator().manual_seed(0), padding=ds.crop_padding, flip=ds.flip)
    _expect(augmented.shape == batch.shape, f"{who}: augmentation changed the batch shape")
    fp = ds.fingerprint()
    seed = options.get("seed", 0)
    _expect(fp.startswith(name + ":") and f":{res}px" in fp and fp.endswith(f":seed{seed}"),
            f"{who}: the fingerprint {fp!r} must start with the name and hold the resolution and the seed")
    _expect(pickle.loads(pickle.dumps(ds)).fingerprint() == fp, f"{who}: a pickled Dataset lost its fingerprint")
    clear_cache()
    again = load_dataset(name, **options)
    fields = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    same = again.fingerprint() == fp and all(
        (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
        for a, b in ((getattr(ds, f), getattr(again, f)) for f in fields))
    _expect(same, f"{who}: loading it again with the same options gave other data "
            f"(fingerprint {again.fingerprint()!r})")
    other = load_dataset(name, **{**options, "seed": seed + 1})
    _expect(other.fingerprint() != fp, f"{who}: seed={seed + 1} gave the fingerprint of seed={seed} ({fp!r})")
    if res > 1:
        half = load_dataset(name, **{**options, "resolution": res // 2})
        _expect(tuple(half.x_train.shape[2:]) == (res // 2, res // 2) and f":{res // 2}px" in half.fingerprint(),
                f"{who}: resolution={res // 2} gave images of {tuple(half.x_train.shape[2:])}")
    return ds


# -- the checks, by kind, in the order they run ------------------------------------------------------------
SPACE_CHECKS = (
    _Check("check_configuration", _check_space_configuration),
    _Check("check_sampling_is_seeded", _check_sampling_is_seeded),
    _Check("check_round_trips", _check_round_trips),
    _Check("check_space_pickles", _check_space_pickles),
    _Check("check_refuses_malformed_input", _check_refuses_malformed_input),
    _Check("check_network_builds", _check_network_builds),
    _Check("check_mutants", _check_mutants, lambda space: isinstance(space, Mutable)),
    _Check("check_encoding", _check_encoding, lambda space: isinstance(space, Encodable)),
    _Check("check_enumeration", _check_enumeration, lambda space: isinstance(space, Enumerable)),
    _Check("check_supernet", _check_supernet, lambda space: isinstance(space, HasSupernet)),
    _Check("check_size", _check_size),
)
STRATEGY_CHECKS = (
    _Check("check_configuration", _check_strategy_configuration),
    _Check("check_proposals_are_seeded", _check_proposals_are_seeded),
    _Check("check_resumes_from_state_dict", _check_resumes_from_state_dict),
    _Check("check_required_capabilities", _check_required_capabilities, lambda strategy: bool(strategy.requires)),
)
ESTIMATOR_CHECKS = (
    _Check("check_configuration", _check_estimator_configuration),
    _Check("check_estimates", _check_estimates),
    _Check("check_scores_are_seeded", _check_scores_are_seeded),
    _Check("check_scores_higher_is_better", _check_scores_higher_is_better,
           lambda estimator: isinstance(estimator, CurveEstimator)),
    _Check("check_refuses_missing_data", _check_refuses_missing_data),
)
_CHECKS = {"space": SPACE_CHECKS, "strategy": STRATEGY_CHECKS, "estimator": ESTIMATOR_CHECKS}
#: a registered plugin's first check: its default instance's configuration (:func:`check_registered`)
REGISTERED = "check_registered"
#: a dataset's one check (:func:`check_dataset`)
DATASET = "check_dataset"


# -- registered plugins ------------------------------------------------------------------------------------
def check_registered(kind: str, name: str) -> Configurable:
    """The registered plugin ``name`` of ``kind`` with its default arguments (its fast configuration when it
    has required ones): its configuration checks.

    Returns the default instance.  (The full checks of :func:`check_plugin`
    run on the fast ``conformance_params()`` instance.)
    """
    registry = get_registry(kind)
    _expect(name in registry.names(), f"{kind} {name!r} is not registered")
    cls = registry.get(name)
    required = [p for p in inspect.signature(cls).parameters.values() if p.default is p.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    # a plugin with required arguments (``fixed``: its list) is checked with its fast configuration
    obj = registry.create(name, **(cls.conformance_params() if required else {}))
    _expect(obj.name == name, f"{kind} registered as {name!r} says its name is {obj.name!r}")
    check_configuration(obj, kind)
    return obj


def _fast_instance(kind: str, name: str) -> Configurable:
    cls = get_registry(kind).get(name)
    params = cls.conformance_params() if isinstance(cls, type) and issubclass(cls, Configurable) else {}
    return create(kind, name, **params)


def plugin_checks(kind: str, name: str) -> list[str]:
    """The names of the checks :func:`check_plugin` runs on the registered plugin ``name`` of ``kind``, in order
    (those that apply to it: e.g. ``check_mutants`` only for a :class:`~nas_engine.spaces.base.Mutable` space)."""
    registry = get_registry(kind)
    _expect(name in registry.names(), f"{kind} {name!r} is not registered")
    if registry.kind == "dataset":
        return [DATASET]
    obj = _fast_instance(kind, name)
    return [REGISTERED] + [c.name for c in _CHECKS[registry.kind] if c.applies(obj)]


#: the plugin whose single checks ran last ((kind, name), factory, subject): its set-ups serve its next check
_LAST: list[tuple[tuple[str, str], Any, _Subject]] = []


def check_executor(name: str, *, run: bool | None = None) -> Executor:
    """The registered executor ``name``: an :class:`~nas_engine.executors.Executor` subclass whose ``name`` is
    the registered one, created by :func:`~nas_engine.executors.create_executor` with its defaults; with
    ``run`` (default: only for an executor that runs tasks in this process) it starts, runs one task, returns
    its result and shuts down.  Returns the executor."""
    registry = get_registry("executor")
    _expect(name in registry.names(), f"executor {name!r} is not registered")
    cls = registry.get(name)
    _expect(isinstance(cls, type) and issubclass(cls, Executor),
            f"executor {name!r} is registered as {cls!r}, which is not an Executor subclass")
    _expect(cls.name == name, f"executor registered as {name!r} says its name is {cls.name!r}")
    ex = create_executor(name)
    _expect(type(ex) is cls, f"create_executor({name!r}) made a {type(ex).__name__}, not a {cls.__name__}")
    if run if run is not None else not ex.remote:
        with ex:
            handle = ex.submit(pow, 2, 5)
            done = ex.wait([handle])
            _expect(len(done) == 1, f"executor {name!r}: wait on one submitted task returned {done!r}")
            got = ex.result(done[0])
        _expect(got == 32, f"executor {name!r}: the task pow(2, 5) returned {got!r}")
    return ex


def check_plugin(kind: str, name: str, check: str | None = None) -> Configurable | Executor:
    """Every check for the registered plugin ``name`` of ``kind`` (``"space"``, ``"strategy"``, ``"estimator"``,
    ``"dataset"``: :func:`check_dataset` with the factory's ``conformance_options``), or only the one named
    ``check`` (one of :func:`plugin_checks`; what several checks share, such as an estimator's scores, is kept
    for the same plugin's next check).  Returns the instance checked."""
    registry = get_registry(kind)
    if registry.kind == "executor":
        if check is not None:
            raise ValueError(f"executor {name!r} has one check (check_executor), not {check!r}")
        return check_executor(name)
    if registry.kind == "dataset":
        if check not in (None, DATASET):
            raise ValueError(f"{check!r} is not a check of dataset {name!r}; its checks: {DATASET}")
        return check_dataset(name, **getattr(registry.get(name), "conformance_options", {}))
    if check is None:
        check_registered(kind, name)
        obj = _fast_instance(kind, name)
        _run_checks(_CHECKS[registry.kind], _Subject(obj))
        return obj
    _expect(name in registry.names(), f"{kind} {name!r} is not registered")
    factory = registry.get(name)
    if not (_LAST and _LAST[0][0] == (registry.kind, name) and _LAST[0][1] is factory):
        _LAST[:] = [((registry.kind, name), factory, _Subject(_fast_instance(kind, name)))]
    subject = _LAST[0][2]
    checks = {c.name: c for c in _CHECKS[registry.kind] if c.applies(subject.obj)}
    if check != REGISTERED and check not in checks:
        raise ValueError(f"{check!r} is not a check of {kind} {name!r}; its checks: "
                         f"{', '.join([REGISTERED, *checks])}")
    if check == REGISTERED:
        return check_registered(kind, name)
    checks[check].run(subject)
    return subject.obj


def registered_plugins(kinds: Sequence[str] = ("space", "strategy", "estimator")) -> list[tuple[str, str]]:
    """``[(kind, name), ...]`` for every registered plugin of ``kinds`` (built-ins and entry points)."""
    return [(kind, name) for kind in kinds for name in list_plugins(kind)]


def parametrize_plugins(kinds: Sequence[str] = ("space", "strategy", "estimator"), *, per_check: bool = True):
    """A ``pytest.mark.parametrize`` over :func:`registered_plugins`: ``"kind, name, check"``, one test per check
    of each plugin (:func:`plugin_checks`), ids ``kind-name-check`` (``estimator-tse-ema-check_estimates``), so
    a failure names the check; run it with ``check_plugin(kind, name, check)``.  ``per_check=False``: one test
    per plugin, ``"kind, name"``, ids ``kind:name``.

    Under pytest-xdist a plugin's checks form one ``xdist_group`` (with ``--dist loadgroup`` they run in one
    process, one after the other, and share their set-ups)."""
    import importlib.util

    import pytest

    cases = registered_plugins(kinds)
    if not per_check:
        return pytest.mark.parametrize("kind, name", cases, ids=[f"{k}:{n}" for k, n in cases])
    grouped = importlib.util.find_spec("xdist") is not None

    def marks(k: str, n: str) -> list:
        out = [pytest.mark.xdist_group(f"plugin:{k}:{n}")] if grouped else []
        missing = missing_packages(k, n)
        if missing:
            hint = getattr(get_registry(k).get(n), "install_hint", "")
            out.append(pytest.mark.skip(reason=f"{k} {n!r} needs {', '.join(missing)}, which is not installed"
                                        + (f" ({hint})" if hint else "")))
        return out

    params = [pytest.param(k, n, c, id=f"{k}-{n}-{c}", marks=marks(k, n))
              for k, n in cases for c in plugin_checks(k, n)]
    return pytest.mark.parametrize("kind, name, check", params)


def missing_packages(kind: str, name: str) -> list[str]:
    """The packages in the registered plugin's ``requires_packages`` (an optional extra's, e.g. ``lc-xgb``'s
    xgboost) that cannot be imported here: :func:`parametrize_plugins` skips its checks, naming them."""
    import importlib.util

    cls = get_registry(kind).get(name)
    return [p for p in getattr(cls, "requires_packages", ()) if importlib.util.find_spec(p) is None]
