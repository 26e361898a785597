"""Spec (or command-line flags) -> library objects, in one place.

Every stage that needs a training configuration, a pruning method, a sampler or a selector gets
it from here, so a spec, the ``run`` pipeline, ``ensprune prune`` and ``ensprune select`` cannot
drift apart: the pool's and the fine-tuning's :class:`~ensprune.models.TrainConfig`, comma
separated name lists (split once, into canonical names), and selector settings (HQ's ``beta`` is
a knob like any other: whatever the selector class declares).

:func:`check_spec` builds everything that can be built before training, so a bad name, knob or
value in a spec fails when it is loaded, not after the pool has trained.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ensprune._registry import Registry
from ensprune.errors import SpecError

if TYPE_CHECKING:
    import optuna

    from ensprune.ensemble.selection import Selector
    from ensprune.ensemble.selection.joint import JointSelector
    from ensprune.models import TrainConfig
    from ensprune.pruning import LayerSelection, PruningMethod
    from ensprune.study.spec import PoolSpec, SearchSpec, SelectionSpec, StudySpec

__all__ = [
    "MAX_SEED",
    "SEED_STRIDE",
    "SHARED_SELECTOR_SETTINGS",
    "check_device",
    "check_knob_types",
    "check_spec",
    "check_storage_url",
    "finetune_config",
    "make_joint_selector",
    "make_selector",
    "make_study_pruner",
    "make_study_sampler",
    "member_seed",
    "method_for_trial",
    "selector_kwargs",
    "selector_settings",
    "slot_sampler",
    "split_names",
    "train_config",
]

# Settings every selection has (a spec always carries them); passed to the selectors that
# declare them, silently left out for those that do not (topk has no metrics).
SHARED_SELECTOR_SETTINGS = ("voting", "max_size", "metrics", "seed")

# Optuna's samplers (numpy's legacy seeding underneath) take seeds in [0, 2**32 - 1].
MAX_SEED = 2**32 - 1
SEED_STRIDE = 10_007  # member i of a study seeded s searches with seed s * SEED_STRIDE + i


def member_seed(seed: int, index: int) -> int:
    """The seed of member ``index``'s study (sampler and trials) in a study seeded ``seed``."""
    return seed * SEED_STRIDE + index


def split_names(value: str | Sequence[str], registry: Registry[Any]) -> tuple[str, ...]:
    """``"GD, kw"`` or ``["GD", "kw"]`` -> ``("gd", "kw")``: canonical names, in order.

    Raises:
        UnknownNameError: a name the registry does not know (listing the valid ones).
        SpecError: no name at all.
    """
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    names = tuple(registry.canonical(p.strip()) for p in parts if p.strip())
    if not names:
        raise SpecError(f"give at least one {registry.kind} name; got {value!r}")
    return names


# ------------------------------------------------------------------------------- training configs


def train_config(pool: PoolSpec, *, device: str, seed: int) -> TrainConfig:
    """How a pool member (or ``ensprune prune``'s dense network) is trained."""
    from ensprune.models import TrainConfig

    return TrainConfig(
        epochs=pool.epochs,
        batch_size=pool.batch_size,
        lr=pool.lr,
        weight_decay=pool.weight_decay,
        optimizer=pool.optimizer,
        patience=pool.patience,
        device=device,
        seed=seed,
        augment=pool.augment,
    )


def finetune_config(
    pool: PoolSpec, search: SearchSpec, *, device: str, seed: int, retrain: bool
) -> TrainConfig:
    """How a pruned network is fine-tuned.

    A method that resets and retrains (``retrain``, e.g. DropNet) gets the member's own training
    budget and optimiser; every other method the search's short fine-tuning (Adam, no weight
    decay), with the search's distillation, lr schedule and clean final epochs.
    """
    from ensprune.models import TrainConfig

    return TrainConfig(
        epochs=pool.epochs if retrain else search.finetune_epochs,
        batch_size=pool.batch_size,
        lr=pool.lr if retrain else search.finetune_lr,
        optimizer=pool.optimizer if retrain else "adam",
        weight_decay=pool.weight_decay if retrain else 0.0,
        patience=pool.patience,
        device=device,
        seed=seed,
        augment=pool.augment,
        distill=search.distill,
        temperature=search.temperature,
        lr_schedule="constant" if retrain else search.lr_schedule,
        clean_epochs=0 if retrain else search.clean_epochs,
    )


def layer_selection(search: SearchSpec) -> LayerSelection:
    """The layers every trial's method may prune: ``[search] include`` / ``exclude``."""
    from ensprune.pruning import LayerSelection

    return LayerSelection(include=search.include, exclude=search.exclude)


