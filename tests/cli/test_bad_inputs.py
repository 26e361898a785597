"""Every error a user can cause is one line on stderr and exit code 2, before any training.

One table of bad inputs (spec values, paths that are files or directories, malformed files,
numeric flags beyond their bounds) walked through ``ensprune`` as a user types it. Training is
replaced by a function that fails the test, so a case that is only caught after training (or
never) cannot pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ensprune.cli import main

DIR = object()  # a file entry that is a directory

# A valid, tiny spec: section -> key -> TOML literal. Cases change one key (None drops it).
BASE_SPEC: dict[str, dict[str, str]] = {
    "study": {"name": '"bad"', "seed": "0"},
    "data": {"dataset": '"digits"'},
    "pool": {"architectures": '["model_a"]', "seeds": "[0, 1]", "epochs": "1"},
    "search": {"methods": '["magnitude"]', "trials": "1", "finetune_epochs": "1"},
    "selection": {"selector": '"hq"', "metric": '"gd"', "max_size": "2"},
}


def spec(extra: str = "", /, **changes: dict[str, str | None] | None) -> str:
    """The base spec with ``changes`` (section -> {key: TOML literal or None}, or None to drop the
    section) and ``extra`` text."""
    sections = {name: dict(keys) for name, keys in BASE_SPEC.items()}
    for name, keys in changes.items():
        if keys is None:
            sections.pop(name)
            continue
        for key, value in keys.items():
            if value is None:
                sections[name].pop(key, None)
            else:
                sections.setdefault(name, {})[key] = value
    text = "\n".join(
        f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
        for name, keys in sections.items()
    )
    return text + extra


def preds(members: int = 3, samples: int = 30, classes: int = 3, **arrays: Any) -> dict[str, Any]:
    """A valid prediction file's arrays (``proba``, ``y``) with ``arrays`` replacing or adding."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(members, samples, classes))
    proba = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    out: dict[str, Any] = {"proba": proba, "y": rng.integers(0, classes, samples)}
    out.update(arrays)
    return {k: v for k, v in out.items() if v is not None}


def torch_file(payload: Any) -> Any:
    """A writer of ``payload`` with ``torch.save`` (imported when the case runs)."""

    def write(path: Path) -> None:
        import torch

        torch.save(payload() if callable(payload) else payload, path)

    return write


def _tensor_state() -> dict[str, Any]:
    import torch

    return {"fc.weight": torch.zeros(2, 2)}


