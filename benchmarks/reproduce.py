"""Re-run every RESULTS.md headline at a reduced ("quick") setting and compare with the record.

Each headline has the one command that reproduces it in full (what RESULTS.md cites) and a
quick command: the same user-facing command with fewer seeds, epochs and images. ``--quick``
runs the quick commands and compares each figure with the one recorded for that quick setting
in ``benchmarks/results/quick/<headline>.json`` (value and spread); a figure worse than the record
by more than the spread is a regression, and the script exits 1 naming the failing headlines.
Headlines without a quick setting yet are listed as such, never silently passed.

Usage (from the repository root, with ``ENSPRUNE_DATA_DIR`` pointing at MNIST/Fashion-MNIST)::

    python benchmarks/reproduce.py --list                  # headlines, full and quick commands
    python benchmarks/reproduce.py --quick                 # every quick headline (< 30 min, 2 cores)
    python benchmarks/reproduce.py --quick --only focal-speed lenet300-lamp-98
    python benchmarks/reproduce.py --quick --only focal-speed --record   # (re)write the record
    python benchmarks/reproduce.py --quick --record-missing   # record new headlines, compare the rest

Quick runs train in a fresh dense-network cache (``$ENSPRUNE_CACHE_DIR`` in a temporary folder,
and ``$ENSPRUNE_BENCH_CACHE`` for the benchmark scripts' networks, pools and run logs), so a
change in dense training is measured, not hidden by a cached network; the quick rows of one run
share it (e.g. the four LeNet-300-100 sparsities train their dense network once). Figures are
read from the commands' JSON output (``--json``, the JSON lines the benchmark scripts print, or
a JSON file they write into the scratch folder).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RECORDS = HERE / "results" / "quick"
sys.path.insert(0, str(HERE))
from _results import machine_info  # noqa: E402

Extract = Callable[[str, Path], float]


@dataclass(frozen=True)
class Headline:
    """One headline of RESULTS.md: its full command, quick command and the figure compared."""

    name: str
    section: str  # the RESULTS.md (sub)section holding the row
    claim: str
    full: str  # the one command a user copies to reproduce the headline
    quick: str | None  # reduced command ({tmp}: a scratch folder); None: no quick setting yet
    metric: str
    better: str  # "lower" or "higher"
    extract: Extract | None = None
    spread: float = 0.0  # the default tolerance when recording

    def quick_command(self, tmp: Path) -> str:
        assert self.quick is not None
        return self.quick.format(tmp=shlex.quote(str(tmp)))


# ----------------------------------------------------------------------------- figure extractors


def _json_out(stdout: str) -> dict[str, Any]:
    """The JSON object a ``--json`` command printed (its first ``{`` to the end)."""
    return json.loads(stdout[stdout.index("{") :])


def pruned_error_pct(stdout: str, tmp: Path) -> float:
    """``ensprune prune --json``: the pruned network's test error in percent."""
    return 100.0 * (1.0 - float(_json_out(stdout)["pruned"]["accuracy"]))


def points_lost(stdout: str, tmp: Path) -> float:
    """``ensprune prune --json``: dense minus pruned test accuracy, in points."""
    result = _json_out(stdout)
    return 100.0 * (float(result["dense"]["accuracy"]) - float(result["pruned"]["accuracy"]))


def speedup_ratio(stdout: str, tmp: Path) -> float:
    """``ensprune prune --json``: (batch-256 speed-up) / (MAC reduction) of a compacted network."""
    result = _json_out(stdout)
    dense, pruned = result["dense"], result["pruned"]
    speedup = dense["latency_ms"] / pruned["latency_ms"]
    return float(speedup / (dense["macs"] / pruned["macs"]))


def team_margin_points(stdout: str, tmp: Path) -> float:
    """``ensprune report --json``: team test accuracy minus the better of pool and best member."""
    summary = _json_out(stdout)
    rows = {row["ensemble"]: row for row in summary["comparison"]}
    reference = max(rows["full pool"]["test_accuracy"], rows["best single member"]["test_accuracy"])
    return 100.0 * (float(summary["selection"]["test_accuracy"]) - float(reference))


def team_over_dense_pool_points(stdout: str, tmp: Path) -> float:
    """``ensprune report --json``: team test accuracy minus the full dense pool's, points."""
    summary = _json_out(stdout)
    rows = {row["ensemble"]: row for row in summary["comparison"]}
    reference = float(rows["full dense pool"]["test_accuracy"])
    return 100.0 * (float(summary["selection"]["test_accuracy"]) - reference)


def focal_speedup(stdout: str, tmp: Path) -> float:
    """bench_diversity_speed.py: the speed-up of batched focal diversity over the per-pair loop."""
    match = re.search(r"Speed-up over the per-pair loop: \*\*([0-9.]+)x\*\*", stdout)
    if match is None:
        raise ValueError("no 'Speed-up over the per-pair loop' line in the output")
    return float(match.group(1))


def ga_hit_share(stdout: str, tmp: Path) -> float:
    """bench_selection_scale.py: share of GA runs that found the exhaustive optimum, in percent."""
    hits = re.findall(r"GA (\d+)/(\d+)", stdout)
    if not hits:
        raise ValueError("no 'GA k/n' lines in the output")
    return 100.0 * sum(int(k) for k, _ in hits) / sum(int(n) for _, n in hits)


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line that is a JSON object (the benchmarks print one per measured row)."""
    rows = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _row(stdout: str, *keys: str, **match: Any) -> dict[str, Any]:
    """The last JSON line of stdout holding every field in ``keys`` and equal to ``match``."""
    rows = [
        r
        for r in _json_lines(stdout)
        if all(k in r for k in keys) and all(r.get(k) == v for k, v in match.items())
    ]
    if not rows:
        raise ValueError(f"no JSON line with {' and '.join([*keys, str(match)])} in the output")
    return rows[-1]


def dropnet_points_lost(part: str) -> Extract:
    """bench_dropnet.py: dense minus last-round test accuracy of a ``part``'s curve, in points."""

    def extract(stdout: str, tmp: Path) -> float:
        points = _row(stdout, part=part)["points"]
        return 100.0 * (points[0]["test_accuracy"] - points[-1]["test_accuracy"])

    extract.__doc__ = dropnet_points_lost.__doc__
    return extract


def joint_over_uniform(stdout: str, tmp: Path) -> float:
    """bench_joint.py: joint test accuracy minus uniform pruning's at the first budget, points."""
    row = json.loads((tmp / "joint" / "results.json").read_text(encoding="utf-8"))["rows"][0]
    if row["uniform"] is None:
        raise ValueError("no uniform pruning level fits the budget")
    return 100.0 * (row["joint"]["test_mean"] - row["uniform"]["test_accuracy"])


def compact_joint_over_two_stage(stdout: str, tmp: Path) -> float:
    """bench_joint_compact.py: joint minus two-stage test accuracy at the first budget, with
    the compacted networks' MACs as the cost, points."""
    path = tmp / "jc" / "compacted_macs" / "results.json"
    row = json.loads(path.read_text(encoding="utf-8"))["rows"][0]
    two_stage = row["two_stage"]["test_mean"]
    if two_stage != two_stage:  # NaN: no two-stage team fits the budget
        raise ValueError("no two-stage team fits the budget")
    return 100.0 * (row["joint"]["test_mean"] - two_stage)


def joint_scale_cpu_seconds(stdout: str, tmp: Path) -> float:
    """bench_joint_scale.py: CPU seconds of the GA joint search on the scale menu (one job)."""
    scale = _row(stdout, "scale")["scale"]
    if not scale:
        raise ValueError("the scale part did not run")
    return float(scale[0]["cpu_seconds"])


def obs_accuracy(stdout: str, tmp: Path) -> float:
    """bench_second_order.py --parts oneshot: layer-wise OBS test accuracy, percent."""
    return 100.0 * float(_row(stdout, method="obs (layer-wise, OBC)")["test_accuracy"])


def lowrank_points_lost(stdout: str, tmp: Path) -> float:
    """bench_second_order.py --parts matrix: dense minus lowrank (80 % removed) accuracy, points."""
    dense = _row(stdout, model="dense")["accuracy"]
    return 100.0 * (dense - _row(stdout, model="lowrank, budget 80% removed")["accuracy"])


def adaptive_sparsity(stdout: str, tmp: Path) -> float:
    """bench_adaptive.py: the realised hard sparsity of the learned ratio, percent."""
    return 100.0 * float(_row(stdout, "r0", "sparsity")["sparsity"])


def evolutionary_over_global(stdout: str, tmp: Path) -> float:
    """bench_evolutionary.py: evolutionary minus global magnitude test error, points."""
    evolved = _row(stdout, method="evolutionary")["test_accuracy"]
    return 100.0 * (_row(stdout, method="global magnitude")["test_accuracy"] - evolved)


def evolutionary_over_best(stdout: str, tmp: Path) -> float:
    """bench_evolutionary.py: evolutionary minus the best baseline's test error, points."""
    evolved = _row(stdout, method="evolutionary")["test_accuracy"]
    best = max(
        _row(stdout, method=m)["test_accuracy"]
        for m in ("uniform magnitude", "global magnitude", "lamp")
    )
    return 100.0 * (best - evolved)


def default_metric_gap(stdout: str, tmp: Path) -> float:
    """bench_metric_sets.py: the default set's (entropy) mean test minus the best set's, points."""
    row = _row(stdout, "mean_test", "best")
    return 100.0 * (row["mean_test"]["entropy"] - row["mean_test"][row["best"]])


def resnet_mac_reduction(stdout: str, tmp: Path) -> float:
    """bench_resnet.py: dense / compacted executed MACs of DropNet at 50 % of channels."""
    rows = json.loads((tmp / "resnet.json").read_text(encoding="utf-8"))["rows"]
    halves = [r for r in rows if r.get("method") == "dropnet" and r.get("target") == 0.5]
    if not halves:
        raise ValueError("no DropNet row at 50 % of channels in resnet.json")
    return float(rows[0]["macs_dense"] / halves[0]["macs_dense"])


def cli_slowest_cpu(stdout: str, tmp: Path) -> float:
    """bench_cli_startup.py --json: the slowest command's median CPU seconds."""
    return float(_row(stdout, "slowest_cpu_median")["slowest_cpu_median"])


# ------------------------------------------------------------------------------------- headlines

DATA = '--data-dir "$ENSPRUNE_DATA_DIR"'
LAMP_FULL = (
    "ensprune prune --dataset mnist --method lamp --sparsity {s} --param schedule=gradual "
    "--lr-schedule cosine --augment affine --clean-epochs 40 --distill 0.7 --finetune-epochs 70 "
    "--epochs 120 --batch-size 128 --dense-anneal 0.1 --seed 0 --json"
)
# 6,000 images, 12 dense and 10 fine-tuning epochs: the same recipe, about a minute per point
LAMP_QUICK = (
    "ensprune prune --dataset mnist --method lamp --sparsity {s} --param schedule=gradual "
    "--param prune_every=10 --lr-schedule cosine --augment affine --clean-epochs 5 --distill 0.7 "
    "--finetune-epochs 10 --epochs 12 --batch-size 128 --dense-anneal 0.1 --max-train 6000 "
    "--seed 0 --json --no-download"
)
DROPNET_QUICK = (
    "ensprune prune --dataset mnist --model lenet300 --method dropnet --param align=16 "
    "--sparsity 0.6 --max-train 6000 --epochs 8 --seed 0 --json --no-download"
)


def _study_quick(spec: str) -> str:
    """The quick command of a study spec: its reduced copy, run and reported as JSON."""
    return (
        f"python benchmarks/reproduce.py --reduced-spec {spec} {{tmp}}/spec.toml && "
        "ensprune run {tmp}/spec.toml --run-dir {tmp}/run --quiet >/dev/null && "
        "ensprune report {tmp}/run --json"
    )


FASHION_QUICK = _study_quick("studies/fashion_team.toml")


def _lamp(sparsity: float, spread: float) -> Headline:
    pct = round(sparsity * 100)
    return Headline(
        name=f"lenet300-lamp-{pct}",
        section="Pruning methods: LeNet-300-100 on MNIST: weight pruning (gradual in training, "
        "cosine lr, clean final epochs)",
        claim=f"LAMP at {pct} % sparsity, gradual recipe (RESULTS.md: mean of seeds 0-2; this "
        "command is seed 0)",
        full=LAMP_FULL.format(s=sparsity),
        quick=LAMP_QUICK.format(s=sparsity),
        metric="pruned test error %",
        better="lower",
        extract=pruned_error_pct,
        spread=spread,
    )


HEADLINES: tuple[Headline, ...] = (
    Headline(
        name="focal-speed",
        section="Ensemble selection: Focal-diversity speed",
        claim="batched focal CK/BD/KW/GD against a per-pair loop",
        full="nice python benchmarks/bench_diversity_speed.py --sklearn-ck",
        quick="python benchmarks/bench_diversity_speed.py --members 8 --samples 2000 --repeats 3 "
        "--no-write",
        metric="speed-up over the per-pair loop (x)",
        better="higher",
        extract=focal_speedup,
    ),
    Headline(
        name="selection-scale",
        section="Ensemble selection: Selection scale",
        claim="the GA finds the exhaustive optimum of 16-member pools",
        full="nice python benchmarks/bench_selection_scale.py",
        quick="python benchmarks/bench_selection_scale.py --pools 0 --ga-seeds 3 --large-seeds 1 "
        "--samples 1000 --large-samples 1000 --no-write",
        metric="GA runs at the exhaustive optimum %",
        better="higher",
        extract=ga_hit_share,
        spread=34.0,
    ),
    Headline(
        name="fashion-team",
        section="Ensemble selection: Selection quality on Fashion-MNIST",
        claim="the selected team beats the full pool and the best single member on test",
        full=f"ensprune run studies/fashion_team.toml {DATA} && ensprune report runs/fashion_team",
        quick=FASHION_QUICK,
        metric="team test accuracy minus max(pool, best member), points",
        better="higher",
        extract=team_margin_points,
        spread=1.0,
    ),
    *(_lamp(s, spread) for s, spread in ((0.95, 0.5), (0.97, 0.6), (0.98, 0.8), (0.99, 1.5))),
    Headline(
        name="dropnet-lenet300",
        section="Pruning methods: DropNet-compacted LeNet-300-100: measured CPU speed (align 16)",
        claim="DropNet (align 16) compacts LeNet-300-100 with a batch-256 speed-up >= 0.8 x its "
        "MAC reduction; through the CLI in under 10 minutes on 2 cores",
        full="ensprune prune --dataset mnist --model lenet300 --method dropnet --param align=16 "
        "--sparsity 0.8 --epochs 40 --finetune-epochs 60 --batch-size 128 --dense-anneal 0.1 "
        "--seed 0 --json",
        quick=DROPNET_QUICK,
        metric="points of test accuracy lost",
        better="lower",
        extract=points_lost,
        spread=1.0,
    ),
    Headline(
        name="model-a-curves",
        section="Pruning methods: DropNet on Model A (FC40-FC40) on MNIST",
        claim="DropNet rounds on Model A: test accuracy against units remaining (6 metrics)",
        full=f"python benchmarks/bench_dropnet.py {DATA} --parts model_a --seeds 0 1 2 --threads 1",
        quick="python benchmarks/bench_dropnet.py --parts model_a --seeds 0 --metrics min_global "
        "--max-train-a 10000 --epochs 10 --target 0.5 --threads 1 --no-write",
        metric="points of test accuracy lost at 50 % of units removed (min_global, 4 rounds)",
        better="lower",
        extract=dropnet_points_lost("model_a"),
        spread=1.0,
    ),
    Headline(
        name="model-b-curves",
        section="Pruning methods: DropNet on Model B (Conv64-Conv64-pool) on Fashion-MNIST",
        claim="min_layer within 0.5 points down to 67 % of filters removed",
        full=f"python benchmarks/bench_dropnet.py {DATA} --parts model_b --seeds 0 --threads 1",
        quick="python benchmarks/bench_dropnet.py --parts model_b --seeds 0 --metrics min_layer "
        "--max-train-b 1000 --max-test 1000 --epochs 2 --fraction 0.3 --target 0.5 --threads 1 "
        "--no-write",
        metric="points of test accuracy lost at 50 % of filters removed (min_layer, 2 rounds; "
        "1,000 test images)",
        better="lower",
        extract=dropnet_points_lost("model_b"),
        spread=1.5,
    ),
    Headline(
        name="joint-fashion",
        section="Joint compression: members x operating points under a budget",
        claim="joint selection of members and operating points lies above uniform pruning",
        full=f"python benchmarks/bench_joint.py {DATA} --bag 15000 --epochs 8 "
        "--finetune-epochs 2 --sparsities 0.5 0.7 0.8 0.9 0.95 0.98 "
        "--out benchmarks/results/joint-sketch",
        quick="python benchmarks/bench_joint.py "
        "--members 4 --bag 2000 --epochs 2 --finetune-epochs 1 --methods magnitude "
        "--sparsities 0.8 0.95 --seeds 0 --budgets 0.5 --out {tmp}/joint",
        metric="joint minus uniform pruning test accuracy at 0.5x one member, points",
        better="higher",
        extract=joint_over_uniform,
        spread=1.5,
    ),
    Headline(
        name="joint-fashion-study",
        section="Joint compression: `studies/joint_fashion.toml` in full",
        claim="ensprune run in joint mode: the joint pick against the full dense pool at 1x one member",
        full=f"ensprune run studies/joint_fashion.toml {DATA} && ensprune report runs/joint_fashion",
        quick=_study_quick("studies/joint_fashion.toml"),
        metric="joint team test accuracy minus the full dense pool's, points",
        better="higher",
        extract=team_over_dense_pool_points,
        spread=1.5,
    ),
    Headline(
        name="joint-compact",
        section="Joint compression: Compacted operating points with measured latency as the cost",
        claim="the joint table for compacted (DropNet / APoZ) operating points, latency or "
        "compacted MACs as the cost",
        full=f"python benchmarks/bench_joint_compact.py {DATA} --bag 15000 --epochs 8 "
        "--finetune-epochs 2 --out benchmarks/results/joint-compact-15k",
        # compacted MACs, not latency: a quick run's timings move with the machine's load
        quick="python benchmarks/bench_joint_compact.py --members 3 --bag 2000 --epochs 1 "
        "--finetune-epochs 1 --methods dropnet --max-removed 0.5 --costs compacted_macs "
        "--seeds 0 --budgets 1.0 --out {tmp}/jc",
        metric="joint minus two-stage test accuracy at 1x one member's compacted MACs, points",
        better="higher",
        extract=compact_joint_over_two_stage,
        spread=2.0,
    ),
    Headline(
        name="joint-scale",
        section="Joint compression: Joint search at scale and against enumeration",
        claim="the GA joint search answers on a 64 x 8 menu (10,000 samples) in under 2 minutes",
        full="python benchmarks/bench_joint_scale.py --jobs 1 --write",
        quick="python benchmarks/bench_joint_scale.py --samples 2000 --jobs 1 --seeds 0",
        # CPU time (one job, one thread): a loaded machine stretches wall time, not this
        metric="CPU seconds of the GA on 64 x 8 points, 2,000 samples",
        better="lower",
        extract=joint_scale_cpu_seconds,
    ),
    Headline(
        name="obs-oneshot",
        section="Second-order and matrix pruning: MLP 784-40-20-10 on MNIST: one-shot 95 % "
        "without fine-tuning",
        claim="layer-wise OBS keeps 91.6 % test accuracy at 95 % sparsity, no fine-tuning",
        full="python benchmarks/bench_second_order.py --parts oneshot obs-cost --seeds 0 1 2",
        quick="python benchmarks/bench_second_order.py --parts oneshot --seeds 0 "
        "--methods 'obs (layer-wise, OBC)' --max-train 10000 --samples 512 --no-write",
        metric="obs test accuracy % at 95 % sparsity (10,000 images, 512 calibration samples)",
        better="higher",
        extract=obs_accuracy,
        spread=3.0,
    ),
    Headline(
        name="lowrank-lenet300",
        section="Second-order and matrix pruning: LeNet-300-100: low rank, PCA and randomized "
        "multiplication vs latency",
        claim="lowrank removes 80 % of LeNet-300-100's weights at 0.23 points, no fine-tuning",
        full="python benchmarks/bench_second_order.py --parts matrix --seeds 0",
        quick="python benchmarks/bench_second_order.py --parts matrix --seeds 0 --max-train 6000 "
        "--no-write",
        metric="points of test accuracy lost by lowrank at 80 % of weights removed",
        better="lower",
        extract=lowrank_points_lost,
        spread=1.0,
    ),
    Headline(
        name="adaptive-mlp512",
        section="Learned ratio and evolutionary pruning: adaptive: learned ratio on MLP "
        "784-512-512-10 / MNIST",
        claim="the learned ratio reaches >= 95 % hard sparsity at >= 98.1 % test accuracy",
        full=f"python benchmarks/bench_adaptive.py {DATA} --dense-epochs 15 --epochs 8 "
        "--target 0.97 --reg 100",
        quick="python benchmarks/bench_adaptive.py --r0 0.5 --max-train 10000 --dense-epochs 5 "
        "--epochs 6 --no-write",
        # the method's own figure: how far the learned ratio climbs towards the target 0.97
        metric="realised hard sparsity % learned from r0 0.5 (10,000 images, 6 epochs)",
        better="higher",
        extract=adaptive_sparsity,
        spread=2.0,
    ),
    Headline(
        name="evolutionary-lenet300",
        section="Learned ratio and evolutionary pruning: evolutionary: lenet300 / mnist",
        claim="the evolved per-layer allocation is within the seeds' spread of global magnitude",
        full=f"python benchmarks/bench_evolutionary.py {DATA} --max-train 20000 "
        "--finetune-epochs 6 --population 10 --generations 8 --patience 3 --eval-steps 30",
        quick="python benchmarks/bench_evolutionary.py --seeds 0 --sparsities 0.95 --max-train 5000 "
        "--finetune-epochs 2 --population 6 --generations 3 --eval-steps 20 --no-write",
        metric="evolutionary minus global magnitude test error at 95 %, points",
        better="lower",
        extract=evolutionary_over_global,
        spread=1.0,
    ),
    Headline(
        name="evolutionary-resnet20",
        section="Learned ratio and evolutionary pruning: evolutionary: resnet20 / fashion_mnist",
        claim="the evolved allocation beats the best baseline on ResNet-20 at 95 and 98 %",
        full=f"python benchmarks/bench_evolutionary.py {DATA} --model resnet20 "
        "--dataset fashion_mnist --max-train 10000 --finetune-epochs 2 --population 6 "
        "--generations 3 --patience 2 --eval-steps 100 --seeds 0 1 2",
        quick="python benchmarks/bench_evolutionary.py --model resnet20 --dataset fashion_mnist "
        "--resnet-width 4 --resnet-epochs 1 --resnet-max-train 3000 --max-train 2000 --seeds 0 "
        "--sparsities 0.95 --finetune-epochs 1 --population 4 --generations 1 --eval-steps 20 "
        "--no-write",
        metric="evolutionary minus the best baseline's test error at 95 %, points",
        better="lower",
        extract=evolutionary_over_best,
        spread=3.0,
    ),
    Headline(
        name="metric-sets",
        section="Metric sets and HQ normalisation",
        claim="the default metric set (entropy) is within the standard error of the best set",
        full=f"python benchmarks/bench_metric_sets.py {DATA}",
        quick="python benchmarks/bench_metric_sets.py --datasets mnist --pool-seeds 0 --pool "
        "lenet300 lenet300 model_a model_a mlp_40_20 mlp_40_20 --train-size 2000 --epochs 2 "
        "--no-write",
        metric="entropy minus the best metric set, mean test accuracy, points",
        better="higher",
        extract=default_metric_gap,
        spread=1.0,
    ),
    Headline(
        name="resnet20",
        section="Any model: ResNet-20 on Fashion-MNIST",
        claim="DropNet-compacted ResNet-20 at 50 % of channels: batch-256 speed-up against its "
        "MAC reduction (quick: the MAC reduction; the speed-up of so short a run is noise)",
        full=f"python benchmarks/bench_resnet.py {DATA} --width 8 --epochs 8 --finetune-epochs 2 "
        "--repeats 11 --write",
        quick="python benchmarks/bench_resnet.py --width 8 --epochs 1 --finetune-epochs 1 "
        "--max-train 1000 --max-test 1000 --repeats 3 --parts filter --out {tmp}/resnet.json",
        # Compaction through the residual dependency graph, deterministic. The quick run's
        # speed-up ratio read 0.23 and 0.55 in two runs minutes apart: no spread separates a
        # regression from that noise, so speed stays with the full command.
        metric="executed-MAC reduction (x) of DropNet at 50 % of channels (width 8)",
        better="higher",
        extract=resnet_mac_reduction,
        spread=0.05,
    ),
    Headline(
        name="cli-startup",
        section="CLI start-up",
        claim="`ensprune --help` and `ensprune list KIND` start in under 0.5 s",
        full="python benchmarks/bench_cli_startup.py --repeats 3",
        quick="python benchmarks/bench_cli_startup.py --repeats 3 --kinds datasets models "
        "methods metrics selectors --json",
        metric="slowest command's median CPU seconds",
        better="lower",
        extract=cli_slowest_cpu,
        spread=0.2,
    ),
)
# RESULTS.md headlines that have no quick setting here yet: named so that --quick reports them.
NOT_YET: tuple[str, ...] = ()


# ----------------------------------------------------------------------------------- the checks


def compare(value: float, record: dict[str, Any]) -> str:
    """``"ok"``, ``"better"`` (beyond the spread: re-record) or ``"REGRESSION"``."""
    expected, spread = float(record["value"]), float(record["spread"])
    worse = value - expected if record["better"] == "lower" else expected - value
    if worse > spread:
        return "REGRESSION"
    return "better" if -worse > spread else "ok"


def run_quick(headline: Headline, tmp: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """(figure, seconds, output) of the headline's quick command."""
    command = headline.quick_command(tmp)
    start = time.perf_counter()
    proc = subprocess.run(
        command, shell=True, cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"exit {proc.returncode}: {' / '.join(tail)}")
    assert headline.extract is not None
    return headline.extract(proc.stdout, tmp), seconds, proc.stdout


def reduced_spec(source: Path, target: Path) -> None:
    """A small copy of a study spec: 3,000 images (bags of 1,000), 2 epochs, 2 seeds, 3 trials
    (for --quick)."""
    spec = tomllib.loads(source.read_text(encoding="utf-8"))
    spec["study"]["name"] = f"{spec['study'].get('name', 'study')}_quick"
    spec["data"]["max_train"] = 3000
    seeds = spec["pool"]["seeds"][:2]
    spec["pool"].update(epochs=2, seeds=seeds)
    if "bag" in spec["pool"]:  # bags a third of the 3,000 images, as 15,000 are of the full split
        spec["pool"]["bag"] = min(spec["pool"]["bag"], 1000)
    spec["search"]["trials"] = 3
    members = len(spec["pool"]["architectures"]) * len(seeds)
    spec["selection"]["max_size"] = min(spec["selection"].get("max_size", 5), members // 2)
    target.write_text(_toml(spec), encoding="utf-8")


def _toml(data: dict[str, Any], prefix: str = "") -> str:
    """Minimal TOML writer for a spec (tables of scalars and lists, nested tables)."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    out = (f"[{prefix}]\n" if prefix and lines else "") + "".join(f"{line}\n" for line in lines)
    for key, value in tables:
        out += "\n" + _toml(value, f"{prefix}.{key}" if prefix else key)
    return out


def list_headlines() -> None:
    for h in HEADLINES:
        record = RECORDS / f"{h.name}.json"
        print(f"{h.name}: {h.claim}")
        print(f"  RESULTS.md: {h.section}")
        print(f"  full:  {h.full}")
        print(f"  quick: {h.quick if h.quick else '(no quick setting yet)'}")
        if record.is_file():
            r = json.loads(record.read_text())
            print(f"  record: {h.metric} = {r['value']:.4g} ± {r['spread']:.3g} ({r['recorded']})")
        print()
    if NOT_YET:
        print("No quick setting yet:", *NOT_YET, sep="\n  - ")
    else:
        print("Every headline has a quick setting.")


def _has_record(path: Path, headline: Headline) -> bool:
    """Whether ``path`` holds a record of ``headline``'s current quick command."""
    if not path.is_file():
        return False
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("quick") == headline.quick)
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="show headlines and their commands")
    parser.add_argument("--quick", action="store_true", help="run the quick settings and compare")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these headlines only")
    parser.add_argument(
        "--record", action="store_true", help="write the measured figures as the new records"
    )
    parser.add_argument(
        "--record-missing",
        action="store_true",
        help="record only headlines without a record for their quick command; compare the rest",
    )
    parser.add_argument("--reduced-spec", nargs=2, type=Path, metavar=("SPEC", "OUT"))
    args = parser.parse_args(argv)
    if args.reduced_spec:
        reduced_spec(*args.reduced_spec)
        return 0
    if args.list or not args.quick:
        list_headlines()
        return 0
    names = {h.name for h in HEADLINES}
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        print(f"unknown headline(s) {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    chosen = [h for h in HEADLINES if not args.only or h.name in args.only]
    failed: list[str] = []
    lines = [
        "| headline | metric | quick figure | record | verdict | seconds |",
        "|---|---|---:|---:|---|---:|",
    ]
    with tempfile.TemporaryDirectory(prefix="ensprune-reproduce-") as scratch:
        env = {
            **os.environ,
            "ENSPRUNE_CACHE_DIR": str(Path(scratch) / "cache"),
            "ENSPRUNE_BENCH_CACHE": str(Path(scratch) / "bench-cache"),
        }
        for h in chosen:
            if h.quick is None:
                lines.append(f"| {h.name} | - | - | - | no quick setting yet | - |")
                continue
            tmp = Path(scratch) / h.name
            tmp.mkdir()
            print(f"{h.name}: {h.quick_command(tmp)}", file=sys.stderr, flush=True)
            try:
                value, seconds, _ = run_quick(h, tmp, env)
            except (RuntimeError, ValueError, LookupError, OSError) as exc:
                failed.append(h.name)
                lines.append(f"| {h.name} | {h.metric} | - | - | FAILED ({exc}) | - |")
                continue
            path = RECORDS / f"{h.name}.json"
            if args.record or (args.record_missing and not _has_record(path, h)):
                spread = h.spread or _default_spread(value)
                payload = {
                    "headline": h.name,
                    "metric": h.metric,
                    "better": h.better,
                    "value": round(value, 4),
                    "spread": spread,
                    "quick": h.quick,
                    "recorded": dt.date.today().isoformat(),
                    "machine": machine_info(),
                }
                RECORDS.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
            if not path.is_file():
                failed.append(h.name)
                lines.append(
                    f"| {h.name} | {h.metric} | {value:.4g} | none | NO RECORD (--record) | "
                    f"{seconds:.0f} |"
                )
                continue
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("quick") != h.quick:
                failed.append(h.name)
                verdict = "RECORD IS FOR ANOTHER QUICK COMMAND (--record)"
            else:
                verdict = compare(value, record)
                if verdict == "REGRESSION":
                    failed.append(h.name)
            lines.append(
                f"| {h.name} | {h.metric} | {value:.4g} | {record['value']:.4g} ± "
                f"{record['spread']:.3g} | {verdict} | {seconds:.0f} |"
            )
    print("\n".join(lines))
    print(f"\n- Machine: {machine_info()}; date {dt.date.today().isoformat()}")
    if NOT_YET:
        print("- Not covered by --quick yet:", "; ".join(NOT_YET))
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _default_spread(value: float) -> float:
    """Speed figures vary with the machine's load: a wide band (half the value)."""
    return round(abs(value) * 0.5, 4)


if __name__ == "__main__":
    sys.exit(main())
