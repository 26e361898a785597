"""One Optuna study per member: search pruning method, sparsity and the method's knobs.

Both objectives are maximised: validation accuracy and sparsity (share of the dense member's
prunable weights that are gone, whether masked or physically removed). Studies resume: completed
trials are kept, and only the missing ones run.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from ensprune.errors import SpecError
from ensprune.models import TrainConfig, count_parameters, evaluate, save_model
from ensprune.pruning import METHODS, PruningContext, make_method
from ensprune.study.spec import StudySpec

Log = Callable[[str], None]


@dataclass(frozen=True)
class SplitData:
    """The arrays a search needs (test data never enters a search)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@dataclass(frozen=True)
class TrainedMember:
    """A dense member with what rewinding methods need: θ₀ and an early checkpoint."""

    model: nn.Module
    val_accuracy: float
    initial_state: dict[str, torch.Tensor]
    early_state: dict[str, torch.Tensor] | None


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """A seeded multi-objective-capable sampler."""
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=6, multivariate=True)
    raise SpecError(f"unknown sampler {name!r}; valid: tpe, nsga2, random")


def pareto_front(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Completed trials that no other completed trial beats in both objectives."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    front = []
    for t in done:
        dominated = any(
            o.values[0] >= t.values[0]
            and o.values[1] >= t.values[1]
            and (o.values[0] > t.values[0] or o.values[1] > t.values[1])
            for o in done
        )
        if not dominated:
            front.append(t)
    return sorted(front, key=lambda t: t.number)


def choose_operating_point(
    trials: Sequence[FrozenTrial], dense_val_accuracy: float, tolerance: float
) -> FrozenTrial:
    """The member's operating point on its Pareto front.

    Rule: the highest-sparsity Pareto trial whose validation accuracy is within ``tolerance`` of
    the dense member's; when none is, the most accurate Pareto trial. Ties go to the earlier trial.
    """
    front = pareto_front(trials)
    if not front:
        raise SpecError("the study has no completed trial to choose from; re-run to add trials")
    ok = [t for t in front if t.values[0] >= dense_val_accuracy - tolerance]
    if ok:
        return max(ok, key=lambda t: (t.values[1], t.values[0], -t.number))
    return max(front, key=lambda t: (t.values[0], t.values[1], -t.number))


class MemberObjective:
    """The Optuna objective of one member: prune the dense network, score it on validation data."""

    def __init__(
        self,
        spec: StudySpec,
        member: str,
        trained: TrainedMember,
        data: SplitData,
        trial_dir: Path,
        member_seed: int,
    ) -> None:
        self.spec = spec
        self.member = member
        self.trained = trained
        self.dense = trained.model
        self.data = data
        self.trial_dir = trial_dir
        self.member_seed = member_seed
        self.dense_prunable = count_parameters(trained.model).prunable

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        search = self.spec.search
        name = trial.suggest_categorical("method", list(search.methods))
        low, high = search.sparsity
        target = trial.suggest_float("sparsity", low, high) if high > low else low
        fixed = search.method_params.get(name)
        params = dict(fixed) if fixed is not None else METHODS.get(name).search_space(trial)
        method = make_method(name, **params)
        seed = self.member_seed * 1000 + trial.number
        pool = self.spec.pool
        # A method that resets and retrains gets the member's own training budget.
        retrain = method.retrains_from_scratch
        context = PruningContext(
            self.data.x_train,
            self.data.y_train,
            self.data.x_val,
            self.data.y_val,
            finetune=TrainConfig(
                epochs=pool.epochs if retrain else search.finetune_epochs,
                batch_size=pool.batch_size,
                lr=pool.lr if retrain else search.finetune_lr,
                optimizer=pool.optimizer if retrain else "adam",
                weight_decay=pool.weight_decay if retrain else 0.0,
                patience=pool.patience,
                device=self.spec.device,
                seed=seed,
                augment=pool.augment,
                distill=search.distill,
                temperature=search.temperature,
                lr_schedule="constant" if retrain else search.lr_schedule,
                clean_epochs=0 if retrain else search.clean_epochs,
            ),
            seed=seed,
            initial_state=self.trained.initial_state,
            early_state=self.trained.early_state,
        )
        result = method.prune(self.dense, target, context)
        _, val_accuracy = evaluate(
            result.model, self.data.x_val, self.data.y_val, device=self.spec.device
        )
        counts = count_parameters(result.model)
        sparsity = 1.0 - counts.prunable_nonzero / self.dense_prunable
        path = save_model(
            self.trial_dir / f"trial-{trial.number:04d}.pt",
            result.model,
            {"member": self.member, "method": name, "params": params, "target_sparsity": target},
        )
        trial.set_user_attr("method_params", params)
        trial.set_user_attr("info", _jsonable(result.info))
        trial.set_user_attr("checkpoint", path.name)
        if not np.isfinite(val_accuracy):
            raise optuna.TrialPruned("the pruned network produced non-finite outputs")
        return float(val_accuracy), float(sparsity)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def run_member_study(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    objective: MemberObjective,
    n_trials: int,
    sampler: optuna.samplers.BaseSampler,
    log: Log,
) -> optuna.Study:
    """Create or resume the member's study and run the trials still missing."""
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        directions=["maximize", "maximize"],
        sampler=sampler,
        load_if_exists=True,
    )
    with warnings.catch_warnings():  # experimental in Optuna, but it is what the dashboard shows
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_accuracy", "sparsity"])
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    missing = max(n_trials - done, 0)
    if done:
        log(f"[{objective.member}] resuming: {done} trial(s) done, {missing} to run")

    def report(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.COMPLETE:
            acc, sparsity = trial.values
            log(
                f"[{objective.member}] trial {trial.number}: {trial.params['method']} "
                f"sparsity={sparsity:.3f} val_acc={acc:.4f} "
                f"({(trial.duration.total_seconds() if trial.duration else 0):.1f}s)"
            )

    if missing:
        start = time.perf_counter()
        study.optimize(objective, n_trials=missing, callbacks=[report], gc_after_trial=False)
        log(f"[{objective.member}] {missing} trial(s) in {time.perf_counter() - start:.1f}s")
    return study