def journal_storage(path: Path) -> None:
    """An Optuna journal storage holding one study."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study" line on stderr
    try:
        optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))), study_name="s")
    finally:
        optuna.logging.set_verbosity(level)


class _Pickled:  # a pickled object: weights_only=True refuses it
    pass


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
GARBAGE = bytes(range(256)) * 4
NAN_PROBA = preds()["proba"].copy()
NAN_PROBA[1, 0, 0] = np.nan


@dataclass(frozen=True)
class Case:
    """``ensprune *argv`` in a fresh directory holding ``files``; stderr must name ``expect``."""

    id: str
    argv: tuple[str, ...]
    expect: str
    files: dict[str, Any] = field(default_factory=dict)
    needs_no_cuda: bool = False  # a case about a missing CUDA device


def run_case(id: str, argv: str, expect: str, **files: Any) -> Case:
    # file names are keyword arguments: "spec_toml" -> "spec.toml"
    return Case(id, tuple(argv.split()), expect, {k.replace("_", "."): v for k, v in files.items()})


def run_spec(id: str, text: str, expect: str) -> Case:
    return run_case(id, "run spec.toml --quiet", expect, spec_toml=text)


CASES = [
    # ---------------------------------------------------------------- top level and list
    run_case("no-command", "", "required"),
    run_case("unknown-command", "fly", "invalid choice"),
    run_case("list-unknown-kind", "list wizards", "invalid choice"),
    run_case("list-no-kind", "list", "required"),
    # ---------------------------------------------------------------- run: the spec file
    run_case("spec-missing", "run nope.toml", "does not exist"),
    run_case("spec-is-dir", "run spec.toml", "is a directory", spec_toml=DIR),
    run_case("spec-garbage", "run spec.toml", "not valid TOML", spec_toml=GARBAGE),
    run_case("spec-png", "run spec.toml", "not valid TOML", spec_toml=PNG),
    run_case("spec-bad-toml", "run spec.toml", "not valid TOML", spec_toml="[study\nname ="),
    run_spec("unknown-section", spec("[serach]\ntrials = 2\n"), "unknown section"),
    run_spec("section-not-table", "pool = 5\n" + spec(pool=None), "must be a table"),
    run_spec("unknown-key", spec(pool={"epoch": "3"}), "unknown key"),
    run_spec("unknown-study-key", spec(study={"nmae": '"x"'}), "unknown key"),
    # [study]
    run_spec("name-dotdot", spec(study={"name": '".."'}), "[study] name"),
    run_spec("name-dot", spec(study={"name": '"."'}), "[study] name"),
    run_spec("name-empty", spec(study={"name": '""'}), "[study] name"),
    run_spec("name-slash", spec(study={"name": '"a/b"'}), "[study] name"),
    run_spec("name-int", spec(study={"name": "5"}), "[study] name must be a string"),
    run_spec("seed-negative", spec(study={"seed": "-1"}), "[study] seed"),
    run_spec("seed-too-big", spec(study={"seed": "4294967296"}), "[study] seed"),
    run_spec("seed-float", spec(study={"seed": "1.5"}), "[study] seed"),
    run_spec("storage-int", spec(study={"storage": "5"}), "[study] storage must be a string"),
    run_spec("storage-empty", spec(study={"storage": '""'}), "storage"),
    run_spec("storage-not-url", spec(study={"storage": '"nowhere"'}), "neither a database URL"),
    run_spec("storage-bad-driver", spec(study={"storage": '"nosuchdb://x/y"'}), "storage"),
    run_spec("run-dir-int", spec(study={"run_dir": "5"}), "[study] run_dir must be a string"),
    run_spec("run-dir-empty", spec(study={"run_dir": '""'}), "[study] run_dir"),
    run_spec("device-gpu", spec(study={"device": '"gpu"'}), "device"),
    run_spec("workers-zero", spec(study={"workers": "0"}), "[study] workers"),
    run_spec("workers-string", spec(study={"workers": '"2"'}), "[study] workers"),
    run_spec("callbacks-string", spec(study={"callbacks": '"x"'}), "callbacks"),
    run_spec("callbacks-missing", spec(study={"callbacks": '["nosuch.mod:f"]'}), "nosuch"),
    # [data]
    run_spec("dataset-unknown", spec(data={"dataset": '"imagenet"'}), "unknown dataset"),
    run_spec("dataset-int", spec(data={"dataset": "3"}), "must be a string"),
    run_spec("val-fraction-nan", spec(data={"val_fraction": "nan"}), "val_fraction"),
    run_spec("test-fraction-big", spec(data={"test_fraction": "1.5"}), "test_fraction"),
    run_spec("max-train-small", spec(data={"max_train": "5"}), "max_train"),
    run_spec("max-test-float", spec(data={"max_test": "100.5"}), "max_test"),
    # [pool]
    run_spec("architectures-string", spec(pool={"architectures": '"model_a"'}), "must be a list"),
    run_spec("architectures-empty", spec(pool={"architectures": "[]"}), "at least one model"),
    run_spec("architecture-unknown", spec(pool={"architectures": '["vit"]'}), "unknown model"),
    run_spec("architecture-int", spec(pool={"architectures": "[5]"}), "model 5"),
    run_spec("seeds-duplicate", spec(pool={"seeds": "[0, 0]"}), "distinct"),
    run_spec("seeds-negative", spec(pool={"seeds": "[0, -1]"}), "[pool] seeds"),
    run_spec("seeds-too-big", spec(pool={"seeds": "[0, 4294967296]"}), "4294967295"),
    run_spec("seeds-float", spec(pool={"seeds": "[0, 1.5]"}), "[pool] seeds"),
    run_spec("epochs-zero", spec(pool={"epochs": "0"}), "[pool] epochs"),
    run_spec("epochs-bool", spec(pool={"epochs": "true"}), "[pool] epochs"),
    run_spec("batch-size-zero", spec(pool={"batch_size": "0"}), "[pool] batch_size"),
    run_spec("lr-inf", spec(pool={"lr": "inf"}), "[pool] lr"),
    run_spec("lr-string", spec(pool={"lr": '"fast"'}), "must be a number"),
    run_spec("weight-decay-negative", spec(pool={"weight_decay": "-1.0"}), "weight_decay"),
    run_spec("weight-decay-nan", spec(pool={"weight_decay": "nan"}), "weight_decay"),
    run_spec("weight-decay-inf", spec(pool={"weight_decay": "inf"}), "weight_decay"),
    run_spec("patience-negative", spec(pool={"patience": "-1"}), "[pool] patience"),
    run_spec("optimizer-unknown", spec(pool={"optimizer": '"adamw2"'}), "unknown optimizer"),
    run_spec("augment-unknown", spec(pool={"augment": '"mixup9"'}), "augmentation"),
    run_spec("augment-empty", spec(pool={"augment": '""'}), "augmentation"),
    # [search]
    run_spec("methods-empty", spec(search={"methods": "[]"}), "at least one pruning method"),
    run_spec("method-unknown", spec(search={"methods": '["snip"]'}), "unknown pruning method"),
    run_spec("sparsity-reversed", spec(search={"sparsity": "[0.9, 0.3]"}), "sparsity"),
    run_spec("sparsity-one-value", spec(search={"sparsity": "[0.5]"}), "sparsity"),
    run_spec("sparsity-nan", spec(search={"sparsity": "[nan, 0.5]"}), "sparsity"),
    run_spec("sparsity-one", spec(search={"sparsity": "[0.5, 1.0]"}), "sparsity"),
    run_spec("trials-zero", spec(search={"trials": "0"}), "[search] trials"),
    run_spec("finetune-epochs-negative", spec(search={"finetune_epochs": "-1"}), "finetune_epochs"),
    run_spec("finetune-lr-zero", spec(search={"finetune_lr": "0.0"}), "finetune_lr"),
    run_spec("finetune-lr-negative", spec(search={"finetune_lr": "-0.1"}), "finetune_lr"),
    run_spec("finetune-lr-nan", spec(search={"finetune_lr": "nan"}), "finetune_lr"),
    run_spec("finetune-lr-inf", spec(search={"finetune_lr": "inf"}), "finetune_lr"),
    run_spec("sampler-unknown", spec(search={"sampler": '"grid9"'}), "unknown sampler"),
    run_spec("sampler-knob", spec("[search.sampler_params]\nbogus = 1\n"), "bogus"),
    run_spec("tolerance-nan", spec(search={"accuracy_tolerance": "nan"}), "accuracy_tolerance"),
    run_spec("distill-big", spec(search={"distill": "1.5"}), "distill"),
    run_spec("temperature-inf", spec(search={"temperature": "inf"}), "temperature"),
    run_spec("lr-schedule-unknown", spec(search={"lr_schedule": '"step"'}), "lr schedule"),
    run_spec("clean-epochs-negative", spec(search={"clean_epochs": "-1"}), "clean_epochs"),
    run_spec("method-params-other", spec("[search.method_params.lamp]\n"), "not in [search]"),
    run_spec("method-knob-unknown", spec("[search.method_params.magnitude]\nbogus = 1\n"), "bogus"),
    run_spec(
        "method-knob-value",
        spec('[search.method_params.magnitude]\nscope = "everywhere"\n'),
        "scope",
    ),
    run_spec(
        "method-params-case-twice",
        spec("[search.method_params.magnitude]\n[search.method_params.MAGNITUDE]\n"),
        "twice",
    ),
    # [selection]
    run_spec("selector-unknown", spec(selection={"selector": '"best"'}), "unknown selector"),
    run_spec("metric-unknown", spec(selection={"metric": '"gd,xx"'}), "unknown"),
    run_spec("metric-empty", spec(selection={"metric": '""'}), "metric"),
    run_spec("max-size-one", spec(selection={"max_size": "1"}), "max_size"),
    run_spec("max-size-beyond-pool", spec(selection={"max_size": "3"}), "exceeds the pool"),
    run_spec("voting-unknown", spec(selection={"voting": '"ranked"'}), "unknown voting"),
    run_spec("beta-big", spec(selection={"beta": "1.5"}), "beta"),
    run_spec("beta-string", spec(selection={"beta": '"x"'}), "beta"),
    run_spec("selector-knob-unknown", spec(selection={"population": "5"}), "population"),
    run_spec("options-not-table", spec(selection={"options": "5"}), "options must be a table"),
    run_spec("pool-of-one", spec(pool={"seeds": "[0]"}), "at least 2 members"),
    run_spec("section-odd-case", spec("[Search]\ntrials = 2\n"), "unknown section"),
    run_spec("name-too-long", spec(study={"name": '"' + "a" * 300 + '"'}), "[study] name"),
    run_spec(
        "architectures-twice",
        spec(pool={"architectures": '["model_a", "MODEL_A"]', "seeds": "[0]"}),
        "[pool] architectures",
    ),
    run_spec("methods-twice", spec(search={"methods": '["magnitude", "Magnitude"]'}), "twice"),
    run_case(
        "storage-under-file",
        "run spec.toml",
        "is a file",
        spec_toml=spec(study={"storage": '"sqlite:///f/s.db"'}),
        f="x",
    ),
    run_case(
        "journal-under-file",
        "run spec.toml --storage f/s.log",
        "is a file",
        spec_toml=spec(),
        f="x",
    ),
    run_spec("storage-sqlite-dir", spec(study={"storage": '"sqlite:///."'}), "directory"),
    run_spec(
        "storage-unreachable",
        spec(study={"storage": '"postgresql+psycopg2://u@127.0.0.1:1/db"'}),
        "cannot open storage",
    ),
    run_spec(
        "sampler-knob-type",
        spec('[search.sampler_params]\nn_startup_trials = "x"\n'),
        "n_startup_trials",
    ),
    run_spec("method-knob-type", spec("[search.method_params.magnitude]\nscope = 5\n"), "scope"),
    run_spec("budget-text", spec(selection={"selector": '"ga"', "budget": '"lots"'}), "budget"),
    run_spec("budget-negative", spec(selection={"selector": '"ga"', "budget": "-1"}), "budget"),
    run_spec("selection-n-jobs", spec(selection={"n_jobs": "0"}), "n_jobs"),
    run_spec("selection-seed-knob", spec(selection={"seed": "-1"}), "seed"),
    run_spec("max-size-float", spec(selection={"max_size": "2.5"}), "max_size"),
    run_spec("voting-weighted-hq", spec(selection={"voting": '"weighted"'}), "weighted"),
    run_spec("metric-list", spec(selection={"metric": '["gd"]'}), "must be a string"),
    run_spec("sparsity-strings", spec(search={"sparsity": '["a", "b"]'}), "sparsity"),
    run_spec("sparsity-scalar", spec(search={"sparsity": "0.5"}), "must be a list"),
    run_spec("seeds-strings", spec(pool={"seeds": '["0", "1"]'}), "[pool] seeds"),
    run_spec("seeds-nested", spec(pool={"seeds": "[[0], [1]]"}), "[pool] seeds"),
    run_spec("method-params-not-table", spec(search={"method_params": "5"}), "must be a table"),
    run_spec(
        "method-params-knob-list", spec("[search.method_params.magnitude]\nscope = []\n"), "scope"
    ),
    run_spec("sampler-params-not-table", spec(search={"sampler_params": '"x"'}), "must be a table"),
    run_spec("max-train-bool", spec(data={"max_train": "true"}), "max_train"),
    run_spec("temperature-zero", spec(search={"temperature": "0.0"}), "temperature"),
    run_spec("distill-negative", spec(search={"distill": "-0.1"}), "distill"),
    run_spec("tolerance-one", spec(search={"accuracy_tolerance": "1.0"}), "accuracy_tolerance"),
    run_spec("callbacks-not-callable", spec(study={"callbacks": '["os:sep"]'}), "os:sep"),
    run_spec("callbacks-no-colon", spec(study={"callbacks": '["os.path"]'}), "os.path"),
    run_spec("date-value", spec(study={"seed": "1979-05-27"}), "[study] seed"),
    Case(
        "device-cuda-absent",
        ("run", "spec.toml"),
        "no CUDA device",
        {"spec.toml": spec(study={"device": '"cuda"'})},
        needs_no_cuda=True,
    ),
    run_spec(
        "method-knob-text-for-number",
        spec('[search.method_params.magnitude]\nanneal = "x"\n'),
        "anneal",
    ),
    run_spec(
        "method-knob-bool-for-number",
        spec("[search.method_params.magnitude]\nmax_layer_sparsity = true\n"),
        "max_layer_sparsity",
    ),
    run_spec(
        "method-knob-float-for-int",
        spec("[search.method_params.magnitude]\nrounds = 2.5\n"),
        "rounds",
    ),
    # ---------------------------------------------------------------- run: flags and paths
    run_case("run-dir-is-file", "run spec.toml --run-dir out", "out", spec_toml=spec(), out="x"),
    run_case(
        "run-dir-foreign",
        "run spec.toml --run-dir out",
        "not an ensprune run directory",
        spec_toml=spec(),
        **{"out/notes.txt": "mine"},
    ),
    run_case(
        "run-dir-under-file",
        "run spec.toml --run-dir out/run",
        "out",
        spec_toml=spec(),
        out="x",
    ),
    run_case("default-run-dir-under-file", "run spec.toml", "runs", spec_toml=spec(), runs="x"),
    run_case(
        "spec-run-dir-is-file",
        "run spec.toml",
        "[study] run_dir",
        spec_toml=spec(study={"run_dir": '"out"'}),
        out="x",
    ),
    run_case("workers-flag-zero", "run spec.toml --workers 0", "workers", spec_toml=spec()),
    run_case("workers-flag-text", "run spec.toml --workers two", "--workers"),
    run_case("threads-flag-negative", "run spec.toml --threads -1", "--threads", spec_toml=spec()),
    run_case("storage-flag-empty", "run spec.toml --storage=", "storage", spec_toml=spec()),
    run_case("storage-flag-bad", "run spec.toml --storage x", "neither", spec_toml=spec()),
    run_case("data-dir-is-file", "run spec.toml --data-dir d", "d", spec_toml=spec(), d="x"),
    # ---------------------------------------------------------------- prune
    run_case("prune-sparsity-one", "prune --sparsity 1", "sparsity"),
    run_case("prune-sparsity-negative", "prune --sparsity -0.1", "sparsity"),
    run_case("prune-sparsity-nan", "prune --sparsity nan", "sparsity"),
    run_case("prune-sparsity-text", "prune --sparsity lots", "--sparsity"),
    run_case("prune-epochs-negative", "prune --epochs -1", "epochs"),
    run_case("prune-finetune-negative", "prune --finetune-epochs -1", "finetune-epochs"),
    run_case("prune-lr-zero", "prune --lr 0", "lr"),
    run_case("prune-lr-nan", "prune --lr nan", "lr"),
    run_case("prune-lr-inf", "prune --lr inf", "lr"),
    run_case("prune-batch-zero", "prune --batch-size 0", "batch"),
    run_case("prune-seed-negative", "prune --seed -1", "--seed"),
    run_case("prune-seed-big", "prune --seed 4294967296", "4294967295"),
    run_case("prune-max-train-zero", "prune --max-train 0", "max-train"),
    run_case("prune-clean-negative", "prune --clean-epochs -1", "clean"),
    run_case("prune-distill-big", "prune --distill 2", "distill"),
    run_case("prune-distill-nan", "prune --distill nan", "distill"),
    run_case("prune-method-unknown", "prune --method snip", "unknown pruning method"),
    run_case("prune-model-unknown", "prune --model vit", "vit"),
    run_case("prune-dataset-unknown", "prune --dataset imagenet", "unknown dataset"),
    run_case("prune-optimizer-unknown", "prune --optimizer adamw2", "unknown optimizer"),
    run_case("prune-augment-unknown", "prune --augment mixup9", "augmentation"),
    run_case("prune-schedule-unknown", "prune --lr-schedule step", "lr schedule"),
    run_case("prune-device", "prune --device gpu", "invalid choice"),
    run_case("prune-param-no-equals", "prune --param scope", "KEY=VALUE"),
    run_case("prune-param-unknown", "prune --param bogus=1", "bogus"),
    run_case("prune-param-value", "prune --param scope=everywhere", "scope"),
    run_case("prune-model-arg-bad", "prune --model-arg width", "KEY=VALUE"),
    run_case("prune-save-dir", "prune --save out", "out", out=DIR),
    run_case("prune-save-under-file", "prune --save f/model.pt", "f", f="x"),
    run_case("prune-checkpoint-missing", "prune --checkpoint nope.pt", "nope.pt"),
    run_case("prune-checkpoint-dir", "prune --checkpoint ck", "ck", ck=DIR),
    run_case("prune-checkpoint-garbage", "prune --checkpoint ck.pt", "ck.pt", ck_pt=GARBAGE),
    run_case("prune-data-dir-file", "prune --data-dir d", "d", d="x"),
    run_case("prune-model-arg-unknown", "prune --model-arg bogus=1", "bogus"),
    run_case("prune-model-import", "prune --model nosuch.mod:f", "nosuch"),
    run_case("prune-param-type", "prune --param scope=5", "scope"),
    run_case("prune-storage-style-save", "prune --save .", "directory"),
    Case("prune-cuda-absent", ("prune", "--device", "cuda"), "no CUDA device", needs_no_cuda=True),
    run_case("prune-model-arg-type", "prune --model resnet20 --model-arg width=wide", "width"),
    run_case("prune-model-arg-range", "prune --model resnet20 --model-arg width=-5", "width"),
    run_case(
        "prune-checkpoint-other-model",
        "prune --checkpoint ck.pt",
        "ck.pt",
        ck_pt=torch_file(_tensor_state),
    ),
    run_case(
        "prune-checkpoint-pickle",
        "prune --checkpoint ck.pt",
        "weights_only",
        ck_pt=torch_file(_Pickled()),
    ),
    run_case(
        "prune-checkpoint-list", "prune --checkpoint ck.pt", "state_dict", ck_pt=torch_file([1, 2])
    ),
    run_case(
        "prune-param-text-for-number", "prune --method dropnet --param fraction=x", "fraction"
    ),
    run_case("prune-param-nan-for-int", "prune --method dropnet --param align=NaN", "align"),
    # ---------------------------------------------------------------- select: the file
    run_case("select-missing", "select nope.npz", "does not exist"),
    run_case("select-dir", "select p.npz", "is a directory", p_npz=DIR),
    run_case("select-npy", "select p.npy", ".npy", p_npy=preds()["proba"]),
    run_case("select-png", "select p.npz", "not an .npz", p_npz=PNG),
    run_case("select-garbage", "select p.npz", "not an .npz", p_npz=GARBAGE),
    run_case("select-empty-file", "select p.npz", "not an .npz", p_npz=b""),
    run_case("select-no-y", "select p.npz", "'y'", p_npz=preds(y=None)),
    run_case("select-nan", "select p.npz", "NaN", p_npz=preds(proba=NAN_PROBA)),
    run_case("select-2d", "select p.npz", "shape", p_npz=preds(proba=np.full((3, 2), 0.5))),
    run_case("select-not-proba", "select p.npz", "softmax", p_npz=preds(proba=np.ones((3, 5, 2)))),
    run_case(
        "select-int-proba", "select p.npz", "floating", p_npz=preds(proba=np.ones((3, 30, 2), int))
    ),
    run_case("select-y-range", "select p.npz", "labels", p_npz=preds(y=np.full(30, 7))),
    run_case("select-y-float", "select p.npz", "integer", p_npz=preds(y=np.full(30, 0.5))),
    run_case("select-y-shape", "select p.npz", "y must have shape", p_npz=preds(y=np.zeros(4))),
    run_case("select-cost-str", "select p.npz", "cost", p_npz=preds(cost=np.array(["a"] * 3))),
    run_case("select-cost-shape", "select p.npz", "cost", p_npz=preds(cost=np.ones(2))),
    run_case("select-cost-nan", "select p.npz", "cost", p_npz=preds(cost=np.array([1, np.nan, 1]))),
    run_case("select-names", "select p.npz", "names", p_npz=preds(names=np.array(["a", "b"]))),
    run_case("select-one-member", "select p.npz", "at least 2", p_npz=preds(members=1)),
    # ---------------------------------------------------------------- select: the flags
    run_case("select-seed-negative", "select p.npz --seed -1", "--seed", p_npz=preds()),
    run_case("select-seed-big", "select p.npz --seed 4294967296", "--seed", p_npz=preds()),
    run_case("select-selector", "select p.npz --selector best", "unknown selector", p_npz=preds()),
    run_case("select-metric", "select p.npz --metric xx", "unknown", p_npz=preds()),
    run_case("select-metric-empty", "select p.npz --metric=,", "metric", p_npz=preds()),
    run_case("select-beta-big", "select p.npz --beta 1.5", "beta", p_npz=preds()),
    run_case("select-beta-nan", "select p.npz --beta nan", "beta", p_npz=preds()),
    run_case("select-max-size-one", "select p.npz --max-size 1", "max_size", p_npz=preds()),
    run_case("select-voting", "select p.npz --voting ranked", "unknown voting", p_npz=preds()),
    run_case("select-n-jobs-zero", "select p.npz --n-jobs 0", "n_jobs", p_npz=preds()),
    run_case("select-budget-text", "select p.npz --budget lots", "budget", p_npz=preds()),
    run_case("select-budget-negative", "select p.npz --budget=-1", "budget", p_npz=preds()),
    run_case(
        "select-budget-no-cost", "select p.npz --selector ga --budget 5", "cost", p_npz=preds()
    ),
    run_case("select-k-zero", "select p.npz --selector topk --k 0", "k", p_npz=preds()),
    run_case(
        "select-population",
        "select p.npz --selector ga --population 0",
        "population",
        p_npz=preds(),
    ),
    run_case(
        "select-generations",
        "select p.npz --selector ga --generations -1",
        "generations",
        p_npz=preds(),
    ),
    run_case(
        "select-w-nan", "select p.npz --selector ga --w-accuracy nan", "--w-accuracy", p_npz=preds()
    ),
    run_case(
        "select-flag-not-apply",
        "select p.npz --selector topk --beta 0.1",
        "does not apply",
        p_npz=preds(),
    ),
    run_case("select-table-dir", "select p.npz --table out", "out", p_npz=preds(), out=DIR),
    run_case("select-table-under-file", "select p.npz --table f/t.csv", "f", p_npz=preds(), f="x"),
    run_case("select-joint-not-menu", "select p.npz --mode joint", "member", p_npz=preds()),
    run_case(
        "select-joint-beta", "select p.npz --mode joint --beta 0.1", "does not apply", p_npz=preds()
    ),
    run_case(
        "select-joint-selector", "select p.npz --mode joint --selector hq", "hq", p_npz=preds()
    ),
    run_case("select-mode", "select p.npz --mode both", "invalid choice", p_npz=preds()),
    run_case("select-max-size-zero", "select p.npz --max-size 0", "max_size", p_npz=preds()),
    run_case("select-negatives", "select p.npz --negatives 0", "negatives", p_npz=preds()),
    run_case("select-draws", "select p.npz --negatives 2 --draws 0", "draws", p_npz=preds()),
    run_case(
        "select-budget-nan",
        "select p.npz --selector ga --budget nan",
        "budget",
        p_npz=preds(cost=np.ones(3)),
    ),
    run_case(
        "select-population-one",
        "select p.npz --selector nsga2 --population 1",
        "population",
        p_npz=preds(),
    ),
    run_case(
        "select-object-proba",
        "select p.npz",
        "cannot read",
        p_npz=preds(proba=np.array([[[None]]], dtype=object)),
    ),
    run_case(
        "select-names-2d", "select p.npz", "names", p_npz=preds(names=np.array([["a", "b"]] * 3))
    ),
    run_case(
        "select-names-dup", "select p.npz", "unique", p_npz=preds(names=np.array(["a", "a", "b"]))
    ),
    run_case(
        "select-joint-budget",
        "select p.npz --mode joint --budget lots",
        "budget",
        p_npz=preds(member=np.array([0, 0, 1]), cost=np.ones(3)),
    ),
    # ---------------------------------------------------------------- report
    run_case("report-missing", "report nope", "nope"),
    run_case("report-file", "report r", "r", r="x"),
    run_case("report-not-run", "report r", "run.json", **{"r/notes.txt": "x"}),
    run_case("report-run-json-garbage", "report r", "run.json", **{"r/run.json": "{oops"}),
    run_case("report-run-json-list", "report r", "run.json", **{"r/run.json": "[]"}),
    run_case("report-out-file", "report r --out f", "--out", f="x", **{"r/run.json": "{}"}),
    run_case("report-run-json-binary", "report r", "run.json", **{"r/run.json": GARBAGE}),
    # an unreadable trials.csv in a run is a partial report (exit 0): tests/report/test_partial.py
    run_case("report-json-quiet", "report r --json --quiet", "not allowed", r=DIR),
    run_case("report-out-under-file", "report r --out f/rep", "f", f="x", r=DIR),
    run_case("report-dir-empty", "report r", "run.json", r=DIR),
    # ---------------------------------------------------------------- dashboard
    run_case("dashboard-nothing", "dashboard", "exactly one"),
    run_case("dashboard-both", "dashboard r --storage x.log", "exactly one", r=DIR),
    run_case("dashboard-port-big", "dashboard --storage x.log --port 70000", "port"),
    run_case("dashboard-port-text", "dashboard --storage x.log --port web", "port"),
    run_case("dashboard-missing", "dashboard nope", "nope"),
    run_case("dashboard-not-run", "dashboard r", "run.json", r=DIR),
    run_case("dashboard-storage-empty", "dashboard --storage=", "empty"),
    run_case("dashboard-sqlite-missing", "dashboard --storage sqlite:///nope.db", "nope.db"),
    run_case("dashboard-garbage-db", "dashboard --storage sqlite:///g.db", "g.db", g_db=GARBAGE),
    run_case("dashboard-garbage-journal", "dashboard --storage g.log", "g.log", g_log=GARBAGE),
    run_case("dashboard-png-run-dir", "dashboard p.png", "p.png", p_png=PNG),
    run_case(
        "dashboard-run-storage-missing",
        "dashboard r",
        "nope.db",
        **{"r/run.json": '{"storage": "sqlite:///nope.db"}'},
    ),
    run_case(
        "dashboard-run-storage-int", "dashboard r", "storage", **{"r/run.json": '{"storage": 5}'}
    ),
    run_case("dashboard-run-json-garbage", "dashboard r", "run.json", **{"r/run.json": GARBAGE}),
    run_case("dashboard-storage-dir", "dashboard --storage d.log", "d.log", d_log=DIR),
    run_case("dashboard-port-negative", "dashboard --storage x.log --port=-1", "port"),
    run_case(
        "dashboard-host-unbindable",
        "dashboard --storage s.log --host 10.255.255.1 --port 0",
        "cannot listen",
        s_log=journal_storage,
    ),
]


def _wrong_type_cases() -> list[Case]:
    """Every spec key given a value of the wrong type; the message must name the key."""
    import dataclasses

    from ensprune.study.spec import DataSpec, PoolSpec, SearchSpec, SelectionSpec

    study = {"name": "5", "seed": '"0"', "storage": "[1]", "run_dir": "{a = 1}", "device": "1"}
    study.update(workers="1.5", callbacks="{a = 1}")
    cases = [run_spec(f"type-study-{k}", spec(study={k: v}), k) for k, v in study.items()]
    for section, cls in (
        ("data", DataSpec),
        ("pool", PoolSpec),
        ("search", SearchSpec),
        ("selection", SelectionSpec),
    ):
        for f in dataclasses.fields(cls):
            default: Any = f.default
            if f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            if isinstance(default, str):
                value = "1"
            elif isinstance(default, dict):
                value = "[1]"
            elif isinstance(default, tuple):
                value = '{a = "x"}'
            else:  # numbers and optional numbers or names
                value = "[true]"
            change: dict[str, dict[str, str | None] | None] = {section: {f.name: value}}
            cases.append(run_spec(f"type-{section}-{f.name}", spec(**change), f.name))
    return cases


CASES += _wrong_type_cases()


def _write(root: Path, files: dict[str, Any]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is DIR:
            path.mkdir()
        elif isinstance(content, str):
            path.write_text(content)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif callable(content):  # writes the file itself (e.g. torch.save)
            content(path)
        elif isinstance(content, np.ndarray):
            with path.open("wb") as fh:  # exactly this name, no .npy added
                np.save(fh, content)
        else:
            with path.open("wb") as fh:
                np.savez(fh, **content)


def _no_training(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("training started: this bad input must be refused before training")


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 60


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_and_exit_2(
    case: Case,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import ensprune.study.pipeline
    import ensprune.study.single

    if case.needs_no_cuda:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a CUDA device")

    monkeypatch.setattr(ensprune.study.pipeline, "train_model", _no_training)
    monkeypatch.setattr(ensprune.study.single, "train_model", _no_training)
    monkeypatch.setenv("ENSPRUNE_DATA_DIR", str(tmp_path / "no-data"))  # never download here
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, case.files)
    capsys.readouterr()  # only what the command writes counts
    code: int | str | None
    try:
        code = main([*case.argv, "--no-download"] if _takes_no_download(case) else list(case.argv))
    except SystemExit as exc:  # argparse
        code = exc.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in "\n".join(err)
    assert len(err) == 1, err
    assert case.expect.lower() in err[0].lower(), err[0]


def _takes_no_download(case: Case) -> bool:
    # run and prune download missing datasets; a bad input must fail without touching the network
    return bool(case.argv) and case.argv[0] in ("run", "prune") and "--help" not in case.argv


def _load(text: str, tmp_path: Path) -> Any:
    from ensprune.study.spec import StudySpec

    path = tmp_path / "spec.toml"
    path.write_text(text)
    return StudySpec.from_toml(path)


def test_the_inputs_the_cases_break_are_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each case changes one thing of a valid input, so the refusal is that thing's doing."""
    from ensprune.study.spec import StudySpec

    valid = _load(spec(), tmp_path)
    assert valid.name == "bad" and len(valid.members) == 2
    assert _load(spec(study={"device": '"CPU"'}), tmp_path).device == "cpu"  # names in any case
    for example in sorted(Path(__file__).parents[2].joinpath("studies").glob("*.toml")):
        StudySpec.from_toml(example)  # the shipped specs pass every new check
    monkeypatch.chdir(tmp_path)
    _write(
        tmp_path, {"p.npz": preds(), "m.npz": preds(member=np.array([0, 0, 1]), cost=np.ones(3))}
    )
    assert main(["select", "p.npz", "--quiet", "--seed", str(2**32 - 1), "--table", "t.csv"]) == 0
    assert (tmp_path / "t.csv").is_file()
    assert main(["select", "m.npz", "--mode", "JOINT", "--budget", "2", "--quiet"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_the_largest_study_seed_fits_every_member_study(tmp_path: Path) -> None:
    """[study] seed's bound is where the last member's derived sampler seed reaches 2**32 - 1."""
    from ensprune.errors import SpecError
    from ensprune.study.build import MAX_SEED, make_study_sampler, member_seed
    from ensprune.study.pipeline import _member_seed

    last = len(_load(spec(), tmp_path).members) - 1
    top = (MAX_SEED - last) // (member_seed(1, 0) - member_seed(0, 0))
    largest = _load(spec(study={"seed": str(top)}), tmp_path)
    assert _member_seed(largest, last) == member_seed(top, last) <= MAX_SEED
    make_study_sampler(largest.search, member_seed(top, last))  # Optuna takes it
    with pytest.raises(SpecError, match=r"\[study\] seed"):
        _load(spec(study={"seed": str(top + 1)}), tmp_path)
    with pytest.raises(SpecError, match=r"2\*\*32"):  # what the bound protects against
        make_study_sampler(largest.search, member_seed(top + 1, last))
