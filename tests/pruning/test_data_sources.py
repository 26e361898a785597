"""Data in any form: arrays, a torch Dataset or a DataLoader give the same networks (same seed)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from ensprune.data.batching import as_batch_source, seeded_loader
from ensprune.errors import DataError
from ensprune.models import TrainConfig, evaluate, predict_proba, train_model
from ensprune.pruning import METHODS, PruningContext, make_method

CONFIG = TrainConfig(epochs=2, batch_size=64, lr=3e-3, patience=3, seed=5)


def _tensors(digits: dict[str, np.ndarray], split: str) -> TensorDataset:
    return TensorDataset(
        torch.as_tensor(digits[f"x_{split}"]), torch.as_tensor(digits[f"y_{split}"])
    )


def _forms(digits: dict[str, np.ndarray]) -> dict[str, tuple]:
    """(x_train, y_train, x_val, y_val) as arrays, as Datasets and as DataLoaders."""
    train, val = _tensors(digits, "train"), _tensors(digits, "val")
    return {
        "arrays": (digits["x_train"], digits["y_train"], digits["x_val"], digits["y_val"]),
        "dataset": (train, None, val, None),
        "loader": (
            seeded_loader(train, batch_size=CONFIG.batch_size),
            None,
            DataLoader(val, batch_size=100),
            None,
        ),
    }


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_training_on_a_dataset_or_loader_equals_training_on_arrays(tiny_conv, digits) -> None:
    nets, histories = {}, {}
    for form, data in _forms(digits).items():
        nets[form] = tiny_conv(0)
        histories[form] = train_model(nets[form], *data, CONFIG, progress=False)
    for form in ("dataset", "loader"):
        _assert_same_weights(nets["arrays"], nets[form])
        assert histories[form].val_loss == pytest.approx(histories["arrays"].val_loss, abs=1e-6)
    # evaluation and predictions read every form alike
    net = nets["arrays"]
    train, val = _tensors(digits, "train"), _tensors(digits, "val")
    expected = evaluate(net, digits["x_val"], digits["y_val"])
    assert evaluate(net, val) == pytest.approx(expected, abs=1e-6)
    assert evaluate(net, DataLoader(val, batch_size=7)) == pytest.approx(expected, abs=1e-6)
    assert np.allclose(predict_proba(net, train), predict_proba(net, digits["x_train"]))


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_gives_the_same_result_with_a_loader(name: str, trained_conv, digits) -> None:
    """A method run on a DataLoader (and on a Dataset) equals the same run on arrays."""
    net, init = trained_conv
    results = {}
    for form, data in _forms(digits).items():
        context = PruningContext(
            *data, finetune=CONFIG, seed=CONFIG.seed, initial_state=init, early_state=init
        )
        results[form] = make_method(name).prune(net, 0.5, context)
    for form in ("dataset", "loader"):
        _assert_same_weights(results["arrays"].model, results[form].model)
        assert results[form].masks.keys() == results["arrays"].masks.keys()
        for key, mask in results["arrays"].masks.items():
            assert torch.equal(mask, results[form].masks[key]), key


class _Stream(IterableDataset):
    """Samples that can only be streamed (no len, no indexing)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for xi, yi in zip(self.x, self.y, strict=True):
            yield torch.as_tensor(xi), torch.as_tensor(yi)


def test_a_stream_trains_and_subsets_to_its_head(tiny_conv, digits) -> None:
    loader = DataLoader(_Stream(digits["x_train"], digits["y_train"]), batch_size=50)
    net = tiny_conv(0)
    history = train_model(
        net, loader, None, digits["x_val"], digits["y_val"], CONFIG, progress=False
    )
    assert history.epochs_run == 2 and np.isfinite(history.val_loss).all()
    head = as_batch_source(loader).subset(120, seed=0)
    batches = list(head.inputs(50))
    assert sum(len(b) for b in batches) == 120
    assert torch.equal(torch.cat(batches), torch.as_tensor(digits["x_train"][:120]))


def test_subsets_pick_the_same_samples_from_every_form(digits) -> None:
    arrays = as_batch_source(digits["x_train"], digits["y_train"]).subset(50, seed=3)
    dataset = as_batch_source(_tensors(digits, "train")).subset(50, seed=3)
    loader = as_batch_source(DataLoader(_tensors(digits, "train"), batch_size=9)).subset(50, 3)
    expected = torch.cat(list(arrays.inputs(16)))
    for other in (dataset, loader):
        assert torch.equal(torch.cat(list(other.inputs(16))), expected)


@pytest.mark.parametrize(
    ("x", "y", "fragment"),
    [
        (np.zeros((4, 1, 8, 8), np.float32), None, "need their labels"),
        (np.zeros((4, 1, 8, 8), np.float32), np.zeros(3), "4 inputs but 3 labels"),
        (TensorDataset(torch.zeros(4, 1)), np.zeros(4), "labels come with the samples"),
        ([[0.0, 1.0]], [0], "must be an array, a torch Dataset or a DataLoader"),
    ],
)
def test_bad_data_is_one_clear_error(x, y, fragment: str, digits) -> None:
    with pytest.raises(DataError, match=fragment):
        PruningContext(x, y, digits["x_val"], digits["y_val"])
