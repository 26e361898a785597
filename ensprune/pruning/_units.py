"""UnitScoreMethod: structured methods implement unit scores only; the rounds live here.

The structured counterpart of :class:`~ensprune.pruning._score.ScoreMethod`. A unit-score method
scores every unit (output channel) of every removable unit group (see
:mod:`ensprune.pruning._compact`); this base class does everything else, once: which units go
(``metric``: lowest scores, highest, or a seeded random choice; across the network or within each
group; floors; never past the target; ``align``), rounds, the reset of the survivors (θ₀, a random
re-initialisation, or none), training each round, the ``kappa`` stop rule and the physical
removal through the dependency graph, so residual additions, concatenations, BatchNorm, flatten
boundaries, depthwise and grouped convolutions stay consistent on any ``nn.Module``. A group
touching a grouped convolution loses the same number of units from each of its channel groups
(:attr:`UnitGroup.blocks`) and so keeps a multiple of the block count, the way ``align`` keeps a
multiple of ``align``.

For these methods ``sparsity`` is the target share of *units* removed (over the removable
groups; the classifier head's outputs are protected); ``result.info["sparsity"]`` reports the share
of prunable *weights* removed, as for every other method.

Activation statistics (:func:`activation_statistic`) are measured where each unit's value leaves
its layer: at the end of the chain of per-unit modules that follows the layer (BatchNorm,
activation, dropout modules), i.e. the post-activation on a conv -> BN -> ReLU chain. A group fed
by several layers (a residual stream) averages its producers' statistics; where an activation is a
function call rather than a module, the statistic is the pre-activation.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ensprune.data.batching import as_batch_source
from ensprune.errors import SpecError
from ensprune.models.measure import count_parameters
from ensprune.models.training import evaluate, resolve_device
from ensprune.pruning._base import PruningContext, PruningMethod, PruningResult, check_sparsity
from ensprune.pruning._compact import UnitGraph, UnitGroup, UnitMasks
from ensprune.pruning._layers import example_input
from ensprune.pruning.finetune import finetune

if TYPE_CHECKING:
    import optuna

METRICS = ("min", "max", "random")
UNIT_SCOPES = ("global", "layer")
RESETS = ("init", "random", "none")
# Modules that act on each unit separately: a unit's value passes through them unmixed.
PER_UNIT_TYPES: tuple[type[nn.Module], ...] = (
    _BatchNorm,
    nn.Dropout,
    nn.Identity,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardswish,
    nn.Mish,
)


@dataclass
class UnitRound:
    """One round: the trained, compacted network and where it stands.

    Attributes:
        index: 1 for the first round.
        model: the network after this round's training (compacted).
        keep: per unit group, which of the input network's units survive.
        units_remaining: share of the input network's removable units left.
        val_accuracy: validation accuracy after training.
        epochs: epochs trained this round.
        stop: ``""`` while more rounds follow; ``"target"`` or ``"floor"`` on the last round.
    """

    index: int
    model: nn.Module
    keep: dict[str, torch.Tensor]
    units_remaining: float
    val_accuracy: float
    epochs: int
    stop: str


class UnitScoreMethod(PruningMethod):
    """Iterative removal of whole units by a per-unit score, with physical compaction.

    Subclasses set ``name`` and implement :meth:`unit_scores` (higher = more important).

    Args:
        metric: ``"min"`` drops the lowest-scoring units, ``"max"`` the highest, ``"random"`` a
            seeded random choice (DropNet's controls).
        scope: ``"global"`` ranks all units of the network together; ``"layer"`` drops the same
            fraction of each unit group.
        fraction: share p of the remaining units dropped per round (0.2 in DropNet).
        reset: before each round's training, reset the surviving weights to ``"init"`` (θ₀ from
            ``context.initial_state``, DropNet's default), to a seeded ``"random"``
            re-initialisation, or keep the trained weights (``"none"``: cheaper fine-tuning).
        kappa: stop when validation accuracy falls below ``kappa`` × the input network's; the last
            round that passed is returned.
        min_units: floor on the share of each group's units kept (at least one unit is always kept).
        score_samples: training samples used for the statistics (a seeded subset; ``None``: all).
        anneal: every round's training ends with a stage at ``lr * anneal`` (see
            :func:`~ensprune.pruning.finetune.finetune`); ``None`` disables it.
        align: keep a multiple of ``align`` units in every group a round shrinks (1: any count).
            CPU GEMM kernels work in SIMD blocks: on one core a 784→40 layer costs as much as
            784→48, while 784→32 costs a third less, so aligned widths turn the MAC reduction
            into speed. Each shrinking group's planned count is rounded to the nearest multiple
            (down when that would keep the group unchanged), never below ``align`` or the floor
            and never past the target.

    Each round trains with ``context.finetune`` (epochs are the per-round maximum, early stopping
    on validation loss with its patience), so with ``reset`` init or random give it a full training
    budget.
    """

    structured = True

    def __init__(
        self,
        metric: str = "min",
        scope: str = "global",
        fraction: float = 0.2,
        reset: str = "init",
        kappa: float = 0.98,
        min_units: float = 0.0,
        score_samples: int | None = 10_000,
        anneal: float | None = 0.1,
        align: int = 1,
    ) -> None:
        if metric not in METRICS:
            raise SpecError(
                f"{self.name}: metric must be one of {', '.join(METRICS)}; got {metric!r}"
            )
        if scope not in UNIT_SCOPES:
            raise SpecError(
                f"{self.name}: scope must be one of {', '.join(UNIT_SCOPES)}; got {scope!r}"
            )
        if not 0.0 < float(fraction) < 1.0:
            raise SpecError(f"{self.name}: fraction must lie in (0, 1); got {fraction!r}")
        if reset not in RESETS:
            raise SpecError(f"{self.name}: reset must be one of {', '.join(RESETS)}; got {reset!r}")
        if not 0.0 <= float(kappa) <= 1.0:
            raise SpecError(f"{self.name}: kappa must lie in [0, 1]; got {kappa!r}")
        if not 0.0 <= float(min_units) < 1.0:
            raise SpecError(f"{self.name}: min_units must lie in [0, 1); got {min_units!r}")
        if score_samples is not None and int(score_samples) < 1:
            raise SpecError(
                f"{self.name}: score_samples must be >= 1 or None; got {score_samples!r}"
            )
        if anneal is not None and not 0.0 < float(anneal) <= 1.0:
            raise SpecError(f"{self.name}: anneal must lie in (0, 1] or be None; got {anneal!r}")
        if (
            isinstance(align, bool)
            or not isinstance(align, (int, float))
            or int(align) != align
            or int(align) < 1
        ):
            raise SpecError(f"{self.name}: align must be an integer >= 1; got {align!r}")
        self.metric = metric
        self.scope = scope
        self.fraction = float(fraction)
        self.reset = reset
        self.kappa = float(kappa)
        self.min_units = float(min_units)
        self.score_samples = None if score_samples is None else int(score_samples)
        self.anneal = None if anneal is None else float(anneal)
        self.align = int(align)

    def params(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "scope": self.scope,
            "fraction": self.fraction,
            "reset": self.reset,
            "kappa": self.kappa,
            "min_units": self.min_units,
            "score_samples": self.score_samples,
            "anneal": self.anneal,
            "align": self.align,
        }

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Scope, fraction and kappa; the metric, reset and the floor are left to the spec."""
        return {
            "scope": trial.suggest_categorical(f"{cls.name}.scope", list(UNIT_SCOPES)),
            "fraction": trial.suggest_float(f"{cls.name}.fraction", 0.1, 0.5),
            "kappa": trial.suggest_float(f"{cls.name}.kappa", 0.9, 1.0),
        }

    @property
    def retrains_from_scratch(self) -> bool:
        return self.reset != "none"

    # -- scores ---------------------------------------------------------------------------------

    @abstractmethod
    def score_units(
        self, model: nn.Module, groups: list[UnitGroup], context: PruningContext
    ) -> dict[str, torch.Tensor]:
        """One score per unit of every group (higher = more important), keyed by group name."""

    def unit_scores(
        self, model: nn.Module, context: PruningContext, groups: list[UnitGroup] | None = None
    ) -> dict[str, torch.Tensor]:
        """:meth:`score_units` of ``model``'s removable groups (found when not given)."""
        return self.score_units(
            model, self._groups(model, context) if groups is None else groups, context
        )

    def _ranking(
        self, model: nn.Module, groups: list[UnitGroup], context: PruningContext, round_index: int
    ) -> dict[str, torch.Tensor]:
        """Per-group keys where lower = drop first, per the metric."""
        if self.metric == "random":
            gen = context.generator(salt=1000 + round_index)
            return {g.name: torch.rand(g.width, generator=gen) for g in groups}
        scores = self.score_units(model, groups, context)
        return scores if self.metric == "min" else {n: -s for n, s in scores.items()}

    def _groups(self, model: nn.Module, context: PruningContext) -> list[UnitGroup]:
        return UnitGraph(model, example_input(model, context.x_train), context.layers).groups

    # -- the rounds -----------------------------------------------------------------------------

    def prune(self, model: nn.Module, sparsity: float, context: PruningContext) -> PruningResult:
        """Drop units until ``sparsity`` (share of units) is removed or a stop rule fires."""
        groups = self._groups(model, context)
        widths, _, goal_total, goal_layer = self._plan(groups, sparsity)
        total = sum(widths.values())
        goal = goal_total if self.scope == "global" else sum(goal_layer.values())
        base_acc = evaluate(model, context.x_val, context.y_val, device=context.finetune.device)[1]
        current, current_acc = copy.deepcopy(model), base_acc
        keep = {n: torch.ones(w, dtype=torch.bool) for n, w in widths.items()}
        history: list[dict[str, Any]] = []
        # Without any round: the target needs no removal, or every group sits at its floor.
        stop, epochs_run = ("target" if goal == 0 else "floor"), 0
        for step in self.rounds(model, sparsity, context):
            epochs_run += step.epochs
            history.append(
                {
                    "units_remaining": step.units_remaining,
                    "val_accuracy": step.val_accuracy,
                    "epochs": step.epochs,
                }
            )
            if step.val_accuracy < self.kappa * base_acc:
                stop = "kappa"
                break
            current, current_acc, keep, stop = step.model, step.val_accuracy, step.keep, step.stop
        kept = {n: int(k.sum()) for n, k in keep.items()}
        prunable = count_parameters(model).prunable
        return PruningResult(
            current,
            {},
            info={
                "sparsity": 1.0 - count_parameters(current).prunable_nonzero / prunable,
                "unit_sparsity": 1.0 - sum(kept.values()) / total,
                "units_remaining": sum(kept.values()) / total,
                "units_per_layer": kept,
                "kept_units": {n: torch.nonzero(k).flatten().tolist() for n, k in keep.items()},
                "rounds": len(history),
                "accepted_rounds": len(history) - (1 if stop == "kappa" else 0),
                "stop": stop,
                "base_val_accuracy": base_acc,
                "val_accuracy": current_acc,
                "train_epochs": epochs_run,
                "history": history,
            },
        )

    def rounds(
        self, model: nn.Module, sparsity: float, context: PruningContext
    ) -> Iterator[UnitRound]:
        """Every round's trained, compacted network, without the ``kappa`` rule.

        :meth:`prune` stops consuming at the first round below ``kappa`` × the input's validation
        accuracy; benchmarks consume every round to trace accuracy against units remaining. Each
        round continues from the previous one (whatever the consumer did with it).

        Args:
            model: the trained network (not modified).
            sparsity: the target share of units removed.
            context: data, the per-round training budget, seed and θ₀.

        Yields:
            One :class:`UnitRound` per round, until the target or every group's floor is reached.
        """
        if self.reset != "none" and context.finetune.epochs == 0:
            raise SpecError(
                f"{self.name}: reset={self.reset!r} retrains every round and needs "
                "context.finetune.epochs > 0 (or use reset='none')"
            )
        origin = copy.deepcopy(model)
        context = context.with_teacher(model)
        start_state = context.rewind_state("init", self.name) if self.reset == "init" else None
        groups = self._groups(origin, context)
        widths, floors, goal_total, goal_layer = self._plan(groups, sparsity)
        total = sum(widths.values())
        goal = goal_total if self.scope == "global" else sum(goal_layer.values())
        keep = {n: torch.ones(w, dtype=torch.bool) for n, w in widths.items()}
        current = origin
        round_index = 0
        drop = self._choose_drops(current, context, keep, floors, goal_total, goal_layer, 0)
        while drop is not None:
            new_keep = {n: k.clone() for n, k in keep.items()}
            for name, idx in drop.items():
                new_keep[name][idx] = False
            current, epochs = self._train_round(
                origin, current, keep, new_keep, start_state, context, round_index
            )
            keep = new_keep
            round_index += 1
            acc = evaluate(current, context.x_val, context.y_val, device=context.finetune.device)
            drop = self._choose_drops(
                current, context, keep, floors, goal_total, goal_layer, round_index
            )
            removed = self._removed(keep)
            yield UnitRound(
                index=round_index,
                model=current,
                keep=keep,
                units_remaining=1.0 - removed / total,
                val_accuracy=acc[1],
                epochs=epochs,
                stop="" if drop is not None else ("target" if removed >= goal else "floor"),
            )

    def _plan(
        self, groups: list[UnitGroup], sparsity: float
    ) -> tuple[dict[str, int], dict[str, int], int, dict[str, int]]:
        """Widths, per-group floors, and the units to remove in all and (layer scope) per group."""
        target = check_sparsity(sparsity)
        if not groups:
            raise SpecError(
                f"{self.name}: the network has no unit group that could be removed (only the "
                "protected head, excluded layers, or channels shared with another group through a "
                "grouped convolution); widen the layer "
                "selection or choose a weight-pruning method"
            )
        widths = {g.name: g.width for g in groups}
        floors = {g.name: max(g.floor, math.ceil(self.min_units * g.width - 1e-9)) for g in groups}
        # Never overshoot the target: globally and (layer scope) within each layer.
        goal_total = math.floor(target * sum(widths.values()) + 1e-9)
        goal_layer = {
            n: min(math.floor(target * w + 1e-9), w - floors[n]) for n, w in widths.items()
        }
        return widths, floors, goal_total, goal_layer

    @staticmethod
    def _removed(keep: dict[str, torch.Tensor]) -> int:
        return sum(int((~k).sum()) for k in keep.values())

    def _choose_drops(
        self,
        current: nn.Module,
        context: PruningContext,
        keep: dict[str, torch.Tensor],
        floors: dict[str, int],
        goal_total: int,
        goal_layer: dict[str, int],
        round_index: int,
    ) -> dict[str, torch.Tensor] | None:
        """Original indices of the units to drop this round, or None when no unit may go."""
        alive = {n: torch.nonzero(k).flatten() for n, k in keep.items()}
        groups = self._groups(current, context)
        ranking = self._ranking(current, groups, context, round_index)  # alive units, in order
        drop: dict[str, torch.Tensor] = {}
        if self.scope == "layer":
            for name, idx in alive.items():
                removed = len(keep[name]) - len(idx)
                n = min(max(1, round(self.fraction * len(idx))), goal_layer[name] - removed)
                if n > 0:
                    order = torch.argsort(ranking[name], stable=True)
                    drop[name] = idx[order[:n]]
            counts = {n: len(d) for n, d in drop.items()}
            room = {n: goal_layer[n] - (len(keep[n]) - len(alive[n])) for n in alive}
        else:
            n_alive = sum(len(i) for i in alive.values())
            n = min(max(1, round(self.fraction * n_alive)), goal_total - self._removed(keep))
            # Each layer offers its lowest-ranked units down to its floor; the n lowest overall go.
            keys, owners, positions = [], [], []
            for li, (name, idx) in enumerate(alive.items()):
                quota = len(idx) - floors[name]
                order = torch.argsort(ranking[name], stable=True)[: max(quota, 0)]
                keys.append(ranking[name][order].double())
                owners.append(torch.full((len(order),), li))
                positions.append(order)
            pool = torch.cat(keys)
            if n > 0 and len(pool):
                chosen = torch.argsort(pool, stable=True)[:n]
                owner, position = torch.cat(owners)[chosen], torch.cat(positions)[chosen]
                for li, (name, idx) in enumerate(alive.items()):
                    picked = position[owner == li]
                    if len(picked):
                        drop[name] = idx[picked]
            counts = {n: len(d) for n, d in drop.items()}
            spare = goal_total - self._removed(keep) - sum(counts.values())
            room = {n: counts.get(n, 0) + spare for n in alive}
        # Grouped convolutions: a group keeps the same number in each block (a multiple of the
        # block count), just as ``align`` keeps a multiple of ``align``.
        aligns = {g.name: self._alignment(len(alive[g.name]), len(g.blocks)) for g in groups}
        if drop and any(aligns[n] > 1 for n in drop):
            blocks = {g.name: g.blocks for g in groups}
            drop = self._aligned(drop, alive, ranking, floors, counts, room, aligns, blocks)
        drop = _keep_every_producer(drop, groups, alive, ranking)
        return _balanced(drop, groups, alive, ranking) or None

    def _alignment(self, width: int, blocks: int) -> int:
        """The multiple a group of ``width`` alive units keeps: ``align`` and its block count."""
        if blocks <= 1:
            return self.align
        both = math.lcm(self.align, blocks)
        return both if both <= width else blocks

    def _aligned(
        self,
        drop: dict[str, torch.Tensor],
        alive: dict[str, torch.Tensor],
        ranking: dict[str, torch.Tensor],
        floors: dict[str, int],
        counts: dict[str, int],
        room: dict[str, int],
        aligns: dict[str, int],
        blocks: dict[str, tuple[tuple[int, ...], ...]],
    ) -> dict[str, torch.Tensor]:
        """Re-plan each shrinking layer so that it keeps a multiple of ``aligns[name]`` units.

        ``room[name]`` is the most units the layer may lose this round without passing the target
        (global scope: the round's planned removals in that layer plus the target's spare units,
        consumed layer by layer). A layer with ``blocks`` loses the same number from each.
        """
        aligned: dict[str, torch.Tensor] = {}
        for name in drop:
            a = aligns[name]
            if a == 1:
                aligned[name] = drop[name]
                continue
            width = len(alive[name])
            keep_n = width - counts[name]
            lowest = max(floors[name], min(a, width))
            nearest = a * round(keep_n / a)
            if nearest >= width:  # rounding back up would undo the layer's shrink
                nearest = a * ((width - 1) // a)
            limit = width - max(room[name], 0)
            target_keep = max(nearest, lowest, limit)
            target_keep = min(a * -(-target_keep // a), width)  # up to a multiple, at most all
            n = width - target_keep
            if n > 0:
                aligned[name] = alive[name][_lowest(ranking[name], n, blocks[name])]
                if self.scope == "global":  # the target's spare units are shared by all layers
                    for other in room:
                        if other != name:
                            room[other] -= max(n - counts[name], 0)
        return aligned

    def _train_round(
        self,
        origin: nn.Module,
        current: nn.Module,
        keep: dict[str, torch.Tensor],
        new_keep: dict[str, torch.Tensor],
        start_state: dict[str, torch.Tensor] | None,
        context: PruningContext,
        round_index: int,
    ) -> tuple[nn.Module, int]:
        """Build the round's compacted network from the chosen start and train it."""
        example = example_input(origin, context.x_train)
        if self.reset == "none":
            # ``current`` is already compacted to ``keep``: re-express new_keep in its indices.
            relative: UnitMasks = {n: new_keep[n][keep[n]] for n in keep}
            net = _compacted(current, relative, example, context)
        elif self.reset == "init":
            assert start_state is not None
            start = copy.deepcopy(origin)
            start.load_state_dict(start_state)
            net = _compacted(start, new_keep, example, context)
        else:
            net = _compacted(origin, new_keep, example, context)
            reinitialise(net, context.seed * 7919 + round_index)
        config = dataclasses.replace(context.finetune, seed=context.seed + round_index)
        # A compacted network needs no masks: removed units no longer exist.
        history = finetune(
            net,
            {},
            context,
            config,
            desc=f"{self.name} round {round_index + 1}",
            anneal=self.anneal,
        )
        return net, history.epochs_run


def _keep_every_producer(
    drop: dict[str, torch.Tensor],
    groups: list[UnitGroup],
    alive: dict[str, torch.Tensor],
    ranking: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Give back each layer's best-ranked unit where a round would empty it.

    A group joined by a concatenation has several producers; dropping all of one producer's
    units would leave a layer without outputs.
    """
    out = {}
    for group in groups:
        if group.name not in drop:
            continue
        dropped = {int(i) for i in drop[group.name]}
        for _, units in group.producers:
            originals = [int(alive[group.name][u]) for u in units]
            if originals and all(o in dropped for o in originals):
                best = max(units, key=lambda u: float(ranking[group.name][u]))
                dropped.discard(int(alive[group.name][best]))
        if dropped:
            out[group.name] = torch.tensor(sorted(dropped), dtype=torch.long)
    return out


def _lowest(ranking: torch.Tensor, n: int, blocks: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """Positions of the ``n`` lowest-ranked units; with blocks, ``n / len(blocks)`` from each."""
    if not blocks:
        return torch.argsort(ranking, stable=True)[:n]
    per_block = n // len(blocks)
    picked = []
    for block in blocks:
        members = torch.as_tensor(block, dtype=torch.long)
        picked.append(members[torch.argsort(ranking[members], stable=True)[:per_block]])
    return torch.cat(picked)


def _balanced(
    drop: dict[str, torch.Tensor],
    groups: list[UnitGroup],
    alive: dict[str, torch.Tensor],
    ranking: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Give back the best-ranked units where a round would unbalance a group's blocks."""
    out = dict(drop)
    for group in groups:
        if not group.blocks or group.name not in drop:
            continue
        position = {int(o): p for p, o in enumerate(alive[group.name])}
        keep = torch.ones(group.width, dtype=torch.bool)
        keep[[position[int(o)] for o in drop[group.name]]] = False
        keep = group.balanced(keep, prefer=ranking[group.name])
        if bool(keep.all()):
            del out[group.name]
        else:
            out[group.name] = alive[group.name][~keep]
    return out


def _compacted(
    model: nn.Module, unit_masks: UnitMasks, example: torch.Tensor, context: PruningContext
) -> nn.Module:
    small = copy.deepcopy(model)
    UnitGraph(small, example, context.layers).remove(unit_masks)
    return small


def reinitialise(model: nn.Module, seed: int) -> None:
    """Fresh weights for ``model`` in place (every module's ``reset_parameters``, in module
    order, from ``seed``); the global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()


@torch.no_grad()
def activation_statistic(
    model: nn.Module,
    groups: list[UnitGroup],
    context: PruningContext,
    samples: int | None,
    reduce: Callable[[torch.Tensor], torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Per unit of each group: the mean of ``reduce(value)`` where the unit leaves its layer.

    ``reduce`` maps a layer's output values elementwise (``torch.abs`` for the mean activation,
    ``lambda v: (v == 0).double()`` for the share of zeros); the mean runs over samples and, for a
    filter, over its feature map. Computed in eval mode on a seeded subset of the training data.

    Example:
        >>> activation_statistic(net, groups, context, 10_000, torch.abs)["0.weight"]
    """
    # arrays, a Dataset or a DataLoader; the seeded subset picks the same samples from each
    source = as_batch_source(context.x_train, context.y_train, "calibration data")
    source = source.limit(samples, context.seed)
    device = resolve_device(context.finetune.device)
    was_training = model.training
    model.eval()
    model.to(device)
    modules = dict(model.named_modules())
    sites = _activation_sites(model, next(iter(source.take([0, 1]).inputs(2))).to(device))
    sums: dict[str, torch.Tensor] = {}
    weights: dict[str, torch.Tensor] = {}
    handles = []
    for group in groups:
        sums[group.name] = torch.zeros(group.width, dtype=torch.float64)
        weights[group.name] = torch.zeros(group.width, dtype=torch.float64)
        for producer, units in group.producers:
            site = sites.get(producer, producer)
            index = torch.as_tensor(units, dtype=torch.long)
            weights[group.name].index_add_(0, index, torch.ones(len(units), dtype=torch.float64))
            linear = isinstance(modules[producer], nn.Linear)
            handles.append(
                modules[site].register_forward_hook(
                    _accumulator(sums[group.name], index, reduce, linear)
                )
            )
    count = 0
    try:
        for xb in source.inputs(1024):
            model(xb.to(device))
            count += len(xb)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {
        name: (sums[name] / max(count, 1) / weights[name].clamp_min(1)).float() for name in sums
    }


def _accumulator(
    total: torch.Tensor,
    index: torch.Tensor,
    reduce: Callable[[torch.Tensor], torch.Tensor],
    linear: bool,
) -> Callable[..., None]:
    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        value = reduce(output).double()
        if linear:  # units on the last axis; any axes in between are positions
            per_sample = value.reshape(value.shape[0], -1, value.shape[-1]).mean(1)
        else:  # a filter's statistic is the mean over its feature map
            per_sample = value.flatten(2).mean(2)
        total.index_add_(0, index, per_sample.sum(0).cpu())

    return hook


@torch.no_grad()
def _activation_sites(model: nn.Module, example: torch.Tensor) -> dict[str, str]:
    """For each layer: the last module of the per-unit chain reading its output alone.

    Found by one traced forward pass: a module continues the chain when its input is exactly the
    previous output tensor and it is a per-unit module (BatchNorm, activation, dropout).
    """
    calls: list[tuple[str, nn.Module, Any, Any]] = []
    handles = [
        module.register_forward_hook(
            lambda m, i, o, name=name: calls.append((name, m, i[0] if i else None, o))
        )
        for name, module in model.named_modules()
        if not list(module.children())
    ]
    try:
        model(example)
    finally:
        for handle in handles:
            handle.remove()
    readers: dict[int, list[tuple[str, nn.Module, Any]]] = {}
    for name, module, inp, out in calls:
        if isinstance(inp, torch.Tensor):
            readers.setdefault(id(inp), []).append((name, module, out))
    sites: dict[str, str] = {}
    for name, _, _, out in calls:
        site, tensor, seen = name, out, {name}
        while isinstance(tensor, torch.Tensor):
            nxt = [r for r in readers.get(id(tensor), []) if r[0] not in seen]
            if len(nxt) != 1 or not isinstance(nxt[0][1], PER_UNIT_TYPES):
                break
            site, tensor = nxt[0][0], nxt[0][2]
            seen.add(site)
        sites[name] = site
    return sites
