"""Breakdowns of a run: methods at equal sparsity, per-layer sparsity, the GA's progress."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from ensprune.ensemble import PredictionSet
from ensprune.ensemble.selection import GeneticSelector, NSGA2Selector
from ensprune.errors import RunDirError
from ensprune.report import build_report, frames, interactive
from ensprune.report.breakdown import (
    ga_progress_frame,
    layer_sparsity_frame,
    method_comparison_frame,
)
from ensprune.rundir import RunDir


def _trial(member: str, method: str, sparsity: float, acc: float, state: str = "COMPLETE") -> dict:
    return {
        "member": member,
        "state": state,
        "method": method,
        "sparsity": sparsity,
        "val_accuracy": acc,
    }


def test_methods_are_compared_within_sparsity_bins() -> None:
    trials = pd.DataFrame(
        [
            _trial("a0", "magnitude", 0.51, 0.90),
            _trial("a1", "magnitude", 0.58, 0.80),
            _trial("a0", "magnitude", 0.59, 0.70),
            _trial("a0", "random", 0.55, 0.60),
            _trial("a0", "random", 1.0, 0.10),  # sparsity 1 falls in the last bin, not a new one
            _trial("a0", "random", 0.55, 0.99, state="FAIL"),  # not completed: ignored
            _trial("b0", "random", 0.55, 0.50),
            _trial("c9", "lamp", 0.05, 0.95),  # not in the members table
        ]
    )
    members = pd.DataFrame({"member": ["a0", "a1", "b0"], "architecture": ["mlp", "mlp", "cnn"]})
    table = method_comparison_frame(trials, members)
    rows = {(r.architecture, round(r.sparsity_low, 2), r.method): r for r in table.itertuples()}
    assert set(rows) == {
        ("mlp", 0.5, "magnitude"),
        ("mlp", 0.5, "random"),
        ("mlp", 0.9, "random"),
        ("cnn", 0.5, "random"),
        ("all", 0.0, "lamp"),
    }
    magnitude = rows[("mlp", 0.5, "magnitude")]
    assert magnitude.n_trials == 3 and magnitude.best_val_accuracy == 0.90
    assert magnitude.median_val_accuracy == pytest.approx(0.80)
    assert magnitude.sparsity_high == pytest.approx(0.6)
    assert rows[("mlp", 0.5, "random")].best_val_accuracy == 0.60  # the FAIL trial is not counted
    assert rows[("mlp", 0.9, "random")].sparsity_high == pytest.approx(1.0)
    with pytest.raises(ValueError, match="width"):
        method_comparison_frame(trials, members, width=0)


def test_method_comparison_on_a_run_matches_a_plain_loop(run_dir: Path) -> None:
    trials = frames.trials_frame(run_dir)
    members = frames.members_frame(run_dir)
    table = method_comparison_frame(trials, members)
    arch = dict(zip(members.member, members.architecture, strict=True))
    expected: dict[tuple[str, int, str], list[float]] = {}
    for row in trials.itertuples():
        if row.state != "COMPLETE":
            continue
        key = (arch[row.member], min(int(row.sparsity * 10 + 1e-9), 9), row.method)
        expected.setdefault(key, []).append(row.val_accuracy)
    assert len(table) == len(expected)
    for row in table.itertuples():
        accs = expected[(row.architecture, round(row.sparsity_low * 10), row.method)]
        assert row.n_trials == len(accs)
        assert row.best_val_accuracy == pytest.approx(max(accs))
        assert row.median_val_accuracy == pytest.approx(float(np.median(accs)))


def test_layer_sparsity_reads_each_members_checkpoints(run_dir: Path, rundir: ModuleType) -> None:
    layers = layer_sparsity_frame(RunDir(run_dir), rundir.NAMES)
    assert list(layers.member.unique()) == list(rundir.NAMES)
    first = layers[layers.member == rundir.NAMES[0]]
    # lenet300 on 8x8 inputs: Flatten, then Linear 64x300, 300x100, 100x3 (qualified names)
    assert list(first.layer) == ["1.weight", "3.weight", "5.weight"]
    assert list(first.weights) == [64 * 300, 300 * 100, 100 * 3]
    for share, row in zip(rundir.LAYER_SPARSITY, first.itertuples(), strict=True):
        assert row.nonzero == row.weights - round(share * row.weights)
        assert row.sparsity == pytest.approx(share, abs=1 / row.weights)


def _mlp(hidden: int) -> list[dict]:
    return [
        {"type": "flatten"},
        {"type": "linear", "in": 64, "out": hidden, "bias": True},
        {"type": "relu"},
        {"type": "linear", "in": hidden, "out": 3, "bias": True},
    ]


def test_layer_sparsity_counts_removed_weights_and_names_a_missing_checkpoint(
    make_run: Callable[..., Path], rundir: ModuleType
) -> None:
    from ensprune.models import build_from_layers, save_model

    run = make_run()
    member = rundir.NAMES[1]
    folder = run / "members" / member
    # A compacted member: a quarter of the dense network's 40 hidden units were removed.
    save_model(folder / "dense.pt", build_from_layers(_mlp(40), rundir.CHECKPOINT_SHAPE))
    save_model(folder / "pruned.pt", build_from_layers(_mlp(30), rundir.CHECKPOINT_SHAPE))
    layers = layer_sparsity_frame(RunDir(run), [member])
    assert list(layers.weights) == [64 * 40, 40 * 3]
    assert list(layers.nonzero) == [64 * 30, 30 * 3]
    assert layers.sparsity.tolist() == pytest.approx([0.25, 0.25])
    (folder / "dense.pt").unlink()  # without the dense network: the pruned sizes count
    assert layer_sparsity_frame(RunDir(run), [member]).sparsity.tolist() == [0.0, 0.0]

    (folder / "pruned.pt").unlink()
    with pytest.raises(RunDirError, match=r"pruned\.pt is missing: the 'evaluate' stage"):
        layer_sparsity_frame(RunDir(run), [member])
    page = build_report(run).read_text(encoding="utf-8")  # the rest of the report stands
    assert "Per-layer sparsity not shown" in page
    assert not (run / "report" / "layer_sparsity.csv").exists()


def test_ga_progress_comes_from_the_selectors_log(make_run: Callable[..., Path], rundir) -> None:
    run = make_run(selector="ga")
    log = ga_progress_frame(frames.teams_frame(run))
    assert log is not None
    assert list(log.columns) == ["gen", "n_evaluated", "best", "mean", "median"]
    assert list(log.gen) == [0, 1, 2, 3]
    assert math.isnan(log["mean"][1])  # -inf (infeasible genomes) shown as missing
    assert log["best"].tolist() == rundir.GA_LOG["best"].tolist()
    assert ga_progress_frame(frames.teams_frame(make_run())) is None  # HQ's table: no GA log
    assert ga_progress_frame(None) is None

    page = build_report(run).read_text(encoding="utf-8")
    assert 'id="ga-progress"' in page and "3 generations" in page and "30 candidates" in page
    written = pd.read_csv(run / "report" / "ga_progress.csv")
    assert written["best"].tolist() == rundir.GA_LOG["best"].tolist()


def test_a_real_ga_selection_records_its_progress() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 80)
    proba = rng.dirichlet(np.ones(3), size=(6, 80))
    proba[:, np.arange(80), y] += rng.uniform(0, 0.8, (6, 80))
    preds = PredictionSet(proba / proba.sum(-1, keepdims=True), y)
    selection = GeneticSelector(population=8, generations=4, patience=4, seed=1).select(preds)
    log = ga_progress_frame(selection.table)
    assert log is not None and list(log.gen) == list(range(len(log)))
    # the same numbers go to selection.json, with -inf as null
    history = selection.to_dict()["history"]
    assert [r["best"] for r in history] == pytest.approx(log["best"].tolist())
    assert ga_progress_frame(None, selection.to_dict())["best"].tolist() == pytest.approx(
        log["best"].tolist()
    )
    assert (log["mean"] <= log["best"] + 1e-12).all() and (log["median"] <= log["best"]).all()
    fig = interactive.ga_progress_figure(log)
    assert [t.name for t in fig.data] == ["best fitness", "mean fitness", "median fitness"]


def test_nsga2_records_its_first_fronts_and_the_report_draws_them(
    make_run: Callable[..., Path],
) -> None:
    import json

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 60)
    proba = rng.dirichlet(np.ones(3), size=(6, 60))
    proba[:, np.arange(60), y] += rng.uniform(0, 0.8, (6, 60))
    preds = PredictionSet(proba / proba.sum(-1, keepdims=True), y, cost=np.arange(1.0, 7.0))
    selection = NSGA2Selector(population=8, generations=3, patience=3, seed=0).select(preds)
    record = selection.to_dict()["history"]
    assert [r["gen"] for r in record] == list(range(1, len(record) + 1))
    assert all(r["mean"] <= r["best"] and r["front_size"] >= 1 for r in record)
    assert all(isinstance(r["gen"], int) for r in record)

    run = make_run()  # the run's selection.json now carries that history
    payload = json.loads((run / "selection.json").read_text())
    payload.update(selector="nsga2", history=record)
    (run / "selection.json").write_text(json.dumps(payload))
    log = ga_progress_frame(frames.teams_frame(run), payload)
    assert log is not None and log["best"].tolist() == [r["best"] for r in record]
    page = build_report(run).read_text(encoding="utf-8")
    assert 'id="ga-progress"' in page and "first Pareto front" in page
    assert "<th>history</th>" not in page  # not dumped into the options table


def test_report_shows_latency_spread_repeats_and_threads(make_run: Callable[..., Path]) -> None:
    run = make_run()
    page = build_report(run).read_text(encoding="utf-8")
    assert "0.500 (IQR 0.040)" in page and "0.300 (IQR 0.020)" in page
    # test accuracies keep their interval text (they used to be formatted away to blanks)
    members_table = page[page.index("Members: dense vs pruned") :]
    interval = r"<td>[01]\.\d{4} \[[01]\.\d{4}, [01]\.\d{4}\]</td>"
    assert len(re.findall(interval, members_table)) >= 8  # dense and pruned, 4 members
    comparison_table = page[page.index("Selected team") : page.index("Members: dense vs pruned")]
    assert len(re.findall(interval, comparison_table)) >= 8  # val and test, 4 ensembles
    assert re.search(r"batch of\s+256, the median over 10 timed blocks", page)
    assert "2 torch thread(s)" in page
    for name in ("method_comparison", "layer_sparsity"):  # PNG versions for papers
        assert (run / "report" / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    members = pd.read_csv(run / "report" / "members.csv")
    assert {"dense_latency_iqr_ms", "pruned_latency_iqr_ms", "latency_repeats"} <= set(
        members.columns
    )


def test_breakdown_figures_have_one_trace_per_group(run_dir: Path, rundir: ModuleType) -> None:
    trials, members = frames.trials_frame(run_dir), frames.members_frame(run_dir)
    table = method_comparison_frame(trials, members)
    fig = interactive.method_comparison_figure(table)
    groups = table.groupby(["architecture", "method"]).ngroups
    assert len(fig.data) == 2 * groups  # best and median per (architecture, method)
    assert {t.line.dash for t in fig.data} == {"solid", "dot"}
    layers = layer_sparsity_frame(RunDir(run_dir), rundir.NAMES)
    bars = interactive.layer_sparsity_figure(layers)
    assert len(bars.data) == len(rundir.NAMES)
    assert list(bars.data[0].y) == pytest.approx(
        list(layers[layers.member == rundir.NAMES[0]].sparsity)
    )
