"""``ensprune select PREDS.npz|RUN_DIR``: choose a sub-ensemble from member predictions.

PREDS.npz holds ``proba`` (members, samples, classes) and ``y`` (samples,), optionally ``names``
and ``cost`` (one per member), from any framework; its settings default to a spec's defaults
(``[selection]`` of :class:`~ensprune.study.spec.SelectionSpec`). RUN_DIR is a directory that
``ensprune run`` wrote: its validation predictions (``menus/val.npz`` for ``mode = "joint"``)
with the run's own ``[selection]`` settings and seed, so the run's team comes out again. Either
way, each flag overrides one setting. Selection runs on validation predictions only.

Examples::

    ensprune select runs/quickstart                      # the run's team, from its own settings
    ensprune select runs/quickstart --beta 0.3 --json    # the same with one setting changed
    ensprune select val.npz --selector hq --metric gd,kw --beta 0.1 --max-size 5
    ensprune select val.npz --selector ga --budget 2e6 --seed 3 --n-jobs 2 --json
    ensprune select val.npz --selector nsga2 --table front.csv --quiet
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ensprune.cli._checks import finite_float, seed
from ensprune.errors import PredictionError

if TYPE_CHECKING:
    from ensprune.ensemble.predictions import PredictionSet
    from ensprune.ensemble.selection import Selection

# CLI flag -> selector setting; a flag given for a selector without that setting is an error
_OPTIONS: dict[str, str] = {
    "metric": "metrics",
    "beta": "beta",
    "max_size": "max_size",
    "budget": "budget",
    "seed": "seed",
    "voting": "voting",
    "n_jobs": "n_jobs",
    "k": "k",
    "population": "population",
    "generations": "generations",
    "negatives": "n_negatives",
    "draws": "n_draws",
    "normalize": "normalize",
    "evolve_weights": "evolve_weights",
    "w_accuracy": "w_accuracy",
    "w_diversity": "w_diversity",
    "w_size": "w_size",
}


def add_parser(subparsers: Any) -> None:
    """Add the ``select`` subcommand."""
    parser = subparsers.add_parser(
        "select",
        help="choose a sub-ensemble from member predictions (PREDS.npz or a run directory)",
        description=(
            "Choose a sub-ensemble on validation predictions. PREDS.npz holds 'proba' "
            "(members, samples, classes) and 'y' (samples,), optionally 'names' and 'cost'; "
            "its settings default to a spec's defaults. A run directory gives its validation "
            "predictions and its own [selection] settings and seed, so the run's team comes out "
            "again. Each flag overrides one setting."
        ),
    )
    parser.add_argument(
        "preds",
        metavar="PREDS.npz|RUN_DIR",
        help="member predictions (numpy .npz), or a run directory of `ensprune run`",
    )
    # Names are checked (in any case) when the command runs, not by argparse choices: building
    # the parser must not import the selectors and metrics (see `ensprune list selectors`).
    parser.add_argument(
        "--selector",
        help="selection algorithm, any case (default: the run's, else hq; with --mode joint: ga, "
        "nsga2 or exhaustive, default ga)",
    )
    parser.add_argument(
        "--metric",
        help="focal-diversity metric(s), comma-separated for a consensus, any case "
        "(default: the run's, else entropy; see `ensprune list metrics`)",
    )
    parser.add_argument(
        "--beta", type=finite_float, help="HQ prune ratio in [0, 1) (default: the run's, else 0.1)"
    )
    parser.add_argument(
        "--max-size", type=int, help="largest team size (default: the run's, else 5)"
    )
    parser.add_argument(
        "--mode",
        type=str.lower,
        choices=("team", "joint"),
        help="team: choose members of PREDS.npz (default); joint: PREDS.npz is a menu of "
        "operating points, choose each member's point (or out) and the team under --budget "
        "(default for a run directory: the run's [selection] mode)",
    )
    parser.add_argument(
        "--budget",
        help="largest summed cost (needs 'cost'): a number, Nx_member (N times the mean member "
        "cost; in a menu, of members' costliest points) or N%%_pool",
    )
    for term in ("accuracy", "diversity", "size"):
        parser.add_argument(
            f"--w-{term}", type=finite_float, help=f"objective weight of the team's {term}"
        )
    parser.add_argument("--seed", type=seed, help="random seed (default: the run's, else 0)")
    parser.add_argument(
        "--voting",
        help="voting rule, any case (default: the run's, else soft; caruana: weighted; see "
        "`ensprune list voting`)",
    )
    parser.add_argument("--n-jobs", type=int, help="joblib workers for team scoring")
    parser.add_argument("--k", type=int, help="team size for topk and random")
    parser.add_argument("--population", type=int, help="ga/nsga2 population size")
    parser.add_argument("--generations", type=int, help="ga/nsga2 maximum generations")
    parser.add_argument(
        "--negatives", type=int, help="subsample this many negatives per focal member"
    )
    parser.add_argument(
        "--draws", type=int, help="number of negative subsamples (with --negatives)"
    )
    parser.add_argument(
        "--normalize",
        type=str.lower,
        choices=(
            "none",
            "candidates",
            "all",
        ),  # focal.NORMALIZE_MODES, kept import-free for start-up
        help="hq/exhaustive: min-max normalise focal scores per (focal member, team size) over "
        "the surviving candidates or over all teams of a size (all = the published HQ; "
        "default none; see docs/metrics.md)",
    )
    parser.add_argument(
        "--evolve-weights",
        action="store_const",
        const=True,
        help="ga: evolve voting weights for the chosen team (weighted soft voting)",
    )
    parser.add_argument(
        "--table", metavar="CSV", help="write the selector's table to this CSV file"
    )
    parser.add_argument("--json", action="store_true", help="print the selection as JSON")
    parser.add_argument(
        "--names", action="store_true", help="no effect: the summary always lists member names"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the predictions, run the selector, print a summary or JSON; 0 on success."""
    from ensprune.cli._checks import output_file
    from ensprune.cli._logging import configure_logging
    from ensprune.cli.select_settings import resolve_source, team_settings

    source = resolve_source(args.preds, args.mode)  # bad paths fail here, in one line
    if args.table:
        output_file(args.table, "--table")
    configure_logging(verbose=not args.quiet)  # progress lines on stderr
    if source.selection.mode == "joint":
        from ensprune.cli.joint_select import run_joint

        return run_joint(args, source, _OPTIONS)
    from ensprune.ensemble.predictions import PredictionSet
    from ensprune.ensemble.selection import SELECTORS

    preds = PredictionSet.load(source.preds)
    if preds.n_members < 2:
        raise PredictionError(
            f"{source.preds} holds {preds.n_members} member; selection needs at least 2"
        )
    if args.budget is not None:  # relative budgets are shares of the members' costs
        from ensprune.ensemble.menu import resolve_budget

        member_cost = preds.cost if preds.cost is not None else np.zeros(1)
        args.budget = resolve_budget(args.budget, member_cost)
    selector_name, kwargs = team_settings(args, source, _OPTIONS)
    selection = SELECTORS.get(selector_name)(**kwargs).select(preds)
    if args.table and selection.table is not None:
        path = Path(args.table)
        path.parent.mkdir(parents=True, exist_ok=True)
        selection.table.to_csv(path, index=False)
    if args.json:
        print(selection.to_json(indent=2))
    else:
        print(summary(selection, preds))
        if source.run is not None:
            print(compare_with_run(selection, source.run))
    return 0


