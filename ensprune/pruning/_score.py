"""ScoreMethod: saliency methods implement scores only; masks, schedules, fine-tuning live here."""

from __future__ import annotations

import dataclasses
import math
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.pruning._base import (
    Masks,
    PruningContext,
    PruningMethod,
    PruningResult,
    check_sparsity,
    clone,
)
from ensprune.pruning._gradual import prune_gradually
from ensprune.pruning._masks import SCOPES, apply_masks, mask_sparsity, masks_from_scores
from ensprune.pruning._schedule import GRADUAL, SCHEDULES, canonical_schedule, make_schedule
from ensprune.pruning.finetune import finetune

if TYPE_CHECKING:
    import optuna

REWINDS = ("none", "init", "early")


class ScoreMethod(PruningMethod):
    """Unstructured pruning by a per-weight score: remove the lowest-scoring weights, fine-tune.

    Each round of the schedule re-scores the current (fine-tuned) weights, keeps already-pruned
    weights pruned, raises the sparsity to the round's value, optionally rewinds the surviving
    weights (lottery-ticket style), and fine-tunes with the masks enforced. The fine-tuning budget
    ``context.finetune.epochs`` is split over the rounds.

    Args:
        scope: ``"global"`` (one threshold for the network) or ``"layer"`` (the same sparsity in
            every layer).
        max_layer_sparsity: cap on any layer's sparsity under a global threshold, so no layer
            collapses; ``None`` (default) lets no layer fall below a tenth of the network's
            density (``_masks.layer_cap``). Every layer keeps at least one weight.
        schedule: ``"oneshot"``, ``"iterative"`` (the same share of the remaining weights each
            round) or ``"cubic"`` (Zhu & Gupta's curve in rounds, each fine-tuned to early
            stopping); see ``_schedule.make_schedule``. ``"gradual"`` is Zhu & Gupta's own
            procedure: one fixed-budget fine-tuning run whose masks follow the cubic curve every
            ``prune_every`` steps (``_gradual.prune_gradually``; pair it with
            ``lr_schedule="cosine"``). It ignores ``rounds`` and ``anneal`` and refuses ``rewind``.
        rounds: number of rounds of the iterative and cubic schedules.
        rewind: after each round's pruning, reset the surviving weights to ``"init"``
            (``context.initial_state``, θ₀) or ``"early"`` (``context.early_state``) before
            fine-tuning; ``"none"`` fine-tunes the pruned weights as they are.
        anneal: the last round's fine-tuning ends with a stage at ``lr * anneal`` (see
            :func:`~ensprune.pruning.finetune.finetune`); ``None`` disables it.
        ramp: ``"gradual"``: the share of the fine-tuning steps over which the sparsity rises;
            the rest trains at the final masks.
        prune_every: ``"gradual"``: optimiser steps between mask updates.

    The defaults (cubic, 10 rounds, no rewinding, annealing 0.1) are the ones measured in
    ``benchmarks/bench_weight_pruning.py``.
    """

    def __init__(
        self,
        scope: str = "global",
        max_layer_sparsity: float | None = None,
        *,
        schedule: str = "cubic",
        rounds: int = 10,
        rewind: str = "none",
        anneal: float | None = 0.1,
        ramp: float = 0.4,
        prune_every: int = 50,
    ) -> None:
        if scope not in SCOPES:
            raise SpecError(f"{self.name}: scope must be one of {', '.join(SCOPES)}; got {scope!r}")
        if max_layer_sparsity is not None and not 0.0 <= float(max_layer_sparsity) <= 1.0:
            raise SpecError(
                f"{self.name}: max_layer_sparsity must lie in [0, 1]; got {max_layer_sparsity}"
            )
        schedule = canonical_schedule(schedule, who=self.name)  # any case; stored canonical
        if isinstance(ramp, bool) or not isinstance(ramp, (int, float)) or not 0 <= ramp <= 1:
            raise SpecError(f"{self.name}: ramp must be a number in [0, 1]; got {ramp!r}")
        if isinstance(prune_every, bool) or not isinstance(prune_every, int) or prune_every < 1:
            raise SpecError(
                f"{self.name}: prune_every must be an integer >= 1; got {prune_every!r}"
            )
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise SpecError(f"{self.name}: rounds must be an integer >= 1; got {rounds!r}")
        if rewind not in REWINDS:
            raise SpecError(
                f"{self.name}: rewind must be one of {', '.join(REWINDS)}; got {rewind!r}"
            )
        self.scope = scope
        self.max_layer_sparsity = None if max_layer_sparsity is None else float(max_layer_sparsity)
        self.schedule = schedule
        self.rounds = rounds
        self.rewind = rewind
        if anneal is not None and not 0.0 < float(anneal) <= 1.0:
            raise SpecError(f"{self.name}: anneal must lie in (0, 1] or be None; got {anneal!r}")
        self.anneal = None if anneal is None else float(anneal)
        if schedule == GRADUAL and rewind != "none":
            raise SpecError(
                f"{self.name}: rewind={rewind!r} needs a round-based schedule (the gradual one "
                "never restarts training); use schedule='iterative' or rewind='none'"
            )
        self.ramp = float(ramp)
        self.prune_every = prune_every

    def params(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "max_layer_sparsity": self.max_layer_sparsity,
            "schedule": self.schedule,
            "rounds": self.rounds,
            "rewind": self.rewind,
            "anneal": self.anneal,
            **({"ramp": self.ramp, "prune_every": self.prune_every} if self.gradual else {}),
        }

    @property
    def gradual(self) -> bool:
        return self.schedule == GRADUAL

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Scope, schedule and (for iterative and cubic) rounds; rewinding is left to the spec.

        ``"gradual"`` is not searched (it needs a cosine lr to pay off, and adding a choice would
        break resuming existing studies); fix it with ``[search.method_params.<method>]``.
        """
        params: dict[str, Any] = {
            "scope": trial.suggest_categorical(f"{cls.name}.scope", list(SCOPES))
        }
        params.update(cls._schedule_space(trial))
        return params

    @classmethod
    def _schedule_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        schedule = trial.suggest_categorical(f"{cls.name}.schedule", list(SCHEDULES))
        params: dict[str, Any] = {"schedule": schedule}
        if schedule != "oneshot":  # conditional: rounds mean nothing for one-shot pruning
            params["rounds"] = trial.suggest_int(f"{cls.name}.rounds", 2, 10)
        return params

    @abstractmethod
    def scores(self, model: nn.Module, context: PruningContext) -> dict[str, torch.Tensor]:
        """One importance score per prunable weight (higher = keep).

        Score every prunable weight of ``model`` (any ``nn.Module``); the layers that
        ``context.layers`` leaves out are dropped here, before thresholds.

        Returns:
            Tensors shaped like the weights, keyed by qualified name like ``prunable_parameters``.
        """

    def remove(self, model: nn.Module, masks: Masks, context: PruningContext) -> Masks:
        """Remove the masked-out weights of ``model`` in place; returns the masks in force.

        The default zeroes them. A method with a weight update (layer-wise OBS) overrides this to
        move the surviving weights too, and may choose other weights within the same per-layer
        (or per-row) budget; rounds that rewind weights only zero them.
        """
        apply_masks(model, masks)
        return masks

    def _selected_scores(
        self, model: nn.Module, context: PruningContext
    ) -> dict[str, torch.Tensor]:
        """:meth:`scores` of the layers ``context.layers`` selects (all prunable ones by default)."""
        selected = context.prunable(model)
        return {name: s for name, s in self.scores(model, context).items() if name in selected}

    def prune(self, model: nn.Module, sparsity: float, context: PruningContext) -> PruningResult:
        target = check_sparsity(sparsity)
        context = context.with_teacher(model)
        if self.gradual:
            return self._prune_gradually(model, target, context)
        rewind_to = None if self.rewind == "none" else context.rewind_state(self.rewind, self.name)
        pruned = clone(model)
        plan = make_schedule(self.schedule, target, self.rounds, context.finetune.epochs)
        masks: Masks = {}
        epochs_run = 0
        for r, step in enumerate(plan):
            scores = self._selected_scores(pruned, context)
            if masks:  # already-pruned weights stay pruned: they rank below every survivor
                scores = {n: s.masked_fill(~masks[n], -math.inf) for n, s in scores.items()}
            masks = masks_from_scores(scores, step.sparsity, self.scope, self.max_layer_sparsity)
            if rewind_to is not None:
                pruned.load_state_dict(rewind_to)
                apply_masks(pruned, masks)
            else:
                masks = self.remove(pruned, masks, context)
            config = dataclasses.replace(
                context.finetune, epochs=step.epochs, seed=context.seed + r
            )
            last = r == len(plan) - 1
            history = finetune(
                pruned,
                masks,
                context,
                config,
                desc=f"{self.name} round {r + 1}",
                anneal=self.anneal if last else None,
            )
            epochs_run += history.epochs_run
        return PruningResult(
            pruned,
            masks,
            info={
                "sparsity": mask_sparsity(masks),
                "finetune_epochs": epochs_run,
                "rounds": len(plan),
                "round_sparsities": [step.sparsity for step in plan],
            },
        )

    def _prune_gradually(
        self, model: nn.Module, target: float, context: PruningContext
    ) -> PruningResult:
        pruned = clone(model)
        pruner, history = prune_gradually(
            pruned,
            lambda net: self._selected_scores(net, context),
            target,
            context,
            ramp=self.ramp,
            every=self.prune_every,
            desc=f"{self.name} gradual",
            scope=self.scope,
            max_layer_sparsity=self.max_layer_sparsity,
        )
        return PruningResult(
            pruned,
            pruner.masks,
            info={
                "sparsity": mask_sparsity(pruner.masks),
                "finetune_epochs": history.epochs_run,
                "mask_updates": pruner.updates,
            },
        )
