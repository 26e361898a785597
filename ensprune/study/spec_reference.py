"""The spec reference, generated from the spec's own dataclasses: every section, key, type, default.

``docs/spec.md`` is :func:`render_reference`'s output and ``ensprune spec --example`` prints
:func:`render_example` (a complete, annotated spec that loads as it is). Types and defaults come
from the dataclasses in :mod:`ensprune.study.spec`; what each key means, and which values it
allows, from :data:`KEY_DOCS` below, and the registered names from the ``ensprune list``
catalog. A test fails when a spec key has no entry here, or when ``docs/spec.md`` is stale
(regenerate it with ``ensprune spec --reference > docs/spec.md``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from ensprune.study.spec import DataSpec, PoolSpec, SearchSpec, SelectionSpec, StudySpec


@dataclass(frozen=True)
class KeyDoc:
    """What one spec key means; ``names`` is the ``ensprune list`` kind its values come from."""

    meaning: str
    allowed: str = ""
    names: str = ""


# The [study] section holds StudySpec's own scalar fields; the others are its nested dataclasses.
SECTIONS: dict[str, type] = {
    "study": StudySpec,
    "data": DataSpec,
    "pool": PoolSpec,
    "search": SearchSpec,
    "selection": SelectionSpec,
}

KEY_DOCS: dict[tuple[str, str], KeyDoc] = {
    ("study", "name"): KeyDoc(
        "the study's name: the run directory defaults to runs/NAME, member studies are NAME.MEMBER"
    ),
    ("study", "seed"): KeyDoc(
        "seeds the data split, every member's initialisation and every search",
        ">= 0; the top depends on the pool size (each member's study seed, seed x 10007 + index, must stay below 2**32)",
    ),
    ("study", "storage"): KeyDoc(
        "Optuna storage URL; default: SQLite inside the run directory",
        "sqlite:///PATH.db, postgresql+psycopg2://USER@HOST/DB, or a PATH.log journal file",
    ),
    ("study", "run_dir"): KeyDoc("where results go; default runs/NAME (overridden by --run-dir)"),
    ("study", "device"): KeyDoc("torch device for training and evaluation", "cpu, cuda, cuda:N"),
    ("study", "workers"): KeyDoc(
        "member studies searched at once, in worker processes (overridden by --workers)", ">= 1"
    ),
    ("study", "callbacks"): KeyDoc(
        "Optuna callbacks run after every trial of every member study, as factories "
        "'package.module:function' returning a callback (e.g. a tracker)"
    ),
    ("study", "scheduler"): KeyDoc(
        "a dask scheduler address: member studies run on that cluster (overridden by --scheduler)",
        "tcp://HOST:PORT",
    ),
    ("data", "dataset"): KeyDoc("the dataset", names="datasets"),
    ("data", "val_fraction"): KeyDoc(
        "share of the training data held out for validation (early stopping, the operating "
        "points and the selection)",
        "(0, 0.9)",
    ),
    ("data", "test_fraction"): KeyDoc(
        "share held out for testing, for datasets without a test split (digits, synthetic)",
        "(0, 0.9)",
    ),
    ("data", "max_train"): KeyDoc(
        "use at most this many training samples (seeded subset)", ">= 20"
    ),
    ("data", "max_test"): KeyDoc("use at most this many test samples (seeded subset)", ">= 20"),
    ("pool", "architectures"): KeyDoc(
        "the members' networks: zoo names or your factories 'package.module:function'; every "
        "architecture is trained with every seed",
        names="models",
    ),
    ("pool", "seeds"): KeyDoc("one member per architecture and seed", "distinct, 0 to 2**32 - 1"),
    ("pool", "epochs"): KeyDoc(
        "most training epochs per member (early stopping on val loss)", ">= 1"
    ),
    ("pool", "batch_size"): KeyDoc("training batch size", ">= 1"),
    ("pool", "lr"): KeyDoc("learning rate of the pool's training", "> 0, < 10"),
    ("pool", "weight_decay"): KeyDoc("L2 weight decay of the pool's training", "finite, >= 0"),
    ("pool", "optimizer"): KeyDoc("the optimizer of training and fine-tuning", names="optimizers"),
    ("pool", "patience"): KeyDoc("early-stopping patience in epochs", ">= 1"),
    ("pool", "augment"): KeyDoc(
        "training-time augmentation of image batches (pool training and every fine-tuning)",
        names="augmentations",
    ),
    ("pool", "bag"): KeyDoc(
        "bagging: each member trains and is fine-tuned on its own random bag of this many "
        "training images (seeded by the study seed and the member's name); unset: all of them",
        ">= 20, at most the training images",
    ),
    ("search", "methods"): KeyDoc(
        "the pruning methods each member's study chooses among", names="methods"
    ),
    ("search", "sparsity"): KeyDoc(
        "[low, high] range of the searched target sparsity", "0 <= low <= high < 1"
    ),
    ("search", "trials"): KeyDoc("trials per member study", ">= 1"),
    ("search", "finetune_epochs"): KeyDoc("fine-tuning epochs of every trial", ">= 0"),
    ("search", "finetune_lr"): KeyDoc("learning rate of every trial's fine-tuning", "> 0, < 10"),
    ("search", "sampler"): KeyDoc("the Optuna sampler of the member studies", names="samplers"),
    ("search", "sampler_params"): KeyDoc(
        "the sampler's knobs, as a table [search.sampler_params] (checked at load)"
    ),
    ("search", "accuracy_tolerance"): KeyDoc(
        "the operating point is the sparsest Pareto trial whose validation accuracy is at least "
        "the dense member's minus this",
        "[0, 1]",
    ),
    ("search", "distill"): KeyDoc(
        "weight α of distillation from the dense member in every fine-tuning (0: labels only)",
        "[0, 1]",
    ),
    ("search", "temperature"): KeyDoc("distillation temperature T", "> 0"),
    ("search", "lr_schedule"): KeyDoc(
        "learning-rate schedule of every fine-tuning", names="lr_schedules"
    ),
    ("search", "clean_epochs"): KeyDoc(
        "the last fine-tuning epochs run without [pool] augment", ">= 0"
    ),
    ("search", "method_params"): KeyDoc(
        "fixed knobs per method, as tables [search.method_params.METHOD] (checked at load; "
        "a knob fixed here is not searched)"
    ),
    ("search", "include"): KeyDoc(
        "prune only layers whose module or weight name matches one of these patterns "
        "(fnmatch-style, case-sensitive: 'layer3.*', 'fc'); empty: every Linear/Conv layer",
        "patterns that each match a prunable layer of every architecture (checked before training)",
    ),
    ("search", "exclude"): KeyDoc(
        "never prune layers whose name matches one of these patterns ('conv1', '*.shortcut.*'); "
        "structured methods keep their channels whole",
        "patterns that each match a prunable layer of every architecture",
    ),
    ("search", "pruner"): KeyDoc(
        "an Optuna pruner that stops trials whose validation accuracy falls behind during "
        "fine-tuning; pruned trials never become operating points",
        names="pruners",
    ),
    ("search", "pruner_params"): KeyDoc(
        "the pruner's knobs, as a table [search.pruner_params] (checked at load)"
    ),
    ("search", "min_accuracy"): KeyDoc(
        "constraint: trials below this validation accuracy are kept, marked infeasible and "
        "never chosen",
        "[0, 1]",
    ),
    ("search", "min_sparsity"): KeyDoc(
        "constraint: trials below this sparsity are kept, marked infeasible and never chosen",
        "[0, 1)",
    ),
    ("selection", "selector"): KeyDoc("the sub-ensemble selector", names="selectors"),
    ("selection", "metric"): KeyDoc(
        "focal-diversity metric(s); several comma-separated give one consensus score",
        names="metrics",
    ),
    ("selection", "max_size"): KeyDoc("largest team size", ">= 1, at most the pool's size"),
    ("selection", "voting"): KeyDoc("how a team combines its members' votes", names="voting"),
    ("selection", "mode"): KeyDoc(
        "two_stage: each member's operating point alone ([search] accuracy_tolerance), then "
        "the selector picks a team; joint: every member out or at one point of its menu, "
        "chosen together under budget (options: search = ga | nsga2 | exhaustive, budget as a "
        "number, 'Nx_member' or 'N%_pool', the w_* weights)",
        "two_stage, joint",
    ),
    ("selection", "cost"): KeyDoc(
        "what an operating point costs in the menus and the joint budget: effective MACs "
        "(non-zero weights), MACs of the compacted network (dead units removed: what it "
        "executes), non-zero parameters, or latency of the compacted network measured per "
        "point (ms per batch of 256); menu.csv and selection.json name the cost used",
        "macs, compacted_macs, params, latency",
    ),
    ("selection", "options"): KeyDoc(
        "the selector's own knobs (HQ's beta, n_jobs, budget, ...), written directly under "
        "[selection] (or under [selection.options]); checked at load"
    ),
}

_NESTED = {f.name for f in dataclasses.fields(StudySpec) if f.name in SECTIONS}


def spec_keys() -> list[tuple[str, dataclasses.Field[Any]]]:
    """(section, field) of every key a spec may hold, in the dataclasses' order."""
    keys: list[tuple[str, dataclasses.Field[Any]]] = []
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if section == "study" and f.name in _NESTED:
                continue
            keys.append((section, f))
    return keys


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _toml(value: Any) -> str:
    """``value`` written as TOML (tuples as arrays); None has no TOML form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


_TOML_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "tuple[str, ...]": "array of strings",
    "tuple[int, ...]": "array of integers",
    "tuple[float, float]": "[number, number]",
    "dict[str, Any]": "table",
    "dict[str, dict[str, Any]]": "table of tables",
}


def toml_type(annotation: str) -> str:
    """A field's annotation as a TOML user reads it (``"int | None"`` -> ``"integer, optional"``)."""
    parts = [p.strip() for p in annotation.split("|")]
    optional = "None" in parts
    shown = " or ".join(_TOML_TYPES.get(p, p) for p in parts if p != "None")
    return f"{shown}, optional" if optional else shown


