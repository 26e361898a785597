"""A small but real run directory, as the study pipeline writes it, with known accuracies.

Imported by path from the report and CLI tests (tests are collected in importlib mode, so
there is no package to import from).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from ensprune.ensemble.predictions import PredictionSet

# One name needs HTML escaping, to check the report escapes it.
NAMES = ("mlp-s0", "mlp-s1", "cnn-s0", "cnn<b>&s1")
N_CLASSES = 3
N = {"val": 50, "test": 60}
# Correct answers per member (exact counts, so single-member accuracies are known).
CORRECT = {
    "val": (40, 37, 42, 35),
    "test": (45, 42, 48, 39),
    "dense_val": (44, 41, 45, 40),
    "dense_test": (50, 47, 51, 44),
}
TEAM = (0, 2, 3)
DENSE_PARAMS = (100_000, 100_000, 60_000, 60_000)
DENSE_MACS = (100_000, 100_000, 900_000, 900_000)
SPARSITY = (0.8, 0.7, 0.5, 0.6)
# Member checkpoints: lenet300 on 8x8 inputs (prunable layers fc1, fc2, fc3) with exactly this
# share of each layer's weights zeroed in pruned.pt (dense.pt keeps every weight).
CHECKPOINT_SHAPE = (1, 8, 8)
LAYER_SPARSITY = (0.9, 0.5, 0.0)
# A GA's per-generation log (selector "ga": teams.csv is the GA toolkit's logbook).
GA_LOG = pd.DataFrame(
    {
        "gen": [0, 1, 2, 3],
        "n_evaluated": [10, 18, 25, 30],
        "best": [0.80, 0.86, 0.90, 0.90],
        "mean": [0.60, float("-inf"), 0.75, 0.80],
        "median": [0.62, 0.70, 0.78, 0.82],
    }
)


def member_proba(y: np.ndarray, n_correct: int, rng: np.random.Generator) -> np.ndarray:
    """Random probabilities (N, C) whose argmax is right on exactly ``n_correct`` samples."""
    n = y.size
    right = np.zeros(n, dtype=bool)
    right[rng.choice(n, n_correct, replace=False)] = True
    target = np.where(right, y, (y + rng.integers(1, N_CLASSES, n)) % N_CLASSES)
    proba = rng.dirichlet(np.ones(N_CLASSES), size=n)
    rows = np.arange(n)
    top = proba.argmax(axis=1)
    proba[rows, top], proba[rows, target] = proba[rows, target], proba[rows, top].copy()
    return proba


def reference_vote(proba: np.ndarray, rule: str) -> np.ndarray:
    """A deliberately plain reference: loops and Counter, ties to the lowest class."""
    m, n, _ = proba.shape
    out = []
    for i in range(n):
        if rule == "soft":
            out.append(int(np.argmax(proba[:, i].mean(axis=0))))
            continue
        votes = Counter(int(np.argmax(proba[j, i])) for j in range(m))
        best = max(votes.values())
        out.append(min(c for c, v in votes.items() if v == best))
    return np.asarray(out)


def reference_accuracy(ps: PredictionSet, members: list[int] | tuple[int, ...], rule: str) -> float:
    return float(np.mean(reference_vote(ps.proba[list(members)], rule) == ps.y))


def write_checkpoints(run: Path, names: tuple[str, ...] = NAMES) -> None:
    """members/<m>/dense.pt and pruned.pt; pruned zeroes the first LAYER_SPARSITY share of each
    prunable layer's weights."""
    import torch

    from ensprune.models import build_model, prunable_parameters, save_model

    for i, name in enumerate(names):
        torch.manual_seed(i)
        model = build_model("lenet300", CHECKPOINT_SHAPE, N_CLASSES)
        with torch.no_grad():  # no exact zeros in the dense weights
            for weight in prunable_parameters(model).values():
                weight.copy_(weight.sign() * (weight.abs() + 1e-3))
        save_model(run / "members" / name / "dense.pt", model)
        with torch.no_grad():
            for share, weight in zip(
                LAYER_SPARSITY, prunable_parameters(model).values(), strict=True
            ):
                weight.view(-1)[: round(share * weight.numel())] = 0.0
        save_model(run / "members" / name / "pruned.pt", model)