def compare_with_run(selection: Selection, run: Path) -> str:
    """One line: whether ``selection`` is the team the run chose (its selection.json)."""
    from ensprune import rundir as rd

    if not (run / rd.SELECTION_JSON).is_file():
        return "the run has no selection.json yet (its select stage has not finished)"
    names = rd.RunDir(run).selection.get("names") or []
    if list(names) == list(selection.names):
        return "same team as the run (selection.json)"
    return f"differs from the run's team (selection.json): {', '.join(map(str, names))}"


def summary(selection: Selection, preds: PredictionSet) -> str:
    """A few human-readable lines describing the selection (member indices and names)."""
    lines = [
        f"selector {selection.selector}: {selection.size} of {preds.n_members} members, "
        f"{selection.voting} voting",
        f"members: {', '.join(str(i) for i in selection.members)}",
        f"names: {', '.join(selection.names)}",
    ]
    if selection.weights is not None:
        lines.append(f"weights: {', '.join(f'{w:.3f}' for w in selection.weights)}")
    best = max(range(preds.n_members), key=lambda i: preds.accuracies()[i])
    lines.append(
        f"validation accuracy: {selection.val_accuracy:.4f} "
        f"(best single member {preds.names[best]}: {preds.accuracies()[best]:.4f})"
    )
    if selection.scores:
        lines.append("scores: " + ", ".join(f"{k}={v:.4g}" for k, v in selection.scores.items()))
    if selection.n_evaluated is not None:
        lines.append(f"teams scored: {selection.n_evaluated}")
    return "\n".join(lines)
