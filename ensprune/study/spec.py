"""StudySpec: a whole study (data, pool, search space, selection) as frozen, validated dataclasses.

Example ``studies/quickstart.toml``::

    [study]
    name = "quickstart"
    seed = 0

    [data]
    dataset = "digits"

    [pool]
    architectures = ["model_a", "lenet300"]
    seeds = [0, 1, 2]
    epochs = 40

    [search]
    methods = ["magnitude", "random"]
    sparsity = [0.3, 0.95]
    trials = 12
    finetune_epochs = 3

    [selection]
    selector = "hq"
    metric = "gd"
    beta = 0.1          # any other key is a knob of the selector (checked when loaded)

Names (datasets, models, methods, samplers, selectors, metrics, voting rules, optimizers,
augmentations, lr schedules) may be written in any case; the loaded spec holds the registered
spelling, so results and fingerprints are keyed by it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensprune.errors import SpecError, UnknownNameError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class DataSpec:
    """Which dataset and how to split it."""

    dataset: str = "digits"
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    max_train: int | None = None
    max_test: int | None = None


def member_label(architecture: str) -> str:
    """The member-name stem of an architecture: the zoo name, or a factory's function name."""
    if ":" in architecture:  # zoo names have no colon
        return architecture.strip().rsplit(":", 1)[1].rsplit(".", 1)[-1]
    return architecture


@dataclass(frozen=True)
class PoolSpec:
    """The pool of members: every architecture trained with every seed.

    ``architectures`` names zoo models (``ensprune list models``, any case) or your own networks
    as factories ``"package.module:function"`` (imported when the spec is loaded, so an
    unimportable one is refused before training). A factory is called with ``input_shape`` and
    ``num_classes`` when it declares them and must return a ``torch.nn.Module``; its member names
    use the function's name (``make_net-s0``).

    ``augment`` names a training-time augmentation of image batches (``ensprune list
    augmentations``), used for the pool's training and for every fine-tuning of the search.

    ``bag`` (bagging): every member trains, and is fine-tuned by its search, on its own random
    ``bag`` training images (drawn without replacement, seeded by the study seed and the member's
    name, so adding a member leaves the others' bags alone); ``None`` gives every member the whole
    training split. Different data is a source of diversity for the team selection.
    """

    architectures: tuple[str, ...] = ("model_a", "lenet300")
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    patience: int = 5
    augment: str | None = None
    bag: int | None = None


