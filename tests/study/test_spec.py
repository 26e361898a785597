"""StudySpec: loading, defaults, and one clear error per malformed or contradictory spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensprune.errors import SpecError, UnknownNameError
from ensprune.study import StudySpec

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def test_quickstart_spec_loads_and_meets_the_brief() -> None:
    spec = StudySpec.from_toml(REPO / "studies" / "quickstart.toml")
    assert spec.data.dataset == "digits"
    assert len(spec.members) >= 6
    assert len(spec.pool.architectures) >= 2
    assert len(spec.search.methods) >= 2
    assert spec.members[0] == ("model_a-s0", "model_a", 0)


def test_defaults_fill_missing_sections(tmp_path: Path) -> None:
    spec = StudySpec.from_toml(write(tmp_path, '[study]\nname = "x"\n'))
    assert spec.name == "x"
    assert spec.search.sparsity == (0.3, 0.95)
    assert spec.selection.selector == "hq"


def test_fingerprint_ignores_trial_count(tmp_path: Path) -> None:
    a = StudySpec.from_dict({"study": {"name": "a"}, "search": {"trials": 3}})
    b = StudySpec.from_dict({"study": {"name": "a"}, "search": {"trials": 9}})
    c = StudySpec.from_dict({"study": {"name": "a"}, "pool": {"epochs": 9}})
    assert a.fingerprint("seed", "data", "pool") == b.fingerprint("seed", "data", "pool")
    assert a.fingerprint("seed", "data", "pool") != c.fingerprint("seed", "data", "pool")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[search]\nsparsity = [0.5, 1.0]\n", "sparsity range"),
        ("[search]\nsparsity = [0.9, 0.5]\n", "sparsity range"),
        ("[search]\nsparsity = [-0.1, 0.5]\n", "sparsity range"),
        ("[search]\ntrials = 0\n", "trials must be an integer >= 1"),
        ("[search]\nmethods = []\n", "at least one pruning method"),
        ('[search]\nmethods = "magnitude"\n', "methods must be a list"),
        ("[pool]\nseeds = [1, 1]\n", "seeds must be distinct"),
        ("[pool]\nepochs = 2.5\n", "epochs must be an integer"),
        ('[pool]\narchitectures = ["model_a"]\nseeds = [0]\n', "at least 2 members"),
        ("[pool]\nwidth = 3\n", "unknown key(s) ['width'] in [pool]"),
        ("[selection]\nbeta = 1.5\n", "beta (prune ratio) must lie in [0, 1)"),
        ("[selection]\nmax_size = 50\n", "exceeds the pool"),
        ("[data]\nval_fraction = 0.95\n", "val_fraction"),
        ("[extra]\na = 1\n", "unknown section(s) ['extra']"),
        ('[study]\nname = "a b"\n', "name must be"),
        ("[search]\ndistill = 1.5\n", "distill must be a number in [0, 1]"),
        ('[search]\ndistill = "yes"\n', "distill must be a number"),
        ("[search]\ndistill = 0.5\ntemperature = 0\n", "temperature must be a positive number"),
        ("[search]\nclean_epochs = -1\n", "clean_epochs must be an integer >= 0"),
        ('[search.method_params.lamp]\nscope = "layer"\n', "not in [search] methods"),
        ('[search]\ninclude = "fc"\n', "[search] include must be a list"),
        ('[search]\nexclude = [""]\n', "[search] exclude must list layer name patterns"),
        ("[search]\ninclude = [3]\n", "[search] include must list layer name patterns"),
        ("not toml at all [", "not valid TOML"),
    ],
)
def test_malformed_specs_raise_one_clear_error(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(SpecError, match=None) as info:
        StudySpec.from_toml(write(tmp_path, text))
    assert fragment in str(info.value)
    assert "spec.toml" in str(info.value)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ('[data]\ndataset = "imagenet"\n', "digits"),
        ('[pool]\narchitectures = ["resnet9000", "model_a"]\n', "lenet300"),
        ('[search]\nmethods = ["magic"]\n', "magnitude"),
        ('[selection]\nselector = "oracle"\n', "hq"),
        ('[selection]\nmetric = "vibes"\n', "gd"),
        ('[pool]\naugment = "mixup"\n', "shift"),
        ('[pool]\noptimizer = "rmsprop"\n', "adamw"),
        ('[search]\nsampler = "cmaes"\n', "nsga2, random, tpe"),
        ('[search]\nlr_schedule = "step"\n', "constant, cosine"),
        ('[selection]\nvoting = "loudest"\n', "plurality"),
    ],
)
def test_unknown_names_list_the_valid_ones(tmp_path: Path, text: str, valid: str) -> None:
    with pytest.raises(UnknownNameError) as info:
        StudySpec.from_toml(write(tmp_path, text))
    assert valid in str(info.value)


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        StudySpec.from_toml(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "where", "knob", "valid"),
    [
        ('[search.method_params.magnitude]\nscop = "layer"\n', "[search.method_params.magnitude]",
         "'scop' is not a knob of pruning method 'magnitude'", "scope, max_layer_sparsity"),
        ("[selection]\nbetta = 0.2\n", "[selection]", "'betta' is not a knob of selector 'hq'",
         "beta"),
        ("[selection.options]\npopulation = 9\n", "[selection]",
         "'population' is not a knob of selector 'hq'", "n_jobs"),
        ('[search]\nsampler = "nsga2"\n[search.sampler_params]\npopsize = 4\n',
         "[search.sampler_params]", "'popsize' is not a knob of sampler 'nsga2'",
         "population_size"),
    ],
)  # fmt: skip
def test_a_misspelled_knob_fails_at_load_naming_the_valid_ones(
    tmp_path: Path, text: str, where: str, knob: str, valid: str
) -> None:
    with pytest.raises(SpecError) as info:
        StudySpec.from_toml(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    assert where in message and knob in message and valid in message


def test_every_registered_method_knob_is_checked(tmp_path: Path) -> None:
    # generic: the knobs come from each method's own signature, so new methods are covered
    from ensprune.pruning import METHODS

    for name in METHODS.names():
        text = f'[search]\nmethods = ["{name}"]\n[search.method_params.{name}]\nnot_a_knob = 1\n'
        # methods whose __init__ passes **kwargs on to ScoreMethod (obd, obs, kfac, ekfac) list
        # their own knobs and the inherited ones alike
        with pytest.raises(SpecError, match="not_a_knob") as info:
            StudySpec.from_toml(write(tmp_path, text))
        valid = METHODS.knobs(name)
        assert valid is not None, f"{name}'s knobs cannot be read from its signature"
        assert f"'not_a_knob' is not a knob of pruning method '{name}'" in str(info.value)
        assert f"its knobs: {', '.join(valid)}" in str(info.value)


def test_knobs_passed_on_by_kwargs_are_followed_up_the_class_hierarchy() -> None:
    from ensprune.pruning import METHODS

    obd = METHODS.knobs("obd")
    assert obd is not None and obd[:3] == ("fisher", "samples", "probes")
    assert "scope" in obd and "schedule" in obd  # ScoreMethod's, reached through **kwargs
    assert METHODS.knobs("kfac") == METHODS.knobs("ekfac")


def test_names_in_any_case_load_as_the_registered_spelling(tmp_path: Path) -> None:
    text = """
