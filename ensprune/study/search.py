"""One Optuna study per member: search pruning method, sparsity and the method's knobs.

Both objectives are maximised: validation accuracy and sparsity (share of the dense member's
prunable weights that are gone, whether masked or physically removed). Studies resume: completed
trials are kept, and only the missing ones run.
"""

from __future__ import annotations

import logging
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
from ensprune.models import count_parameters, evaluate, save_model
from ensprune.progress import format_duration
from ensprune.pruning import PruningContext
from ensprune.study.build import finetune_config, method_for_trial
from ensprune.study.spec import StudySpec

logger = logging.getLogger("ensprune.study")


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
        method, params = method_for_trial(search, name, trial)
        study, slot = trial_identity(trial)
        # a function of the finished trials before this one, not of the trial number, so a trial
        # redone after a crash (a new number) trains exactly as in an uninterrupted run
        seed = self.member_seed * 1000 + slot
        context = PruningContext(
            self.data.x_train,
            self.data.y_train,
            self.data.x_val,
            self.data.y_val,
            # a method that resets and retrains gets the member's own training budget
            finetune=finetune_config(
                self.spec.pool,
                search,
                device=self.spec.device,
                seed=seed,
                retrain=method.retrains_from_scratch,
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
            {
                "member": self.member,
                "study": study,
                "trial": trial.number,
                "method": name,
                "params": params,
                "target_sparsity": target,
            },
        )
        trial.set_user_attr("method_params", params)
        trial.set_user_attr("info", _jsonable(result.info))
        trial.set_user_attr("checkpoint", path.name)
        if not np.isfinite(val_accuracy):
            raise optuna.TrialPruned("the pruned network produced non-finite outputs")
        return float(val_accuracy), float(sparsity)


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SLOT_ATTR = "seed_slot"
STUDY_ATTR = "study"


def finished_trials(study: optuna.Study) -> int:
    """How many trials of ``study`` finished (complete or pruned; failed ones were cut short)."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def trial_identity(trial: optuna.Trial | optuna.trial.FixedTrial) -> tuple[str, int]:
    """(study name, seed slot) of a trial; the slot is the number of trials finished before it.

    A :class:`~optuna.trial.FixedTrial` (a checkpoint rebuilt from a recorded trial) carries both
    as user attributes; a live trial records its slot as the user attribute ``seed_slot``.
    """
    attrs = trial.user_attrs
    if isinstance(trial, optuna.trial.FixedTrial):
        return str(attrs[STUDY_ATTR]), int(attrs[SLOT_ATTR])
    if SLOT_ATTR not in attrs:
        trial.set_user_attr(SLOT_ATTR, finished_trials(trial.study))
    return trial.study.study_name, int(trial.user_attrs[SLOT_ATTR])


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
    sampler: optuna.samplers.BaseSampler | Callable[[int], optuna.samplers.BaseSampler],
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
) -> optuna.Study:
    """Create or resume the member's study and run the trials still missing.

    ``sampler`` may be a factory ``slot -> sampler``: every trial then gets a fresh sampler made
    for the number of trials finished before it, so sampling does not depend on how often the
    study was interrupted and resumed (a resumed run samples what an uninterrupted one would).

    ``callbacks`` are Optuna callbacks run after every trial of this study (after ensprune's own
    per-trial log line), e.g. a tracker such as optuna-integration's ``MLflowCallback``.
    """
    sampler_for = None if isinstance(sampler, optuna.samplers.BaseSampler) else sampler
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        directions=["maximize", "maximize"],
        sampler=sampler if isinstance(sampler, optuna.samplers.BaseSampler) else sampler(0),
        load_if_exists=True,
    )
    with warnings.catch_warnings():  # experimental in Optuna, but it is what the dashboard shows
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_accuracy", "sparsity"])
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    missing = max(n_trials - done, 0)
    if done:
        logger.info("[%s] resuming: %d trial(s) done, %d to run", objective.member, done, missing)

    start = time.perf_counter()
    finished = [0]  # trials run in this call, for the counter and the time estimate

    def report(study: optuna.Study, trial: FrozenTrial) -> None:
        finished[0] += 1
        elapsed = time.perf_counter() - start
        left = elapsed / finished[0] * (missing - finished[0])
        counter = f"{done + finished[0]}/{done + missing}, ~{format_duration(left)} left"
        if trial.state == TrialState.COMPLETE:
            acc, sparsity = trial.values
            logger.info(
                "[%s] trial %d (%s): %s sparsity=%.3f val_acc=%.4f (%.1fs)",
                objective.member,
                trial.number,
                counter,
                trial.params["method"],
                sparsity,
                acc,
                trial.duration.total_seconds() if trial.duration else 0.0,
            )
        else:
            logger.info(
                "[%s] trial %d (%s): %s", objective.member, trial.number, counter, trial.state.name
            )

    if missing and sampler_for is not None:
        for _ in range(missing):
            study.sampler = sampler_for(finished_trials(study))
            study.optimize(
                objective, n_trials=1, callbacks=[report, *callbacks], gc_after_trial=False
            )
    elif missing:
        study.optimize(
            objective, n_trials=missing, callbacks=[report, *callbacks], gc_after_trial=False
        )
    if missing:
        logger.info(
            "[%s] %d trial(s) in %.1fs", objective.member, missing, time.perf_counter() - start
        )
    return study