def check_layer_patterns(spec: StudySpec, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Refuse ``[search] include`` / ``exclude`` patterns that match no layer of an architecture.

    Builds every architecture untrained (cheap), so a typo fails before the pool is trained.
    """
    selection = layer_selection(spec.search)
    if not selection.include and not selection.exclude:
        return
    from ensprune.models.named import build_named

    for arch in spec.pool.architectures:
        net = build_named(arch, input_shape, num_classes, spec.seed)
        try:
            selection.check(net, "[search] include", "[search] exclude")
        except SpecError as exc:
            raise SpecError(f"[pool] architecture {arch!r}: {exc}") from None


# ------------------------------------------------------------------------------ methods, samplers


def method_for_trial(
    search: SearchSpec, name: str, trial: optuna.Trial | None = None
) -> tuple[PruningMethod, dict[str, Any]]:
    """The method ``name`` with its spec-fixed knobs, or knobs suggested on ``trial``.

    Returns:
        (method, the knobs it was built with).
    """
    from ensprune.pruning import METHODS, make_method

    fixed = search.method_params.get(name)
    if fixed is not None:
        params = dict(fixed)
    elif trial is not None:
        params = METHODS.get(name).search_space(trial)
    else:
        params = {}
    return make_method(name, **params), params


def make_study_sampler(search: SearchSpec, seed: int) -> Any:
    """The search's seeded Optuna sampler with its ``sampler_params``.

    With constraints (``min_accuracy``/``min_sparsity``) each trial sets its constraint values
    (Optuna 5's ``Trial.set_constraint``, which TPE, NSGA-II and GP read); under Optuna 4 a
    sampler that takes ``constraints_func`` gets one reading the same values instead.
    """
    from ensprune.study.samplers import make_sampler

    constraints = None
    if search.min_accuracy is not None or search.min_sparsity is not None:
        from ensprune.study.constraints import TRIALS_SET_CONSTRAINTS, trial_constraints

        constraints = None if TRIALS_SET_CONSTRAINTS else trial_constraints
    return make_sampler(search.sampler, seed, constraints_func=constraints, **search.sampler_params)


def make_study_pruner(search: SearchSpec) -> Any:
    """The search's Optuna pruner with its ``pruner_params``, ``None`` for ``"none"``."""
    from ensprune.study.pruners import make_pruner

    return make_pruner(search.pruner, **search.pruner_params)


def slot_sampler(search: SearchSpec, seed: int, slot: int) -> Any:
    """The sampler for the trial after ``slot`` finished ones: seeded by (seed, slot), so a study
    resumed after a crash samples exactly what an uninterrupted one would."""
    import hashlib

    digest = hashlib.sha256(f"{seed}:{slot}".encode()).digest()
    return make_study_sampler(search, int.from_bytes(digest[:4], "little"))  # < 2**32 for numpy


# -------------------------------------------------------------------------------------- selectors


def selector_kwargs(
    selector: str, settings: Mapping[str, Any], *, optional: Collection[str] = ()
) -> dict[str, Any]:
    """Keyword arguments for ``selector`` from user settings (spec keys or command-line flags).

    ``metric``/``metrics`` (a comma-separated string or a list) become canonical metric names
    and ``voting`` the canonical rule name. Settings named in ``optional`` are dropped when the
    selector does not take them; any other setting it does not take is an error.

    Raises:
        SpecError: one line naming the setting, the selector and the selector's knobs.
    """
    from ensprune.ensemble.diversity import METRICS
    from ensprune.ensemble.selection import SELECTORS
    from ensprune.ensemble.voting import VOTING

    knobs = SELECTORS.knobs(selector) or ()
    kwargs: dict[str, Any] = {}
    for key, value in settings.items():
        knob = "metrics" if key == "metric" else key
        if knob not in knobs and knob in optional:
            continue
        if knob == "metrics":
            value = split_names(value, METRICS)
        elif knob == "voting":
            value = VOTING.canonical(str(value))
        kwargs[knob] = value
    SELECTORS.check_knobs(selector, kwargs)
    check_knob_types(SELECTORS.get(selector), kwargs, f"selector {selector!r}")
    return kwargs


# annotation word -> (the values it admits, how a message names it)
_KINDS: dict[str, tuple[Any, str]] = {
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "None": (lambda v: v is None, "left out"),
}


def _knob_types(plugin: Any) -> dict[str, str]:
    """Knob name -> its annotation (``"float | None"``), for a dataclass or a function plugin."""
    import dataclasses
    import inspect

    if isinstance(plugin, type) and dataclasses.is_dataclass(plugin):
        return {f.name: str(f.type) for f in dataclasses.fields(plugin) if f.init}
    try:
        parameters = inspect.signature(plugin).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: str(p.annotation) for p in parameters if p.annotation is not p.empty}


def check_knob_types(plugin: Any, given: Mapping[str, Any], label: str) -> None:
    """Refuse a knob whose value its annotation does not admit (``beta = "x"``), naming both.

    Only plain annotations (unions of bool, int, float, str and None) are checked; ranges are
    the plugin's own business. This catches values that would otherwise fail inside the plugin
    with a Python type error, or only when it is first used (after training).

    Raises:
        SpecError: ``"<knob> of <label> must be a number or left out; got 'x'"``.
    """
    types = _knob_types(plugin)
    for knob, value in given.items():
        words = [w.strip() for w in types.get(knob, "").split("|")]
        if not all(w in _KINDS for w in words):
            continue  # unannotated or a container type: left to the plugin
        if not any(_KINDS[w][0](value) for w in words):
            kinds = " or ".join(_KINDS[w][1] for w in words)
            raise SpecError(f"{knob} of {label} must be {kinds}; got {value!r}")
        if knob == "seed" and value is not None and not 0 <= value <= MAX_SEED:
            raise SpecError(f"seed of {label} must lie in [0, {MAX_SEED}]; got {value!r}")


def selector_settings(selection: SelectionSpec, seed: int) -> dict[str, Any]:
    """Keyword arguments for the spec's selector: shared settings plus its own knobs."""
    shared = {
        "voting": selection.voting,
        "max_size": selection.max_size,
        "metrics": selection.metric,
        "seed": seed,
    }
    try:
        return selector_kwargs(
            selection.selector,
            {**shared, **selection.options},
            optional=SHARED_SELECTOR_SETTINGS,
        )
    except SpecError as exc:
        raise SpecError(f"[selection] {exc}") from None


def make_selector(selection: SelectionSpec, seed: int) -> Selector:
    """The spec's selector, built (so bad settings fail here)."""
    from ensprune.ensemble.selection import SELECTORS

    cls = SELECTORS.get(selection.selector)
    try:
        return cls(**selector_settings(selection, seed))
    except TypeError as exc:  # a knob the dataclass refuses after all
        raise SpecError(f"[selection] bad settings for selector {cls.name!r}: {exc}") from None


def make_joint_selector(
    selection: SelectionSpec, seed: int, budget: float | None = None
) -> JointSelector:
    """The spec's joint selector (``[selection] mode = "joint"``) with ``budget`` resolved.

    The spec's ``budget`` may be relative to the dense members (``"1x_member"``), so the caller
    resolves it against the menu (:func:`~ensprune.ensemble.menu.resolve_budget`) and passes the
    number; without one the selector is built unbudgeted (the spec check).
    """
    import dataclasses

    import numpy as np

    from ensprune.ensemble.menu import resolve_budget
    from ensprune.ensemble.selection.joint import JointSelector

    options = dict(selection.options)
    resolve_budget(options.pop("budget", None), np.ones(1))  # a bad budget fails here
    knobs = {f.name for f in dataclasses.fields(JointSelector)} - {"budget", "progress"}
    unknown = sorted(set(options) - knobs)
    if unknown:
        raise SpecError(
            f'[selection] unknown knob(s) {unknown} for mode = "joint"; valid: '
            f"{', '.join(sorted(knobs))}"
        )
    shared: dict[str, Any] = {
        "voting": selection.voting,
        "max_size": selection.max_size,
        "seed": seed,
    }
    metrics = split_names(selection.metric, _metrics_registry())
    try:
        return JointSelector(**shared, metrics=metrics, **options, budget=budget)
    except TypeError as exc:
        raise SpecError(f"[selection] bad settings for the joint selector: {exc}") from None
    except SpecError as exc:
        raise SpecError(f"[selection] {exc}") from None


def _metrics_registry() -> Registry[Any]:
    from ensprune.ensemble.diversity import METRICS

    return METRICS


# ------------------------------------------------------------------------------------ whole spec


def check_device(device: str, where: str = "device") -> None:
    """Refuse ``cuda`` on a machine where torch sees no CUDA device (it would fail at training).

    Raises:
        SpecError: naming ``where`` and the alternatives.
    """
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SpecError(
                f"{where} is cuda, but torch sees no CUDA device on this machine; use cpu, or "
                "auto (CUDA when there is one)"
            )


_STORAGE_FORMS = "sqlite:///PATH.db, postgresql+psycopg2://USER@HOST/DB or a PATH.log journal file"


def check_storage_url(url: Any, where: str = "storage") -> None:
    """Check the form of a storage URL without connecting (that happens when the run opens it).

    Catches what would otherwise fail only when the first member study opens the storage, after
    the pool has trained: a non-string, an empty value, a plain path that is not a journal file,
    an unparseable URL, an unknown database kind or a driver that is not installed.

    Raises:
        StorageError: one line naming the problem and the accepted forms.
    """
    from ensprune.errors import StorageError
    from ensprune.storage import JOURNAL_SUFFIXES

    if not isinstance(url, str):
        raise StorageError(f"{where} must be a string such as {_STORAGE_FORMS}; got {url!r}")
    if not url.strip():
        raise StorageError(f"{where} is empty; give {_STORAGE_FORMS}")
    if url.startswith("journal://") or ("://" not in url and url.endswith(JOURNAL_SUFFIXES)):
        _check_storage_file(Path(url.removeprefix("journal://")), url, where)
        return
    if "://" not in url:
        raise StorageError(
            f"{where} {url!r} is neither a database URL nor a journal file; use {_STORAGE_FORMS}"
        )
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from ensprune.storage import redact

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"{where} {redact(url)!r} is not a valid URL; use {_STORAGE_FORMS}"
        ) from None
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise StorageError(
            f"{where} {redact(url)!r}: unknown database kind {parsed.drivername!r}; "
            f"use {_STORAGE_FORMS}"
        ) from None
    except ImportError as exc:
        raise StorageError(
            f"{where} {redact(url)!r}: its database driver is not installed ({exc}); for "
            "PostgreSQL run pip install 'ensprune[postgres]'"
        ) from None
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        _check_storage_file(Path(parsed.database), url, where)


