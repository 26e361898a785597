"""The pruning-method interface.

A :class:`PruningMethod` turns a trained network (any ``torch.nn.Module``; its prunable layers are
its Linear, Conv1d and Conv2d modules, the others are left alone) and a target sparsity into a pruned network: a
masked copy (unstructured methods), a physically smaller one (structured methods, compaction) or
a factorised one (low-rank methods). Saliency methods subclass :class:`ScoreMethod` and implement
only :meth:`ScoreMethod.scores`; thresholds, masks, schedules and fine-tuning live once, here and in
``_masks.py`` / ``_schedule.py``.
"""

from __future__ import annotations

import copy
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from ensprune._registry import Registry
from ensprune.data.batching import Samples, check_pair
from ensprune.errors import SpecError
from ensprune.models.training import TrainConfig
from ensprune.pruning._layers import ALL_LAYERS, LayerSelection

if TYPE_CHECKING:
    import optuna

Masks = dict[str, torch.Tensor]


@dataclass(frozen=True)
class PruningContext:
    """Everything a method may use besides the network: data, fine-tuning budget, randomness.

    Attributes:
        x_train, y_train: training data (scores, calibration statistics, fine-tuning): arrays,
            or a torch ``Dataset`` / ``DataLoader`` of ``(input, label)`` samples with
            ``y_train=None`` (data that does not fit in memory; see :mod:`ensprune.data.batching`,
            whose :func:`~ensprune.data.batching.as_batch_source` reads any of them).
        x_val, y_val: validation data (early stopping, stopping rules), in the same forms; never
            test data.
        finetune: the fine-tuning budget and optimiser (``epochs=0`` disables fine-tuning). Gradual
            schedules split ``epochs`` over their rounds; DropNet trains each round with it.
        seed: seeds every random choice of the method.
        progress: show progress bars.
        initial_state: the network's weights before training (θ₀, a ``state_dict``), needed for
            rewinding to initialisation (``rewind="init"``, DropNet ``reset="init"``). The study
            pipeline passes each member's initial weights here.
        early_state: weights from early in training (e.g. after one epoch), for lottery-ticket
            rewinding with ``rewind="early"``.
        teacher: the network fine-tuning distils from when ``finetune.distill > 0``; ``None``
            lets every method use the network it was given (the unpruned one).
        after_epoch: called with the validation accuracy after every fine-tuning epoch (of every
            round); the study search reports it to Optuna's pruner, which may stop the trial by
            raising ``optuna.TrialPruned`` from it.
        layers: which prunable layers (Linear, Conv1d, Conv2d, by qualified name) the method may
            prune: include/exclude patterns and the protection of the classifier head from
            structured removal (see :class:`~ensprune.pruning._layers.LayerSelection`).
    """

    x_train: Samples
    y_train: np.ndarray | None
    x_val: Samples
    y_val: np.ndarray | None
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=0))
    seed: int = 0
    progress: bool = False
    initial_state: dict[str, torch.Tensor] | None = None
    early_state: dict[str, torch.Tensor] | None = None
    teacher: torch.nn.Module | None = None
    layers: LayerSelection = ALL_LAYERS
    after_epoch: Callable[[float], None] | None = None

    def prunable(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The prunable weights of ``model`` this context lets a method prune, by qualified name."""
        return self.layers.parameters(model)

    def __post_init__(self) -> None:
        check_pair(self.x_train, self.y_train, "PruningContext training data")
        check_pair(self.x_val, self.y_val, "PruningContext validation data")

    def with_teacher(self, model: torch.nn.Module) -> PruningContext:
        """This context, with ``model`` as the teacher unless distillation is off or one is set."""
        if self.finetune.distill <= 0 or self.teacher is not None:
            return self
        return dataclasses.replace(self, teacher=copy.deepcopy(model))

    def generator(self, salt: int = 0) -> torch.Generator:
        """A torch Generator seeded from ``seed`` (and ``salt`` for independent streams)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + salt)

    def rewind_state(self, kind: str, who: str) -> dict[str, torch.Tensor]:
        """The state to rewind to: ``"init"`` -> ``initial_state``, ``"early"`` -> ``early_state``.

        Args:
            kind: ``"init"`` or ``"early"``.
            who: the asking method's name, for the error message.
        """
        state = self.initial_state if kind == "init" else self.early_state
        if state is None:
            attr = "initial_state" if kind == "init" else "early_state"
            raise SpecError(
                f"{who}: rewinding to {kind!r} needs PruningContext.{attr} (the member's weights "
                f"{'before training' if kind == 'init' else 'early in training'}); pass it, or "
                "choose another rewind/reset option"
            )
        return state