[data]
dataset = "DIGITS"
[pool]
architectures = ["Model_A", "LENET300"]
optimizer = "AdamW"
augment = "Shift"
[search]
methods = ["MAGNITUDE", "Random"]
sampler = "TPE"
lr_schedule = "Cosine"
[search.method_params.Magnitude]
scope = "layer"
[selection]
selector = "HQ"
metric = "GD, KW"
voting = "Soft"
"""
    spec = StudySpec.from_toml(write(tmp_path, text))
    assert spec.data.dataset == "digits"
    assert spec.pool.architectures == ("model_a", "lenet300")
    assert (spec.pool.optimizer, spec.pool.augment) == ("adamw", "shift")
    assert spec.search.methods == ("magnitude", "random")
    assert spec.search.method_params == {"magnitude": {"scope": "layer"}}
    assert (spec.search.sampler, spec.search.lr_schedule) == ("tpe", "cosine")
    sel = spec.selection
    assert (sel.selector, sel.metric, sel.voting) == ("hq", "gd,kw", "soft")
    lower = StudySpec.from_toml(write(tmp_path, text.lower().replace("model_a", "model_a")))
    assert spec.fingerprint() == lower.fingerprint()


FACTORY_MODULE = """
from torch import nn


def make_net(input_shape, num_classes, width=16):
    size = 1
    for d in input_shape:
        size *= d
    return nn.Sequential(nn.Flatten(), nn.Linear(size, width), nn.ReLU(), nn.Linear(width, num_classes))
"""


def test_pool_architectures_take_factory_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "user_nets_spec.py").write_text(FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    text = (
        '[pool]\narchitectures = ["user_nets_spec:make_net", "LENET300"]\nseeds = [0, 1]\n'
        "[selection]\nmax_size = 3\n"
    )
    spec = StudySpec.from_toml(write(tmp_path, text))
    assert spec.pool.architectures == ("user_nets_spec:make_net", "lenet300")
    assert [m for m, _, _ in spec.members] == [
        "make_net-s0",
        "make_net-s1",
        "lenet300-s0",
        "lenet300-s1",
    ]


@pytest.mark.parametrize(
    ("architectures", "expected"),
    [
        ('["no_such_module_xyz:make_net"]', "cannot import module 'no_such_module_xyz'"),
        ('["user_nets_bad:missing"]', "has no attribute 'missing'"),
        ('["user_nets_bad:make_net", "other.user_nets_bad:make_net"]', "the same name (make_net)"),
        ("[3]", "unknown model 3"),
    ],
)
def test_a_bad_factory_is_refused_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, architectures: str, expected: str
) -> None:
    (tmp_path / "user_nets_bad.py").write_text(FACTORY_MODULE)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "user_nets_bad.py").write_text(FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SpecError) as info:
        StudySpec.from_toml(write(tmp_path, f"[pool]\narchitectures = {architectures}\n"))
    assert expected in str(info.value) and "\n" not in str(info.value)