@dataclass(frozen=True)
class SearchSpec:
    """The per-member Optuna search: methods, sparsity range, budget and the operating-point rule.

    ``accuracy_tolerance``: the chosen operating point is the Pareto-optimal trial with the highest
    sparsity whose validation accuracy is at least the dense member's minus this tolerance
    (falling back to the most accurate Pareto trial when none qualifies).

    ``distill`` (α in [0, 1]) makes every trial's fine-tuning distil from the member's dense
    network at ``temperature`` T (Hinton et al. 2015); 0 trains on the labels alone.

    ``sampler`` names an Optuna sampler (``ensprune list samplers``); ``sampler_params`` its knobs.

    ``pruner`` names an Optuna pruner that stops trials whose validation accuracy falls behind
    during fine-tuning (``"none"``, ``"median"``, ``"successive_halving"``, ``"hyperband"``;
    ``ensprune list pruners``); ``pruner_params`` its knobs.

    ``min_accuracy`` and ``min_sparsity`` are constraints: a trial below either is kept and
    marked infeasible (``feasible`` in trials.csv), never becomes an operating point, and the
    samplers that take Optuna constraints (TPE, NSGA-II) steer away from it.

    ``lr_schedule`` (``"constant"`` or ``"cosine"``) and ``clean_epochs`` (the last epochs of
    fine-tuning without ``[pool] augment``) shape every trial's fine-tuning, e.g. for
    ``[search.method_params.lamp] schedule = "gradual"``; see ``TrainConfig``.

    ``include`` / ``exclude`` narrow the layers every method may prune by fnmatch-style name
    patterns (``"layer3.*"``, ``"*.shortcut.*"``; see ``LayerSelection``); each must match a
    prunable layer of every architecture, checked on the untrained networks before training.
    """

    methods: tuple[str, ...] = ("magnitude", "random")
    sparsity: tuple[float, float] = (0.3, 0.95)
    trials: int = 12
    finetune_epochs: int = 3
    finetune_lr: float = 1e-3
    sampler: str = "tpe"
    sampler_params: dict[str, Any] = field(default_factory=dict)
    pruner: str = "none"
    pruner_params: dict[str, Any] = field(default_factory=dict)
    min_accuracy: float | None = None
    min_sparsity: float | None = None
    accuracy_tolerance: float = 0.01
    distill: float = 0.0
    temperature: float = 4.0
    lr_schedule: str = "constant"
    clean_epochs: int = 0
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class SelectionSpec:
    """How the sub-ensemble is chosen from the pruned pool (on validation data only).

    ``metric`` names one focal-diversity metric or several, comma-separated (``"gd,kw"``: their
    consensus). ``options`` holds the selector's own knobs (HQ's ``beta``, ``n_jobs``,
    ``budget``, ...): in a spec they are written directly under ``[selection]`` (or under
    ``[selection.options]``) and checked against the selector's knobs when the spec is loaded.

    ``mode``: ``"two_stage"`` (each member's operating point alone by ``[search]
    accuracy_tolerance``, then ``selector`` picks the team) or ``"joint"`` (every member "out" or
    one point of its menu, chosen together under ``budget``: a number, ``"1x_member"`` or
    ``"25%_pool"``; ``search = "ga" | "nsga2" | "exhaustive"``; the objective weights
    ``w_accuracy``, ``w_diversity``, ``w_size``). ``cost`` is what a point costs in the menu:
    ``"macs"`` (effective: non-zero weights), ``"compacted_macs"`` (executed by the network with its
    dead units removed), ``"params"`` (non-zero) or ``"latency"`` (measured on the compacted
    network, ms per batch)."""

    selector: str = "hq"
    metric: str = "entropy"  # the measured default (docs/metrics.md)
    max_size: int = 5
    voting: str = "soft"  # the same default as `ensprune select`
    options: dict[str, Any] = field(default_factory=dict)
    # Budgeted joint selection (issue 12): mode "joint" chooses every member's operating point
    # and the team together; ``options`` then holds JointSelector's knobs (search, budget, w_*).
    mode: str = "two_stage"
    cost: str = "macs"


