"""DropNet (Tan & Motani, ICML 2020): iteratively drop whole nodes and filters, then compact.

A unit's score is its mean |post-activation| over training data (for a filter: the mean of its
feature map). Each round drops a fraction ``p`` of the remaining units by the metric (``"min"``:
lowest scores, ``"max"``: highest, ``"random"``), across the network (``"global"``) or within each
layer (``"layer"``); resets the survivors (to θ₀, a random re-initialisation, or not at all) and
trains to early stopping. Rounds stop at the target share of removed units, when validation
accuracy falls below ``kappa`` × the input network's, or when every layer is at its floor. The
result is physically compacted: a smaller, faster :class:`SequentialNet`.

For this method ``sparsity`` in :meth:`DropNetPruning.prune` is the target share of *units*
(hidden neurons and filters) removed; ``result.info["sparsity"]`` reports the share of prunable
*weights* removed, as for every other method.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.models.architecture import SequentialNet, build_from_layers
from ensprune.models.measure import count_parameters
from ensprune.models.training import evaluate, resolve_device
from ensprune.pruning._base import (
    METHODS,
    PruningContext,
    PruningMethod,
    PruningResult,
    check_sparsity,
    clone,
)
from ensprune.pruning._compact import UnitLayer, UnitMasks, compact, unit_layers
from ensprune.pruning.finetune import finetune

if TYPE_CHECKING:
    import optuna

METRICS = ("min", "max", "random")
UNIT_SCOPES = ("global", "layer")
RESETS = ("init", "random", "none")


@dataclass
class DropNetRound:
    """One DropNet round: the trained, compacted network and where it stands.

    Attributes:
        index: 1 for the first round.
        model: the network after this round's training (compacted).
        keep: per hidden layer, which of the input network's units survive.
        units_remaining: share of the input network's hidden units left.
        val_accuracy: validation accuracy after training.
        epochs: epochs trained this round.
        stop: ``""`` while more rounds follow; ``"target"`` or ``"floor"`` on the last round.
    """

    index: int
    model: SequentialNet
    keep: dict[str, torch.Tensor]
    units_remaining: float
    val_accuracy: float
    epochs: int
    stop: str


@METHODS.register("dropnet")
class DropNetPruning(PruningMethod):
    """Iterative node/filter dropping by mean post-activation, with compaction.

    Args:
        metric: ``"min"`` drops the least active units, ``"max"`` the most active, ``"random"``
            a seeded random choice (the paper's controls).
        scope: ``"global"`` ranks all units of the network together; ``"layer"`` drops the same
            fraction of each layer.
        fraction: share p of the remaining units dropped per round (0.2 in the paper).
        reset: before each round's training, reset the surviving weights to ``"init"`` (θ₀ from
            ``context.initial_state``, the paper's default), to a seeded ``"random"``
            re-initialisation, or keep the trained weights (``"none"``: cheaper fine-tuning).
        kappa: stop when validation accuracy falls below ``kappa`` × the input network's; the last
            round that passed is returned.
        min_units: floor on the share of each layer's units kept (at least one unit is always kept).
        score_samples: training samples used for the activation statistics (a seeded subset;
            ``None`` uses all).
        anneal: every round's training ends with a stage at ``lr * anneal`` (see
            :func:`~ensprune.pruning.finetune.finetune`); ``None`` disables it.
        align: keep a multiple of ``align`` units in every layer a round shrinks (1: any count,
            as in the paper). CPU GEMM kernels work in SIMD blocks: on one core a 784→40 layer
            costs as much as 784→48, while 784→32 costs a third less, so aligned widths turn
            the MAC reduction into speed. Each shrinking layer's planned count is rounded to
            the nearest multiple (down when that would keep the layer unchanged), never below
            ``align`` or the floor and never past the target.

    Each round trains with ``context.finetune`` (epochs are the per-round maximum, early stopping
    on validation loss with its patience), so with ``reset`` init or random give it a full training
    budget.

    Example:
        >>> result = make_method("dropnet", metric="min").prune(net, 0.6, context)
        >>> result.info["units_remaining"]  # share of hidden units left, e.g. 0.4096
    """

    name = "dropnet"
    description = "drop nodes/filters by mean post-activation each round, reset, retrain; compacted"
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
        self.metric = metric
        self.scope = scope
        self.fraction = float(fraction)
        self.reset = reset
        self.kappa = float(kappa)
        self.min_units = float(min_units)
        self.score_samples = None if score_samples is None else int(score_samples)
        if anneal is not None and not 0.0 < float(anneal) <= 1.0:
            raise SpecError(f"{self.name}: anneal must lie in (0, 1] or be None; got {anneal!r}")
        self.anneal = None if anneal is None else float(anneal)
        if (
            isinstance(align, bool)
            or not isinstance(align, (int, float))
            or int(align) != align
            or int(align) < 1
        ):
            raise SpecError(f"{self.name}: align must be an integer >= 1; got {align!r}")
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
        """Metric, scope, fraction and kappa; reset and the floor are left to the spec."""
        return {
            "metric": trial.suggest_categorical(f"{cls.name}.metric", list(METRICS)),
            "scope": trial.suggest_categorical(f"{cls.name}.scope", list(UNIT_SCOPES)),
            "fraction": trial.suggest_float(f"{cls.name}.fraction", 0.1, 0.5),
            "kappa": trial.suggest_float(f"{cls.name}.kappa", 0.9, 1.0),
        }

    # -- scores ---------------------------------------------------------------------------------

    def unit_scores(self, model: SequentialNet, context: PruningContext) -> dict[str, torch.Tensor]:
        """Mean |post-activation| of every unit of every hidden layer, over training samples."""
        return _activation_statistic(model, context, self.score_samples, zeros=False)

    def _ranking(
        self, model: SequentialNet, context: PruningContext, round_index: int
    ) -> dict[str, torch.Tensor]:
        """Per-layer keys where lower = drop first, per the metric."""
        if self.metric == "random":
            gen = context.generator(salt=1000 + round_index)
            return {u.name: torch.rand(u.width, generator=gen) for u in unit_layers(model)}
        scores = self.unit_scores(model, context)
        return scores if self.metric == "min" else {n: -s for n, s in scores.items()}

    # -- the rounds -----------------------------------------------------------------------------

    def prune(self, model: nn.Module, sparsity: float, context: PruningContext) -> PruningResult:
        """Drop units until ``sparsity`` (share of hidden units) is removed or a stop rule fires."""
        if not isinstance(model, SequentialNet):
            raise SpecError(f"{self.name}: structured removal needs a SequentialNet for now")
        widths, _, goal_total, goal_layer = self._plan(model, sparsity)
        total = sum(widths.values())
        goal = goal_total if self.scope == "global" else sum(goal_layer.values())
        base_acc = evaluate(model, context.x_val, context.y_val, device=context.finetune.device)[1]
        current, current_acc = clone(model), base_acc
        keep = {u.name: torch.ones(u.width, dtype=torch.bool) for u in unit_layers(model)}
        history: list[dict[str, Any]] = []
        # Without any round: the target needs no removal, or every layer sits at its floor.
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

    @property
    def retrains_from_scratch(self) -> bool:
        return self.reset != "none"

    def rounds(
        self, model: nn.Module, sparsity: float, context: PruningContext
    ) -> Iterator[DropNetRound]:
        """Every round's trained, compacted network, without the ``kappa`` rule.

        :meth:`prune` stops consuming at the first round below ``kappa`` × the input's validation
        accuracy; benchmarks consume every round to trace accuracy against units remaining. Each
        round continues from the previous one (whatever the consumer did with it).

        Args:
            model: the trained network (not modified).
            sparsity: the target share of hidden units removed.
            context: data, the per-round training budget, seed and θ₀.

        Yields:
            One :class:`DropNetRound` per round, until the target or every layer's floor is reached.
        """
        if self.reset != "none" and context.finetune.epochs == 0:
            raise SpecError(
                f"{self.name}: reset={self.reset!r} retrains every round and needs "
                "context.finetune.epochs > 0 (or use reset='none')"
            )
        if not isinstance(model, SequentialNet):
            raise SpecError(f"{self.name}: structured removal needs a SequentialNet for now")
        origin = copy.deepcopy(model)
        context = context.with_teacher(model)
        start_state = context.rewind_state("init", self.name) if self.reset == "init" else None
        widths, floors, goal_total, goal_layer = self._plan(origin, sparsity)
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
            yield DropNetRound(
                index=round_index,
                model=current,
                keep=keep,
                units_remaining=1.0 - removed / total,
                val_accuracy=acc[1],
                epochs=epochs,
                stop="" if drop is not None else ("target" if removed >= goal else "floor"),
            )

    def _plan(
        self, model: SequentialNet, sparsity: float
    ) -> tuple[dict[str, int], dict[str, int], int, dict[str, int]]:
        """Widths, per-layer floors, and the units to remove in all and (layer scope) per layer."""
        target = check_sparsity(sparsity)
        layers = unit_layers(model)
        if not layers:
            raise SpecError(
                f"{self.name}: the network has no hidden layer whose units could be removed"
            )
        widths = {u.name: u.width for u in layers}
        floors = {n: max(1, math.ceil(self.min_units * w - 1e-9)) for n, w in widths.items()}
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
        current: SequentialNet,
        context: PruningContext,
        keep: dict[str, torch.Tensor],
        floors: dict[str, int],
        goal_total: int,
        goal_layer: dict[str, int],
        round_index: int,
    ) -> dict[str, torch.Tensor] | None:
        """Original indices of the units to drop this round, or None when no unit may go."""
        alive = {n: torch.nonzero(k).flatten() for n, k in keep.items()}
        ranking = self._ranking(current, context, round_index)  # over alive units, in order
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
        if self.align > 1 and drop:
            drop = self._aligned(drop, alive, ranking, floors, counts, room)
        return drop or None

    def _aligned(
        self,
        drop: dict[str, torch.Tensor],
        alive: dict[str, torch.Tensor],
        ranking: dict[str, torch.Tensor],
        floors: dict[str, int],
        counts: dict[str, int],
        room: dict[str, int],
    ) -> dict[str, torch.Tensor]:
        """Re-plan each shrinking layer so that it keeps a multiple of ``align`` units.

        ``room[name]`` is the most units the layer may lose this round without passing the target
        (global scope: the round's planned removals in that layer plus the target's spare units,
        consumed layer by layer).
        """
        a = self.align
        aligned: dict[str, torch.Tensor] = {}
        for name in drop:
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
                order = torch.argsort(ranking[name], stable=True)
                aligned[name] = alive[name][order[:n]]
                if self.scope == "global":  # the target's spare units are shared by all layers
                    for other in room:
                        if other != name:
                            room[other] -= max(n - counts[name], 0)
        return aligned

    def _train_round(
        self,
        origin: SequentialNet,
        current: SequentialNet,
        keep: dict[str, torch.Tensor],
        new_keep: dict[str, torch.Tensor],
        start_state: dict[str, torch.Tensor] | None,
        context: PruningContext,
        round_index: int,
    ) -> tuple[SequentialNet, int]:
        """Build the round's compacted network from the chosen start and train it."""
        if self.reset == "none":
            # ``current`` is already compacted to ``keep``: re-express new_keep in its indices.
            relative: UnitMasks = {n: new_keep[n][keep[n]] for n in keep}
            net = compact(current, relative)
        elif self.reset == "init":
            assert start_state is not None
            start = copy.deepcopy(origin)
            start.load_state_dict(start_state)
            net = compact(start, new_keep)
        else:
            net = _fresh_like(compact(origin, new_keep), context.seed * 7919 + round_index)
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


