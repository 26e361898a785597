"""Joint compression on Fashion-MNIST: every member's operating point and the team under a budget.

Phase 1 (cached per member under ``benchmarks/_cache/joint/<tag>/``, or ``$ENSPRUNE_BENCH_CACHE``): a pool of members of
several architectures, each trained on its own random bag of the training split; each member
pruned by two methods at a fixed sparsity grid (one fine-tuning run each, nothing else
retrained). A member's menu: its dense network plus its Pareto-optimal pruned points (validation
accuracy against effective MACs). Validation and test probabilities of every point are stored.

Phase 2: at budgets of 0.25x, 0.5x, 1x and 2x one dense member's MACs (the pool's mean), several
selection seeds, on VALIDATION only, compare

- ``joint``: :class:`~ensprune.ensemble.JointSelector` (GA) over the menus;
- ``two_stage``: each member at the sparsest menu point within ``--tolerance`` of its dense
  validation accuracy (the pipeline's rule), then the GA team selector under the budget;
- ``uniform``: the whole pool at one (method, sparsity), the most accurate one on validation
  among those within the budget;

and the references: best single dense member, best single pruned member within the budget, full
dense pool, full pruned (two-stage) pool, HQ team of dense members. TEST accuracy is computed only
for the choices made. Fronts (test accuracy against total cost) of joint (NSGA-II), two-stage and
uniform are drawn into ``<out>/fronts.png``; numbers go to ``<out>/results.json``.

Example::

    OMP_NUM_THREADS=1 nice python benchmarks/bench_joint.py --data-dir $ENSPRUNE_DATA_DIR
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import bench_cache  # noqa: E402

#: architecture of member i: ARCHS[i % len(ARCHS)] (3 lenet300, 4 model_a, 3 mlp_40_20 for 10)
ARCHS = (
    "lenet300",
    "model_a",
    "mlp_40_20",
    "model_a",
    "lenet300",
    "mlp_40_20",
    "model_a",
    "lenet300",
    "mlp_40_20",
    "model_a",
)


def cached_member(path: Path) -> dict[str, np.ndarray] | None:
    """A member's record (arrays) cached by an earlier run of the script, or None."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def same_points(record: dict[str, np.ndarray], arch: str, wanted: set[tuple[str, float]]) -> bool:
    """Whether a cached member has this architecture and exactly these (method, sparsity) points;
    a cache written with other methods or sparsities is trained again, not mixed in."""
    points = zip(record["method"][1:].tolist(), record["sparsity"][1:].tolist(), strict=True)
    return str(record["arch"]) == arch and set(points) == wanted


def train_member(
    data: Any, i: int, bag_size: int, epochs: int, archs: tuple[str, ...] = ARCHS
) -> tuple[Any, Any, Any]:
    """Member ``i``: architecture ``archs[i % len(archs)]`` trained on its own seeded random bag
    of the training split; returns (network, bag inputs, bag labels)."""
    from ensprune.models import TrainConfig, build_seeded, train_model

    rng = np.random.default_rng(100 + i)
    bag = rng.choice(len(data.y_train), size=min(bag_size, len(data.y_train)), replace=False)
    xb, yb = data.x_train[bag], data.y_train[bag]
    net = build_seeded(archs[i % len(archs)], data.input_shape, data.num_classes, seed=i)
    cfg = TrainConfig(epochs=epochs, batch_size=128, lr=1e-3, seed=i, patience=0)
    train_model(net, xb, yb, data.x_val, data.y_val, cfg, progress=False)
    return net, xb, yb