def _names(kind: str) -> list[str]:
    from ensprune._catalog import CATALOG

    return [name for name, _ in CATALOG[kind]]


def _allowed(doc: KeyDoc) -> str:
    if doc.names:
        return f"{', '.join(_names(doc.names))} (`ensprune list {doc.names}`; any case)"
    return doc.allowed


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def _doc(section: str, name: str) -> KeyDoc:
    try:
        return KEY_DOCS[(section, name)]
    except KeyError:
        raise KeyError(
            f"spec key [{section}] {name} has no entry in ensprune.study.spec_reference.KEY_DOCS"
        ) from None


def render_reference() -> str:
    """``docs/spec.md``: every section and key with its type, default, allowed values, meaning."""
    lines = [
        "# Spec reference",
        "",
        "<!-- generated by `ensprune spec --reference > docs/spec.md`; do not edit by hand -->",
        "",
        "A study spec is a TOML file with the sections below; every key is optional (its default "
        "is used). Unknown sections and keys are refused when the spec is loaded, as are wrong "
        "types, out-of-range values, unknown names and knobs, all before any training, with one "
        "line naming the problem and the fix. Names may be written in any case. "
        "`ensprune spec --example` prints a complete annotated spec.",
        "",
    ]
    current = ""
    for section, f in spec_keys():
        if section != current:
            current = section
            lines += [
                f"## [{section}]",
                "",
                "| key | type | default | allowed | meaning |",
                "|---|---|---|---|---|",
            ]
        doc = _doc(section, f.name)
        default = _default(f)
        shown = "(none)" if default is None else f"`{_toml(default)}`"
        if isinstance(default, dict):
            shown = "(empty table)"
        kind = _cell(toml_type(str(f.type)))
        lines.append(
            f"| `{f.name}` | `{kind}` | {shown} | {_cell(_allowed(doc))} | {doc.meaning} |"
        )
    # a blank line before every section but the first
    for index in reversed([i for i, line in enumerate(lines) if line.startswith("## [")][1:]):
        lines.insert(index, "")
    return "\n".join(lines) + "\n"