def _fresh_like(model: SequentialNet, seed: int) -> SequentialNet:
    """A re-initialised network of the same (compacted) architecture; global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = build_from_layers(model.layers, model.input_shape)
    return fresh.to(next(model.parameters()).device)


@torch.no_grad()
def _activation_statistic(
    model: SequentialNet, context: PruningContext, samples: int | None, zeros: bool
) -> dict[str, torch.Tensor]:
    """Per unit of each hidden layer: mean |post-activation| (or the share of exact zeros).

    Computed in eval mode on a seeded subset of the training data, in batches.
    """
    layers: list[UnitLayer] = unit_layers(model)
    x = context.x_train
    if samples is not None and len(x) > samples:
        rng = np.random.default_rng(context.seed)
        x = x[np.sort(rng.choice(len(x), size=samples, replace=False))]
    device = resolve_device(context.finetune.device)
    sums = {u.name: torch.zeros(u.width, dtype=torch.float64) for u in layers}
    count = 0
    modules = list(model)

    def reducer(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            value = (output == 0).double() if zeros else output.abs().double()
            if value.dim() > 2:  # a filter's statistic is the mean over its feature map
                value = value.flatten(2).mean(2)
            sums[name] += value.sum(0).cpu()

        return hook

    handles = [modules[u.activation].register_forward_hook(reducer(u.name)) for u in layers]
    was_training = model.training
    model.eval()
    model.to(device)
    try:
        for i in range(0, len(x), 1024):
            xb = torch.as_tensor(np.ascontiguousarray(x[i : i + 1024]), dtype=torch.float32)
            model(xb.to(device))
            count += len(xb)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {name: (total / max(count, 1)).float() for name, total in sums.items()}