def build_menus(args: argparse.Namespace, cache: Path) -> tuple[dict, list[dict]]:
    """Train and prune the pool (cached per member); return split labels and member records."""
    import torch

    from ensprune.data import load_dataset
    from ensprune.models import TrainConfig, count_macs, count_parameters
    from ensprune.models.training import predict_proba
    from ensprune.pruning import PruningContext, make_method

    torch.set_num_threads(1)
    data = load_dataset(
        "fashion_mnist", data_dir=args.data_dir, seed=0, download=False, progress=False
    )
    labels = {"val": data.y_val, "test": data.y_test}
    records = []
    archs = tuple(args.archs)
    wanted = {(m, float(s)) for m in args.methods for s in args.sparsities}
    for i in range(args.members):
        arch = archs[i % len(archs)]
        path = cache / f"member_{i}.npz"
        cached = cached_member(path)
        if cached is not None and same_points(cached, arch, wanted):
            records.append(cached)
            continue
        t0 = time.time()
        net, xb, yb = train_member(data, i, args.bag, args.epochs, archs)
        rows = {"method": ["dense"], "sparsity": [0.0]}
        val = [predict_proba(net, data.x_val)]
        test = [predict_proba(net, data.x_test)]
        macs = [count_macs(net, data.input_shape, effective=True)]
        params = [count_parameters(net).prunable_nonzero]
        ft = TrainConfig(epochs=args.finetune_epochs, batch_size=128, lr=5e-4, seed=i, patience=0)
        context = PruningContext(xb, yb, data.x_val, data.y_val, finetune=ft, seed=i)
        for method in args.methods:
            for s in args.sparsities:
                result = make_method(method).prune(copy.deepcopy(net), s, context)
                model = result.model
                rows["method"].append(method)
                rows["sparsity"].append(float(s))
                val.append(predict_proba(model, data.x_val))
                test.append(predict_proba(model, data.x_test))
                macs.append(count_macs(model, data.input_shape, effective=True))
                params.append(count_parameters(model).prunable_nonzero)
        rec = {
            "arch": np.asarray(arch),
            "method": np.asarray(rows["method"]),
            "sparsity": np.asarray(rows["sparsity"]),
            "val": np.stack(val).astype(np.float32),
            "test": np.stack(test).astype(np.float32),
            "macs": np.asarray(macs, dtype=np.float64),
            "params": np.asarray(params, dtype=np.float64),
        }
        np.savez_compressed(path, **rec)
        records.append(rec)
        acc = (rec["val"].argmax(-1) == data.y_val).mean(axis=1)
        print(
            f"member {i} ({arch}): dense val {acc[0]:.4f}, pruned {acc[1:].min():.4f}.."
            f"{acc[1:].max():.4f}, {time.time() - t0:.0f} s",
            flush=True,
        )
    return labels, records