def render_example() -> str:
    """A complete spec with every key at its default and a comment saying what it is."""
    out = [
        "# A complete ensprune study spec: every key at its default (`ensprune spec --example`).",
        "# Keys may be left out; see docs/spec.md for the allowed values.",
    ]
    current = ""
    for section, f in spec_keys():
        if section != current:
            current = section
            out += ["", f"[{section}]"]
        doc = _doc(section, f.name)
        default = _default(f)
        if isinstance(default, dict):
            continue  # written as sub-tables below
        line = f"{f.name} = {_toml(default)}"
        if default is None:
            line = f"# {f.name} = ...  (default: none)"
        where = f" (`ensprune list {doc.names}`)" if doc.names else ""
        out.append(f"{line:<44}# {doc.meaning}{where}")
    out += ["", "# Tables (optional), e.g. a knob of the sampler, a method, the selector:"]
    examples = {
        ("search", "sampler_params"): "n_startup_trials = 5",
        ("search", "pruner_params"): "n_warmup_steps = 1",
        ("search", "method_params"): 'scope = "layer"',
        ("selection", "options"): "beta = 0.1",
    }
    for section, f in spec_keys():
        if isinstance(_default(f), dict):
            table = f"{section}.{f.name}" + (".magnitude" if f.name == "method_params" else "")
            note = "   (or directly under [selection])" if f.name == "options" else ""
            out += [f"# [{table}]{note}", f"# {examples.get((section, f.name), 'knob = ...')}"]
    return "\n".join(out) + "\n"