def make_run_dir(
    root: Path,
    voting: str = "plurality",
    teams: bool = True,
    study: bool = True,
    selector: str = "hq",
    checkpoints: bool = True,
) -> Path:
    """Write a complete run directory under ``root`` and return it.

    ``selector="ga"`` writes a GA's selection: teams.csv holds :data:`GA_LOG`.
    """
    rng = np.random.default_rng(7)
    run = root / "run"
    (run / "predictions").mkdir(parents=True)
    ys = {split: rng.integers(0, N_CLASSES, n) for split, n in N.items()}
    pruned_macs = [int(d * (1 - s)) for d, s in zip(DENSE_MACS, SPARSITY, strict=True)]
    for key, counts in CORRECT.items():
        y = ys[key.removeprefix("dense_")]
        proba = np.stack([member_proba(y, k, rng) for k in counts])
        cost = DENSE_MACS if key.startswith("dense") else pruned_macs
        PredictionSet(proba, y, names=NAMES, cost=np.asarray(cost, float)).save(
            run / "predictions" / f"{key}.npz"
        )

    storage = f"sqlite:///{(run / 'study.db').resolve()}"
    (run / "run.json").write_text(
        json.dumps(
            {
                "name": "tiny<run>",
                "storage": storage,
                "dataset": "digits",
                "ensprune_version": "0.1.0",
                "voting": voting,
                "created": "2025-01-01T00:00:00+00:00",
                "stages": {"train": "done", "search": "done", "evaluate": "done", "select": "done"},
            }
        )
    )
    (run / "spec.toml").write_text('[study]\nname = "tiny"\n')

    members, trials = [], []
    for i, name in enumerate(NAMES):
        members.append(
            {
                "member": name,
                "architecture": name.split("-")[0],
                "seed": i % 2,
                "dense_val_accuracy": CORRECT["dense_val"][i] / N["val"],
                "dense_params": DENSE_PARAMS[i],
                "dense_macs": DENSE_MACS[i],
                "dense_latency_ms": 0.5,
                "dense_latency_iqr_ms": 0.04,
                "method": "magnitude" if i % 2 == 0 else "random",
                "method_params": json.dumps({"scope": "global"}),
                "target_sparsity": SPARSITY[i],
                "sparsity": SPARSITY[i],
                "pruned_val_accuracy": CORRECT["val"][i] / N["val"],
                "pruned_params": int(DENSE_PARAMS[i] * (1 - SPARSITY[i])),
                "pruned_macs": pruned_macs[i],
                "pruned_latency_ms": 0.3,
                "pruned_latency_iqr_ms": 0.02,
                "latency_batch": 256,
                "latency_repeats": 10,
                "latency_threads": 2,
                "study_name": f"tiny-{name}",
                "n_trials": 6,
                "chosen_trial": 2,
            }
        )
        for number in range(6):
            sparsity = 0.2 + 0.12 * number
            done = number != 5
            trials.append(
                {
                    "member": name,
                    "study_name": f"tiny-{name}",
                    "number": number,
                    "state": "COMPLETE" if done else "FAIL",
                    "method": ("magnitude", "random")[number % 2],
                    "target_sparsity": round(sparsity, 2),
                    "params": json.dumps({"method": "magnitude", "sparsity": round(sparsity, 2)}),
                    "val_accuracy": 0.9 - 0.1 * sparsity * (1 + number % 2) if done else np.nan,
                    "sparsity": sparsity if done else np.nan,
                    "duration_s": 1.5,
                    "pareto": done and number % 2 == 0,
                    "chosen": number == 2,
                }
            )
    pd.DataFrame(members).to_csv(run / "members.csv", index=False)
    pd.DataFrame(trials).to_csv(run / "trials.csv", index=False)

    # selection.json and teams.csv as the selection stage writes them (Selection.to_dict and
    # HQ's table: index tuples, comma-joined names, consensus diversity and focal columns).
    (run / "selection.json").write_text(
        json.dumps(
            {
                "selector": selector,
                "members": list(TEAM),
                "names": [NAMES[i] for i in TEAM],
                "size": len(TEAM),
                "val_accuracy": 0.9,
                "voting": voting,
                "scores": {"diversity": 0.61, "focal_gd": 0.6},
                "weights": None,
                "n_evaluated": 5,
                "table_rows": 5,
                "params": {"beta": 0.1, "max_size": 3},
                "metric": "gd,ck",
            }
        )
    )
    if checkpoints:
        write_checkpoints(run)
    if teams and selector == "ga":
        GA_LOG.to_csv(run / "teams.csv", index=False)
    elif teams:
        rows = [
            ((0, 1), 2, "pruned", 0.82, 0.31),
            ((0, 2), 2, "kept", 0.86, 0.55),
            ((1, 3), 2, "kept", 0.80, 0.42),
            ((0, 2, 3), 3, "kept", 0.90, 0.61),
            ((1, 2, 3), 3, "kept", 0.85, 0.50),
        ]
        table = pd.DataFrame(
            {
                "members": [r[0] for r in rows],
                "names": [",".join(NAMES[i] for i in r[0]) for r in rows],
                "size": [r[1] for r in rows],
                "status": [r[2] for r in rows],
                "val_accuracy": [r[3] for r in rows],
                "diversity": [r[4] for r in rows],
                "focal_gd": [r[4] + 0.05 for r in rows],
                "focal_ck": [r[4] - 0.05 for r in rows],
                "fitness": [r[3] + r[4] for r in rows],
            }
        )
        table.to_csv(run / "teams.csv", index=False)
    if study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        dist = {"sparsity": optuna.distributions.FloatDistribution(0.0, 0.99)}
        for name in NAMES[:2]:
            s = optuna.create_study(
                study_name=f"tiny-{name}", storage=storage, directions=["maximize", "maximize"]
            )
            for k in range(3):
                s.add_trial(
                    optuna.trial.create_trial(
                        params={"sparsity": 0.3 * k},
                        distributions=dist,
                        values=[0.9 - 0.1 * k, 0.3 * k],
                    )
                )
    return run
