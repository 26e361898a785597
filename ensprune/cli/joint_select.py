"""``ensprune select MENU.npz --mode joint``: every member's operating point and the team, under a budget.

A run directory of a joint run (``[selection] mode = "joint"``) selects from its
``menus/val.npz`` with the run's own settings, each flag overriding one.

MENU.npz holds ``proba`` (points, samples, classes), ``member`` (points,), ``cost`` (points,),
``y`` (samples,), optionally ``names`` (points,) and ``cost_name``; see
:mod:`ensprune.ensemble.menu`. ``--selector`` is the joint search: ``ga`` (default), ``nsga2``
or ``exhaustive``. ``--budget`` is a number, ``Nx_member`` (N times the mean cost of a member's
costliest point, its dense network) or ``N%_pool``.

Examples::

    ensprune select menu_val.npz --mode joint --budget 1x_member --json
    ensprune select menu_val.npz --mode joint --selector nsga2 --budget 2e5 --table front.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ensprune.cli.select_settings import SelectSource
    from ensprune.ensemble.menu import Menu
    from ensprune.ensemble.selection.joint import JointSelection

#: flags that have no meaning for the joint search (team-selector knobs)
_NOT_JOINT = ("beta", "k", "normalize", "evolve_weights")


def run_joint(args: argparse.Namespace, source: SelectSource, options: dict[str, str]) -> int:
    """Load the menu, run the joint search, print a summary or JSON; 0 on success.

    ``source`` gives the menu and the base ``[selection]`` settings (a run's, or a spec's
    defaults); ``options`` maps CLI flags to settings, each flag overriding one.
    """
    from ensprune.cli.select_settings import joint_selection
    from ensprune.ensemble.menu import Menu, resolve_budget
    from ensprune.study.build import make_joint_selector

    # bad flags fail before the menu is read
    selection, seed = joint_selection(args, source, options, _NOT_JOINT)
    make_joint_selector(selection, seed)  # bad settings fail before the menu is read
    menu = Menu.load(source.preds)
    budget = resolve_budget(selection.options.get("budget"), menu.dense_cost())
    selector = make_joint_selector(selection, seed, budget)
    selector.progress = not args.quiet
    choice = selector.select_menu(menu)
    table = choice.front if choice.front is not None else choice.selection.table
    if args.table and table is not None:
        path = Path(args.table)
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
    if args.json:
        print(choice.to_json(indent=2))
    else:
        print(summary(choice, menu, budget))
    return 0


def summary(choice: JointSelection, menu: Menu, budget: float | None) -> str:
    """A few human-readable lines describing a joint choice."""
    import numpy as np

    sel = choice.selection
    limit = "no budget" if budget is None else f"budget {budget:g}"
    names = menu.points.names
    acc = menu.points.accuracies()
    fits = [p for p in range(menu.n_points) if budget is None or menu.cost[p] <= budget]
    best = max(fits, key=lambda p: (acc[p], -p)) if fits else int(np.argmax(acc))
    lines = [
        f"joint {choice.search}: {len(choice.points)} of {menu.n_members} members "
        f"({menu.n_points} operating points), {sel.voting} voting",
        f"points: {', '.join(names[p] for p in choice.points)}",
        f"total {choice.cost_name}: {choice.total_cost:g} ({limit})",
        f"validation accuracy: {sel.val_accuracy:.4f} "
        f"(best single point within the budget, {names[best]}: {acc[best]:.4f})",
        "scores: " + ", ".join(f"{k}={v:.4g}" for k, v in sel.scores.items()),
        f"choices scored: {sel.n_evaluated}",
    ]
    if choice.front is not None:
        lines.append(f"front: {len(choice.front)} choices (--json or --table for all)")
    return "\n".join(lines)
