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
from typing import TYPE_CHECKING, Any

from ensprune._registry import Registry
from ensprune.errors import SpecError

if TYPE_CHECKING:
    import optuna

    from ensprune.ensemble.selection import Selector
    from ensprune.models import TrainConfig
    from ensprune.pruning import PruningMethod
    from ensprune.study.spec import PoolSpec, SearchSpec, SelectionSpec, StudySpec

__all__ = [
    "SHARED_SELECTOR_SETTINGS",
    "check_spec",
    "finetune_config",
    "make_selector",
    "make_study_pruner",
    "make_study_sampler",
    "method_for_trial",
    "selector_kwargs",
    "selector_settings",
    "split_names",
    "train_config",
]

# Settings every selection has (a spec always carries them); passed to the selectors that
# declare them, silently left out for those that do not (topk has no metrics).
SHARED_SELECTOR_SETTINGS = ("voting", "max_size", "metrics", "seed")


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
    return kwargs


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


# ------------------------------------------------------------------------------------ whole spec


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
            make_method(name, **params)
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
    for path in spec.callbacks:  # importable and callable; called per member study
        resolve_factory(path)
    PRUNERS.check_knobs(search.pruner, search.pruner_params, "[search.pruner_params]")
    make_study_pruner(search)
    SAMPLERS.check_knobs(search.sampler, search.sampler_params, "[search.sampler_params]")
    try:
        make_study_sampler(search, spec.seed)
    except SpecError as exc:
        raise SpecError(f"[search.sampler_params]: {exc}") from None
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
