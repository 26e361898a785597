"""``ensprune select MENU.npz --mode joint``: every member's operating point and the team, under a budget.

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
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ensprune.errors import SpecError

if TYPE_CHECKING:
    from ensprune.ensemble.menu import Menu
    from ensprune.ensemble.selection.joint import JointSelection

#: flags that have no meaning for the joint search (team-selector knobs)
_NOT_JOINT = ("beta", "k", "normalize", "evolve_weights")


def joint_kwargs(args: argparse.Namespace, options: dict[str, str]) -> dict[str, Any]:
    """The JointSelector settings given on the command line (``options``: flag -> setting).

    Raises:
        SpecError: a flag the joint search does not take.
    """
    from ensprune.ensemble.selection.joint import JOINT_SEARCHES, JointSelector

    fields = {f.name for f in dataclasses.fields(JointSelector)}
    kwargs: dict[str, Any] = {"search": JOINT_SEARCHES.canonical(args.selector or "ga")}
    for flag, setting in options.items():
        value = vars(args).get(flag)
        if value is None or flag == "budget":
            continue
        if flag in _NOT_JOINT or setting not in fields:
            raise SpecError(f"--{flag.replace('_', '-')} does not apply to --mode joint")
        if setting == "metrics":
            value = tuple(m.strip() for m in str(value).split(",") if m.strip())
        kwargs[setting] = value
    kwargs["progress"] = not args.quiet
    return kwargs


def run_joint(args: argparse.Namespace, options: dict[str, str]) -> int:
    """Load the menu, run the joint search, print a summary or JSON; 0 on success."""
    from ensprune.ensemble.menu import Menu, resolve_budget
    from ensprune.ensemble.selection.joint import JointSelector

    kwargs = joint_kwargs(args, options)  # bad flags fail before the menu is read
    menu = Menu.load(args.preds)
    budget = resolve_budget(args.budget, menu.dense_cost())
    choice = JointSelector(budget=budget, **kwargs).select_menu(menu)
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