def pareto_points(acc: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of the Pareto-optimal points (val accuracy up, cost down); the dense point kept."""
    from ensprune.ensemble.selection.joint import accuracy_front

    keep = set(accuracy_front(acc, cost).tolist()) | {0}
    return np.asarray(sorted(keep))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("ENSPRUNE_DATA_DIR"))
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument(
        "--archs",
        nargs="+",
        default=list(ARCHS),
        help="member i's architecture is ARCHS[i %% len(ARCHS)] (default: 3 lenet300, "
        "4 model_a, 3 mlp_40_20 for 10 members; the issue's sketch: lenet300 model_a)",
    )
    parser.add_argument("--bag", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["magnitude", "lamp"])
    parser.add_argument("--sparsities", nargs="+", type=float, default=[0.8, 0.9, 0.95, 0.98])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.25, 0.5, 1.0, 2.0])
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--out", default=str(HERE / "results" / "joint"))
    args = parser.parse_args()

    tag = f"m{args.members}-b{args.bag}-e{args.epochs}-ft{args.finetune_epochs}"
    if tuple(args.archs) != ARCHS:  # the default pool keeps the tag of earlier caches
        tag += "-" + "-".join(args.archs)
    cache = bench_cache() / "joint" / tag
    cache.mkdir(parents=True, exist_ok=True)
    labels, records = build_menus(args, cache)
    compare(
        records,
        labels,
        cost_key="macs",
        cost_name="effective_macs",
        axis_label="total effective MACs",
        budgets=args.budgets,
        seeds=args.seeds,
        tolerance=args.tolerance,
        out=Path(args.out),
        config=vars(args),
    )


def compare(
    records: list[dict],
    labels: dict,
    *,
    cost_key: str,
    cost_name: str,
    axis_label: str,
    budgets: list[float],
    seeds: list[int],
    tolerance: float,
    out: Path,
    config: dict,
    extra: dict | None = None,
) -> dict:
    """Phase 2 on the members' records: the table at each budget, the references and fronts.

    Every record holds ``val`` / ``test`` probabilities (points, N, C), ``method``, ``sparsity``
    (the level; uniform pruning puts every member at one common (method, level)), ``arch`` and
    the cost array ``record[cost_key]``; point 0 is the dense network. Budgets are multiples of
    one dense member's cost (the pool's mean). Writes ``results.json``, ``menu_val.npz`` and
    ``fronts.png`` to ``out``; returns the results.
    """
    from ensprune.ensemble import (
        GeneticSelector,
        HQSelector,
        JointSelector,
        Menu,
        PredictionSet,
    )
    from ensprune.errors import SpecError

    out.mkdir(parents=True, exist_ok=True)
    y_val, y_test = labels["val"], labels["test"]

    def acc_of(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (proba.argmax(-1) == y[None, :]).mean(axis=1)

    # --- menus: dense + Pareto-optimal pruned points per member (validation only) ---
    proba_v, proba_t, member, cost, names, method_of, sparsity_of = [], [], [], [], [], [], []
    for i, rec in enumerate(records):
        keep = pareto_points(acc_of(rec["val"], y_val), rec[cost_key])
        for k in keep:
            proba_v.append(rec["val"][k])
            proba_t.append(rec["test"][k])
            member.append(i)
            cost.append(float(rec[cost_key][k]))
            names.append(f"{i}:{rec['arch']}:{rec['method'][k]}@{rec['sparsity'][k]:g}")
            method_of.append(str(rec["method"][k]))
            sparsity_of.append(float(rec["sparsity"][k]))

    def normed(p: list[np.ndarray]) -> np.ndarray:
        a = np.stack(p).astype(np.float64)
        return a / a.sum(-1, keepdims=True)

    menu = Menu.from_arrays(
        normed(proba_v), member=member, cost=cost, y=y_val, names=names,
        cost_name=cost_name,
    )  # fmt: skip
    menu_test = menu.with_split(PredictionSet(normed(proba_t), y_test, cost=np.asarray(cost)))
    dense_cost = np.array([r[cost_key][0] for r in records])
    unit = float(dense_cost.mean())
    m = len(records)
    print(
        f"menu: {menu.n_points} points for {m} members; one dense member = {unit:.4g} {cost_name}"
    )

    def ps(split: str, idx: list[int]) -> PredictionSet:
        src = menu if split == "val" else menu_test
        return src.points.subset(idx)

    dense_idx = [int(menu.points_of(i)[-1]) for i in range(m)]  # costliest = dense
    # two-stage rule: sparsest (cheapest) menu point within tolerance of the dense val accuracy
    val_acc = acc_of(menu.points.proba, y_val)
    two_idx = []
    for i in range(m):
        pts = menu.points_of(i)
        ok = [int(p) for p in pts if val_acc[p] >= val_acc[dense_idx[i]] - tolerance]
        two_idx.append(min(ok, key=lambda p: menu.cost[p]))

    def soft_acc(idx: list[int], split: str = "test") -> float:
        from ensprune.ensemble import TeamVoter

        p = ps(split, idx)
        return float(TeamVoter(p.proba, "soft").accuracy(np.ones((1, len(idx))), p.y)[0])

    refs = {
        "best single dense member": (dense_idx[int(np.argmax(val_acc[dense_idx]))],),
        "full dense pool": tuple(dense_idx),
        "full pruned pool (two-stage points)": tuple(two_idx),
    }
    hq = HQSelector(max_size=m).select(ps("val", dense_idx))
    refs["HQ team of dense members"] = tuple(dense_idx[j] for j in hq.members)
    ref_rows = {
        k: {"test_accuracy": soft_acc(list(v)), "cost": float(menu.cost[list(v)].sum())}
        for k, v in refs.items()
    }

    # uniform pruning: all members at one (method, sparsity) level
    # levels every member was pruned at (whether or not on its menu)
    levels = sorted(
        set.intersection(
            *[{(str(a), float(b)) for a, b in zip(r["method"], r["sparsity"], strict=True)}
              for r in records]
        )
    )  # fmt: skip
    uniform = []
    for mt, s in [("dense", 0.0)] + [(mt, s) for mt, s in levels if mt != "dense"]:
        idx = []
        for i, rec in enumerate(records):
            k = [j for j in range(len(rec["method"])) if rec["method"][j] == mt
                 and rec["sparsity"][j] == s]  # fmt: skip
            idx.append((i, k[0]))
        pv = normed([records[i]["val"][k] for i, k in idx])
        pt = normed([records[i]["test"][k] for i, k in idx])
        c = float(sum(records[i][cost_key][k] for i, k in idx))
        ones = np.ones((1, m))
        from ensprune.ensemble import TeamVoter

        uniform.append(
            {
                "level": f"{mt}@{s:g}",
                "cost": c,
                "val_accuracy": float(TeamVoter(pv, "soft").accuracy(ones, y_val)[0]),
                "test_accuracy": float(TeamVoter(pt, "soft").accuracy(ones, y_test)[0]),
            }
        )

    rows = []
    two_ps_val = ps("val", two_idx)
    two_ps_val = PredictionSet(two_ps_val.proba, y_val, cost=menu.cost[two_idx])
    for mult in budgets:
        budget = mult * unit
        row: dict = {"budget_x_member": mult, "budget": budget}
        joint_acc, joint_cost, joint_time, acc_only = [], [], [], []
        for seed in seeds:
            t0 = time.time()
            try:
                sel = JointSelector(budget=budget, seed=seed).select_menu(menu)
                only = JointSelector(budget=budget, seed=seed, w_diversity=0.0, w_size=0.0)
                acc_only.append(only.select_menu(menu).accuracy(menu_test))
            except SpecError as exc:  # no team of two members' points fits the budget
                row["joint_note"] = str(exc)
                joint_acc.append(float("nan"))
                acc_only.append(float("nan"))
                joint_cost.append(float("nan"))
                continue
            joint_time.append(time.time() - t0)
            joint_acc.append(sel.accuracy(menu_test))
            joint_cost.append(sel.total_cost)
        row["joint"] = {
            "test_mean": float(np.mean(joint_acc)),
            "test_std": float(np.std(joint_acc)),
            "tests": joint_acc,
            "cost_mean": float(np.mean(joint_cost)),
            "seconds_mean": float(np.mean(joint_time)) if joint_time else float("nan"),
        }
        row["joint_accuracy_only"] = {"test_mean": float(np.mean(acc_only)), "tests": acc_only}
        two = []
        for seed in seeds:
            try:
                sel2 = GeneticSelector(budget=budget, seed=seed).select(two_ps_val)
                two.append(soft_acc([two_idx[j] for j in sel2.members]))
            except Exception as exc:  # no team of the two-stage points fits the budget
                two.append(float("nan"))
                row["two_stage_note"] = str(exc)
        row["two_stage"] = {"test_mean": float(np.mean(two)), "tests": two}
        fits = [u for u in uniform if u["cost"] <= budget * (1 + 1e-9)]
        best_u = max(fits, key=lambda u: u["val_accuracy"]) if fits else None
        row["uniform"] = best_u
        singles = [p for p in range(menu.n_points) if menu.cost[p] <= budget]
        pruned_singles = [p for p in singles if p not in dense_idx]
        if pruned_singles:
            bp = max(pruned_singles, key=lambda p: val_acc[p])
            row["best single pruned member"] = {"test_accuracy": soft_acc([bp]), "point": names[bp]}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "uniform"}), flush=True)

    # fronts: joint NSGA-II (no budget), two-stage GA over a budget grid, uniform levels
    fronts: dict[str, list[tuple[float, float]]] = {"joint (NSGA-II)": [], "two-stage": []}
    nsga = JointSelector(search="nsga2", seed=0, population=100, generations=150).select_menu(menu)
    assert nsga.front is not None
    for rec_f in nsga.front.to_dict("records"):
        fronts["joint (NSGA-II)"].append(
            (float(rec_f["total_cost"]), soft_acc(list(rec_f["points"])))
        )
    for mult in (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6):
        try:
            sel2 = GeneticSelector(budget=mult * unit, seed=0).select(two_ps_val)
        except Exception:
            continue
        team = [two_idx[j] for j in sel2.members]
        fronts["two-stage"].append((float(menu.cost[team].sum()), soft_acc(team)))
    fronts["uniform (full pool)"] = [(u["cost"], u["test_accuracy"]) for u in uniform]

    result = {
        "config": config,
        "cost_name": cost_name,
        "one_member_cost": unit,
        **(extra or {}),
        "menu_points": menu.n_points,
        "members": [str(r["arch"]) for r in records],
        "dense_val": [float(val_acc[d]) for d in dense_idx],
        "references": ref_rows,
        "uniform": uniform,
        "rows": rows,
        "fronts": fronts,
    }
    (out / "results.json").write_text(json.dumps(result, indent=1, default=float))
    menu.save(out / "menu_val.npz")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, pts in fronts.items():
            pts = sorted(pts)
            ax.plot([c / unit for c, _ in pts], [a for _, a in pts], marker="o", ms=3, label=name)
        for name, r in ref_rows.items():
            ax.scatter([r["cost"] / unit], [r["test_accuracy"]], marker="*", s=80, label=name)
        ax.set_xscale("log")
        ax.set_xlabel(f"{axis_label} (x one dense member)")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "fronts.png", dpi=120)
    except ImportError:
        pass
    print(json.dumps(ref_rows, indent=1))
    return result


if __name__ == "__main__":
    main()