def _check_storage_file(path: Path, url: str, where: str) -> None:
    """A storage file (SQLite or journal) must be a file, or creatable under a directory."""
    from ensprune.errors import StorageError

    if path.is_dir():
        raise StorageError(f"{where} {url!r} names a directory; name a file in it")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise StorageError(f"{where} {url!r}: {parent} is a file, not a directory")
            return


def check_spec(spec: StudySpec) -> None:
    """Build every plugin of ``spec`` once, so any unknown knob or bad value fails before training.

    Checks: each ``[search.method_params.<method>]`` table's knobs against the method's, and the
    method built with them; ``[search.sampler_params]`` against the sampler; the selector with its
    settings; the pool's and the fine-tuning's training configurations.

    Raises:
        SpecError: one line naming the knob, the plugin and its valid knobs (or the bad value).
    """
    from ensprune.pruning import METHODS, make_method
    from ensprune.study.callbacks import resolve_factory
    from ensprune.study.pruners import PRUNERS
    from ensprune.study.samplers import SAMPLERS

    search = spec.search
    for name, params in search.method_params.items():
        where = f"[search.method_params.{name}]"
        METHODS.check_knobs(name, params, where)
        try:
            check_knob_types(METHODS.get(name), params, f"pruning method {name!r}")
            make_method(name, **params)
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
    for path in spec.callbacks:  # importable and callable; called per member study
        resolve_factory(path)
    PRUNERS.check_knobs(search.pruner, search.pruner_params, "[search.pruner_params]")
    make_study_pruner(search)
    SAMPLERS.check_knobs(search.sampler, search.sampler_params, "[search.sampler_params]")
    try:
        check_knob_types(
            SAMPLERS.get(search.sampler), search.sampler_params, f"sampler {search.sampler!r}"
        )
    except SpecError as exc:
        raise SpecError(f"[search.sampler_params]: {exc}") from None
    try:
        make_study_sampler(search, spec.seed)
    except SpecError as exc:
        raise SpecError(f"[search.sampler_params]: {exc}") from None
    if spec.selection.mode == "joint":
        make_joint_selector(spec.selection, spec.seed)
    else:
        make_selector(spec.selection, spec.seed)
    for label, build in (
        ("[pool]", lambda: train_config(spec.pool, device=spec.device, seed=spec.seed)),
        (
            "[search]",
            lambda: finetune_config(
                spec.pool, search, device=spec.device, seed=spec.seed, retrain=False
            ),
        ),
    ):
        try:
            build()
        except SpecError as exc:
            raise SpecError(f"{label} {exc}") from None