@dataclass(frozen=True)
class StudySpec:
    """A whole study; load with :meth:`from_toml`."""

    name: str = "study"
    seed: int = 0
    storage: str | None = None
    run_dir: str | None = None
    device: str = "cpu"
    workers: int = 1
    callbacks: tuple[str, ...] = ()
    scheduler: str | None = None
    data: DataSpec = field(default_factory=DataSpec)
    pool: PoolSpec = field(default_factory=PoolSpec)
    search: SearchSpec = field(default_factory=SearchSpec)
    selection: SelectionSpec = field(default_factory=SelectionSpec)

    @property
    def members(self) -> list[tuple[str, str, int]]:
        """(member name, architecture, seed) for every member, in pool order."""
        return [
            (f"{member_label(a)}-s{s}", a, s)
            for a in self.pool.architectures
            for s in self.pool.seeds
        ]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self, *sections: str) -> str:
        """A short hash of the given sections (all when none), to detect a changed spec on resume."""
        full = self.to_dict()
        for section, key in _ADDED_OPTIONAL_KEYS:
            if full[section][key] is None:  # unset: run directories made before the key resume
                del full[section][key]
        part = {k: full[k] for k in sections} if sections else full
        return hashlib.sha256(json.dumps(part, sort_keys=True, default=str).encode()).hexdigest()[
            :16
        ]

    @classmethod
    def from_toml(cls, path: str | Path) -> StudySpec:
        """Read and validate a spec file."""
        path = Path(path)
        if path.is_dir():
            raise SpecError(f"spec file {path} is a directory; give the study's TOML file")
        if not path.is_file():
            raise SpecError(f"spec file {path} does not exist")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"{path} is not valid TOML: {exc}") from None
        except OSError as exc:  # unreadable (permissions, a FIFO that fails, ...)
            raise SpecError(f"cannot read spec file {path}: {exc.strerror or exc}") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "spec") -> StudySpec:
        """Build and validate a spec from a nested dict (the parsed TOML)."""
        raw = dict(raw)
        study = _section(raw, "study", source)
        top: dict[str, Any] = {
            k: study.pop(k)
            for k in (
                "name",
                "seed",
                "storage",
                "run_dir",
                "device",
                "workers",
                "callbacks",
                "scheduler",
            )
            if k in study
        }
        if "callbacks" in top:
            value = top["callbacks"]
            if isinstance(value, str) or not isinstance(value, list | tuple):
                raise SpecError(
                    f"{source}: [study] callbacks must be a list of 'package.module:factory' "
                    f"strings; got {value!r}"
                )
            top["callbacks"] = tuple(value)
        _check_study_types(top, source)
        _no_extra(study, "study", source)
        sections: dict[str, Any] = {}
        for key, sub in (
            ("data", DataSpec),
            ("pool", PoolSpec),
            ("search", SearchSpec),
            ("selection", SelectionSpec),
        ):
            values = _section(raw, key, source)
            if sub is SelectionSpec:
                values = _selector_knobs_to_options(values, source)
            sections[key] = _build(sub, values, key, source)
        _no_extra(raw, "top level", source, sections=True)
        try:
            spec = cls(**top, **sections)
        except TypeError as exc:
            raise SpecError(f"{source}: [study]: {exc}") from None
        try:
            spec = spec.canonical()
            spec.validate(source)
        except UnknownNameError as exc:
            raise UnknownNameError(f"{source}: {exc}") from None
        return spec

    def canonical(self) -> StudySpec:
        """This spec with every registry name in its registered spelling (``"LeNet300"`` ->
        ``"lenet300"``); unknown names raise :class:`UnknownNameError` listing the valid ones."""
        from ensprune.data import DATASETS
        from ensprune.data.augment import AUGMENTATIONS
        from ensprune.ensemble.diversity import METRICS
        from ensprune.ensemble.selection import SELECTORS
        from ensprune.ensemble.voting import VOTING
        from ensprune.models import MODELS
        from ensprune.models.factory import is_factory_path
        from ensprune.models.training import LR_SCHEDULES, OPTIMIZERS
        from ensprune.pruning import METHODS
        from ensprune.study.pruners import PRUNERS
        from ensprune.study.samplers import SAMPLERS

        def names(values: tuple[str, ...], registry: Any) -> tuple[str, ...]:
            return tuple(registry.canonical(v) for v in values)

        method_params = {METHODS.canonical(k): v for k, v in self.search.method_params.items()}
        if len(method_params) != len(self.search.method_params):
            raise SpecError(
                "[search.method_params] names one method twice (in different case); keep one"
            )
        pool = self.pool
        return dataclasses.replace(
            self,
            # "CPU" is cpu, like every other name (a non-string is left for validate to refuse)
            device=self.device.strip().lower() if isinstance(self.device, str) else self.device,
            data=dataclasses.replace(self.data, dataset=DATASETS.canonical(self.data.dataset)),
            pool=dataclasses.replace(
                pool,
                architectures=tuple(
                    a.strip() if is_factory_path(a) else MODELS.canonical(a)
                    for a in pool.architectures
                ),
                optimizer=OPTIMIZERS.canonical(pool.optimizer),
                augment=None if pool.augment is None else AUGMENTATIONS.canonical(pool.augment),
            ),
            search=dataclasses.replace(
                self.search,
                methods=names(self.search.methods, METHODS),
                sampler=SAMPLERS.canonical(self.search.sampler),
                pruner=PRUNERS.canonical(self.search.pruner),
                lr_schedule=LR_SCHEDULES.canonical(self.search.lr_schedule),
                method_params=method_params,
            ),
            selection=dataclasses.replace(
                self.selection,
                **_joint_names(self.selection),
                selector=SELECTORS.canonical(self.selection.selector),
                metric=",".join(
                    METRICS.canonical(m.strip())
                    for m in self.selection.metric.split(",")
                    if m.strip()
                ),
                voting=VOTING.canonical(self.selection.voting),
            ),
        )

    def validate(self, source: str = "spec") -> None:
        """Check names against the registries and values against their ranges."""
        from ensprune.data import DATASETS
        from ensprune.ensemble.diversity import METRICS
        from ensprune.ensemble.selection import SELECTORS
        from ensprune.models import MODELS
        from ensprune.models.factory import is_factory_path, resolve_factory
        from ensprune.models.training import LR_SCHEDULES, OPTIMIZERS
        from ensprune.pruning import METHODS
        from ensprune.study.build import (
            MAX_SEED,
            SEED_STRIDE,
            check_spec,
            check_storage_url,
            split_names,
        )
        from ensprune.study.samplers import SAMPLERS

        def fail(msg: str) -> None:
            raise SpecError(f"{source}: {msg}")

        # the name is a directory (runs/<name>): '.' and '..' would put the run somewhere else
        if (
            not self.name
            or len(self.name) > MAX_NAME
            or set(self.name) == {"."}
            or not all(c.isalnum() or c in "-_." for c in self.name)
        ):
            fail(
                f"[study] name must be 1 to {MAX_NAME} letters, digits, '-', '_' or '.' (not only "
                f"dots: it names the run directory runs/<name>); got {self.name!r}"
            )
        # member studies are seeded with member_seed(seed, index): each must fit Optuna's samplers
        top_seed = (MAX_SEED - (len(self.members) - 1)) // SEED_STRIDE
        _check_int(self.seed, "[study] seed", fail, minimum=0, maximum=max(top_seed, 0))
        for value, label in ((self.storage, "storage"), (self.run_dir, "run_dir")):
            if value is not None and not value.strip():
                fail(f"[study] {label} is empty; give a value or leave the key out for the default")
        if self.storage is not None:
            check_storage_url(self.storage, "[study] storage")
        _check_int(self.workers, "[study] workers", fail, minimum=1)
        if self.scheduler is not None and (
            not isinstance(self.scheduler, str) or "://" not in self.scheduler
        ):
            fail(
                "[study] scheduler must be a dask scheduler address such as "
                f"'tcp://HOST:8786'; got {self.scheduler!r}"
            )
        if self.device not in ("cpu", "cuda", "auto"):
            fail(f"[study] device must be cpu, cuda or auto; got {self.device!r}")
        DATASETS.get(self.data.dataset)
        for frac, label in (
            (self.data.val_fraction, "val_fraction"),
            (self.data.test_fraction, "test_fraction"),
        ):
            if not (isinstance(frac, (int, float)) and 0.0 < frac < 0.9):
                fail(f"[data] {label} must be a number in (0, 0.9); got {frac!r}")
        for lim, label in ((self.data.max_train, "max_train"), (self.data.max_test, "max_test")):
            if lim is not None:
                _check_int(lim, f"[data] {label}", fail, minimum=20)
        if not self.pool.architectures:
            fail("[pool] architectures must name at least one model")
        for arch in self.pool.architectures:
            if not isinstance(arch, str):
                fail(
                    f"[pool] architectures must be model names or 'pkg.module:function'; got {arch!r}"
                )
            if is_factory_path(arch):
                resolve_factory(arch)  # imports it now: a typo fails before any training
            else:
                MODELS.get(arch)
        labels = [member_label(a) for a in self.pool.architectures]
        if len(set(labels)) != len(labels):
            fail(
                "[pool] architectures give two members the same name "
                f"({', '.join(sorted({x for x in labels if labels.count(x) > 1}))}); list each "
                "model once, and give factories distinct function names"
            )
        if not self.pool.seeds:
            fail("[pool] seeds must list at least one seed")
        for s in self.pool.seeds:
            _check_int(s, "[pool] seeds", fail, minimum=0, maximum=MAX_SEED)
        if len(set(self.pool.seeds)) != len(self.pool.seeds):
            fail("[pool] seeds must be distinct")
        _check_distinct(self.pool.architectures, "[pool] architectures", fail)
        _check_int(self.pool.epochs, "[pool] epochs", fail, minimum=1)
        _check_int(self.pool.batch_size, "[pool] batch_size", fail, minimum=1)
        _check_int(self.pool.patience, "[pool] patience", fail, minimum=0)
        if not (isinstance(self.pool.lr, (int, float)) and 0 < self.pool.lr < 10):
            fail(f"[pool] lr must be a positive number; got {self.pool.lr!r}")
        if not 0.0 <= self.pool.weight_decay < math.inf:  # _build refused non-numbers; NaN fails
            fail(
                "[pool] weight_decay must be a finite number >= 0 (e.g. 1e-4; 0 turns it off); "
                f"got {self.pool.weight_decay!r}"
            )
        OPTIMIZERS.get(self.pool.optimizer)
        if self.pool.augment is not None:
            from ensprune.data.augment import AUGMENTATIONS

            AUGMENTATIONS.get(self.pool.augment)
        if self.pool.bag is not None:
            _check_int(self.pool.bag, "[pool] bag", fail, minimum=20)
            if self.data.max_train is not None and self.pool.bag > self.data.max_train:
                fail(
                    f"[pool] bag = {self.pool.bag} is more than [data] max_train = "
                    f"{self.data.max_train} training images; lower bag or raise max_train"
                )
        if not self.search.methods:
            fail("[search] methods must name at least one pruning method")
        for method in self.search.methods:
            METHODS.get(method)
        _check_distinct(self.search.methods, "[search] methods", fail)
        for method in self.search.method_params:
            if method not in self.search.methods or not isinstance(
                self.search.method_params[method], dict
            ):
                fail(
                    f"[search.method_params] names {method!r}, which is not in [search] methods "
                    "(or is not a table of knobs)"
                )
        lo_hi = self.search.sparsity
        if len(lo_hi) != 2 or not all(
            isinstance(v, (int, float)) and math.isfinite(v) for v in lo_hi
        ):
            fail(f"[search] sparsity must be a range [low, high]; got {list(lo_hi)!r}")
        lo, hi = lo_hi
        if not (0.0 <= lo <= hi < 1.0):
            fail(f"[search] sparsity range must satisfy 0 <= low <= high < 1; got [{lo}, {hi}]")
        _check_int(self.search.trials, "[search] trials", fail, minimum=1)
        _check_int(self.search.finetune_epochs, "[search] finetune_epochs", fail, minimum=0)
        if not 0.0 < self.search.finetune_lr < 10:
            fail(
                "[search] finetune_lr must be a positive number below 10 (e.g. 1e-3); "
                f"got {self.search.finetune_lr!r}"
            )
        SAMPLERS.get(self.search.sampler)
        for bound in ("min_accuracy", "min_sparsity"):
            value = getattr(self.search, bound)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0.0 <= value < 1.0
            ):
                fail(f"[search] {bound} must be a number in [0, 1) (a constraint); got {value!r}")
        # _build has already refused non-numbers; only the ranges are left to check.
        if not 0.0 <= self.search.distill <= 1.0:
            fail(
                "[search] distill must be a number in [0, 1] (the distillation weight); "
                f"got {self.search.distill!r}"
            )
        if not 0.0 < self.search.temperature < math.inf:
            fail(f"[search] temperature must be a positive number; got {self.search.temperature!r}")
        LR_SCHEDULES.get(self.search.lr_schedule)
        _check_int(self.search.clean_epochs, "[search] clean_epochs", fail, minimum=0)
        for label in ("include", "exclude"):
            for pattern in getattr(self.search, label):
                if not isinstance(pattern, str) or not pattern.strip():
                    fail(
                        f"[search] {label} must list layer name patterns (non-empty strings, "
                        f"e.g. 'layer3.*'); got {pattern!r}"
                    )
        if not (0.0 <= self.search.accuracy_tolerance < 1.0):
            fail(
                f"[search] accuracy_tolerance must lie in [0, 1); got {self.search.accuracy_tolerance}"
            )
        SELECTORS.get(self.selection.selector)
        if self.selection.mode not in SELECTION_MODES:
            fail(
                f"[selection] mode must be one of {', '.join(SELECTION_MODES)}; got {self.selection.mode!r}"
            )
        if self.selection.cost not in COST_KINDS:
            fail(
                f"[selection] cost must be one of {', '.join(COST_KINDS)}; got {self.selection.cost!r}"
            )
        if self.selection.mode == "joint" and self.selection.selector != "hq":
            fail(
                '[selection] selector names a two_stage team selector; in mode = "joint" name '
                'the joint search instead: search = "ga", "nsga2" or "exhaustive"'
            )
        split_names(self.selection.metric, METRICS)
        if len(self.members) < 2:
            fail("the pool needs at least 2 members (architectures x seeds) to select a team")
        _check_int(self.selection.max_size, "[selection] max_size", fail, minimum=2)
        if self.selection.max_size > len(self.members):
            fail(
                f"[selection] max_size {self.selection.max_size} exceeds the pool of "
                f"{len(self.members)} members; lower it or add architectures/seeds"
            )
        try:  # build every plugin once so a bad knob fails now, not after hours of training
            check_spec(self)
        except SpecError as exc:
            fail(str(exc))


