"""The run's choices recorded in the Optuna storage (study user attributes and a dashboard note)."""

from __future__ import annotations

import optuna
import pandas as pd

from ensprune.study.annotate import (
    CHOSEN_TRIAL,
    IN_TEAM,
    OPERATING_POINT,
    SELECTED_TEAM,
    record_choices,
)


def test_record_choices_on_every_member_study() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    rows = []
    for member in ("a", "b"):
        study = optuna.create_study(study_name=f"s.{member}", storage=storage)
        study.optimize(lambda t: t.suggest_float("sparsity", 0, 1), n_trials=3)
        for t in study.trials:
            rows.append(
                {
                    "member": member,
                    "study_name": f"s.{member}",
                    "number": t.number,
                    "method": "magnitude",
                    "val_accuracy": 0.9,
                    "sparsity": t.params["sparsity"],
                    "chosen": t.number == 1,
                }
            )
    record_choices(storage, pd.DataFrame(rows), ["a"], "hq")
    a = optuna.load_study(study_name="s.a", storage=storage)
    b = optuna.load_study(study_name="s.b", storage=storage)
    assert a.user_attrs[CHOSEN_TRIAL] == 1 and a.user_attrs[OPERATING_POINT]["trial"] == 1
    assert a.user_attrs[SELECTED_TEAM] == ["a"] and a.user_attrs[IN_TEAM] is True
    assert b.user_attrs[IN_TEAM] is False
    # optuna-dashboard's note on the study names the chosen trial
    system = storage.get_study_system_attrs(storage.get_study_id_from_name("s.a"))
    notes = [v for k, v in system.items() if "note" in k]
    assert any("trial 1" in str(v) for v in notes)