@dataclass
class PruningResult:
    """A pruned network and how it was obtained.

    Attributes:
        model: the pruned network (a new object; the input network is never modified).
        masks: boolean keep-masks of prunable weights still enforced by zeros in ``model``;
            empty when the method removed structure physically.
        info: method-specific facts (rounds, units remaining, ranks, ...), JSON-able.
    """

    model: nn.Module
    masks: Masks = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class PruningMethod(ABC):
    """Base class of every pruning method; register subclasses in ``METHODS``.

    Subclasses set ``name``, accept their knobs as keyword arguments in ``__init__`` and declare
    the same knobs for Optuna in :meth:`search_space` (namespaced ``"<name>.<knob>"``).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    structured: ClassVar[bool] = False
    # False when the ``sparsity`` given to prune() is a goal the method steers towards (e.g. a
    # regulariser's target) rather than the sparsity it delivers; info["sparsity"] is the truth.
    exact_sparsity: ClassVar[bool] = True
    # False for methods that change how layers compute without removing weights (randmm).
    removes_weights: ClassVar[bool] = True
    # True for methods that replace modules (factorised or wrapped layers, models/edits.py):
    # their results have other layers than the input, and compact() does not handle them yet.
    replaces_modules: ClassVar[bool] = False

    @property
    def retrains_from_scratch(self) -> bool:
        """True when the method resets weights (θ₀ or random) and retrains, as DropNet does.

        Callers then give ``context.finetune`` the member's full training budget instead of a
        short fine-tuning one: a reset network trained for a few epochs is not a pruned network,
        only an undertrained one.
        """
        return False

    def params(self) -> dict[str, Any]:
        """The method's knobs as given to ``__init__`` (JSON-able), for reports and checkpoints."""
        return {}

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest this method's knobs on ``trial``; returns ``__init__`` keyword arguments."""
        return {}

    @abstractmethod
    def prune(self, model: nn.Module, sparsity: float, context: PruningContext) -> PruningResult:
        """Return a pruned copy of ``model`` at ``sparsity`` (share of prunable weights removed)."""


def check_sparsity(sparsity: float) -> float:
    """Validate a target sparsity: a number in [0, 1)."""
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        raise SpecError(f"sparsity must be a number in [0, 1); got {sparsity!r}") from None
    if not (0.0 <= value < 1.0):
        raise SpecError(
            f"sparsity must lie in [0, 1) (the share of weights removed); got {sparsity!r}"
        )
    return value


def clone(model: nn.Module) -> nn.Module:
    """A deep copy, so methods never modify the caller's network."""
    return copy.deepcopy(model)


def _plugin_method(name: str, obj: Any) -> type[PruningMethod]:
    """An entry point of ``ensprune.methods``: a PruningMethod subclass, named by its entry point."""
    if not (isinstance(obj, type) and issubclass(obj, PruningMethod)):
        raise TypeError(f"{obj!r} is not a PruningMethod subclass")
    obj.name = name
    return obj


METHODS: Registry[type[PruningMethod]] = Registry(
    "pruning method", entry_points="ensprune.methods", adapt=_plugin_method
)


def register_method(cls: type[PruningMethod]) -> type[PruningMethod]:
    """Class decorator: register a method under its ``name`` (written once, on the class)."""
    METHODS.register(cls.name)(cls)
    return cls


def make_method(name: str, **params: Any) -> PruningMethod:
    """Instantiate registered method ``name`` with its knobs; bad knobs raise :class:`SpecError`."""
    cls = METHODS.get(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise SpecError(f"bad options for pruning method {name!r}: {exc}") from None