SELECTION_MODES = ("two_stage", "joint")
#: (section, key) of optional keys added after the first release: left out of the fingerprint while
#: unset, so that a run directory made before the key existed still resumes
_ADDED_OPTIONAL_KEYS = (("pool", "bag"),)
# the keys of ensprune.study.menus.COST_COLUMNS (which imports this module), in that order
COST_KINDS = ("macs", "compacted_macs", "params", "latency")


def _joint_names(selection: SelectionSpec) -> dict[str, Any]:
    """``mode``, ``cost`` and a joint ``search`` name in their registered spelling (any case)."""
    from ensprune.ensemble.selection.joint import JOINT_SEARCHES

    mode, cost = str(selection.mode).lower(), str(selection.cost).lower()
    options = dict(selection.options)
    if mode == "joint" and isinstance(options.get("search"), str):
        options["search"] = JOINT_SEARCHES.canonical(options["search"])
    return {"mode": mode, "cost": cost, "options": options}


def _section(raw: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = raw.pop(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"{source}: [{key}] must be a table")
    return dict(value)


def _selector_knobs_to_options(values: dict[str, Any], source: str) -> dict[str, Any]:
    """``[selection]`` keys that are not shared settings are the selector's knobs: into options."""
    shared = {f.name for f in dataclasses.fields(SelectionSpec)}
    options = values.pop("options", {})
    if not isinstance(options, dict):
        raise SpecError(f"{source}: [selection] options must be a table; got {options!r}")
    knobs = {k: values.pop(k) for k in list(values) if k not in shared}
    both = sorted(set(knobs) & set(options))
    if both:
        raise SpecError(
            f"{source}: [selection] sets {both} both directly and under [selection.options]; keep one"
        )
    return {**values, "options": {**options, **knobs}}


def _no_extra(raw: dict[str, Any], where: str, source: str, sections: bool = False) -> None:
    if raw:
        kind = "section(s)" if sections else "key(s)"
        raise SpecError(f"{source}: unknown {kind} {sorted(raw)} in {where}; check the spelling")


def _build(cls: type[Any], values: dict[str, Any], key: str, source: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SpecError(
            f"{source}: unknown key(s) {unknown} in [{key}]; valid keys: {', '.join(known)}"
        )
    converted = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if isinstance(default, tuple) or name in ("architectures", "seeds", "methods"):
            if not isinstance(value, list):
                raise SpecError(f"{source}: [{key}] {name} must be a list; got {value!r}")
            value = tuple(value)
        elif isinstance(default, dict) and not isinstance(value, dict):
            raise SpecError(f"{source}: [{key}] {name} must be a table; got {value!r}")
        elif isinstance(default, str) and not isinstance(value, str):
            raise SpecError(f"{source}: [{key}] {name} must be a string; got {value!r}")
        elif isinstance(default, float) and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            raise SpecError(f"{source}: [{key}] {name} must be a number; got {value!r}")
        converted[name] = value
    return cls(**converted)


def _check_int(value: Any, label: str, fail: Any, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        fail(f"{label} must be an integer >= {minimum}; got {value!r}")
    if maximum is not None and value > maximum:
        fail(f"{label} must be an integer in [{minimum}, {maximum}]; got {value!r}")


MAX_NAME = 100  # the name is a directory and a prefix of study names; file systems cap at 255


def _check_distinct(names: tuple[str, ...], label: str, fail: Any) -> None:
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # canonical names: "LeNet300" and "lenet300" are one model
        fail(f"{label} names {', '.join(map(repr, twice))} twice (names ignore case); keep one")


# [study] keys and the types they take (the sections' keys are typed by their defaults)
_STUDY_TYPES: dict[str, tuple[type, str]] = {
    "name": (str, "a string"),
    "storage": (str, "a string (a storage URL or journal file path)"),
    "run_dir": (str, "a string (a directory path)"),
    "device": (str, "a string (cpu, cuda or auto)"),
}


def _check_study_types(top: dict[str, Any], source: str) -> None:
    for key, (kind, what) in _STUDY_TYPES.items():
        if key in top and not isinstance(top[key], kind):
            raise SpecError(f"{source}: [study] {key} must be {what}; got {top[key]!r}")
    for value in top.get("callbacks", ()):
        if not isinstance(value, str):
            raise SpecError(
                f"{source}: [study] callbacks must be a list of 'package.module:factory' "
                f"strings; got {value!r}"
            )
