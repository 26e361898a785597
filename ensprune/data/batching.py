"""Training, calibration and validation data as batches: arrays, a torch Dataset or a DataLoader.

Everything that feeds a network (the training loop, evaluation, a method's calibration
statistics) goes through :func:`as_batch_source`, so data that does not fit in memory can be used
wherever arrays can:

- **arrays** (numpy or torch): inputs ``x`` and integer labels ``y``; the fast path.
- **a torch ``Dataset``** (map-style) of ``(input, label)`` pairs: read item by item in exactly
  the order the arrays would be (the same seeded permutation each epoch), so the same seed gives
  the same run; items are collated with ``default_collate``.
- **a ``DataLoader``** yielding ``(inputs, labels)`` batches: used as it is (its batch size,
  sampler, workers and collate function win over ``TrainConfig.batch_size``). A loader made by
  :func:`seeded_loader` shuffles with the run's seed like the arrays would, so it too reproduces
  an array run.

Labels are ``None`` when ``x`` is a Dataset or a DataLoader (they come with the samples).
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler, Subset, default_collate
from torch.utils.data import Dataset as TorchDataset

from ensprune.errors import DataError

Batch = tuple[torch.Tensor, torch.Tensor | None]


def subset_indices(n: int, samples: int, seed: int) -> np.ndarray:
    """The sorted, seeded choice of ``samples`` of ``n`` indices every source subsets by."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=samples, replace=False))


def _split_item(batch: Any) -> Batch:
    """``(inputs, labels, ...)`` or bare inputs -> float32 inputs and int64 labels (or None)."""
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise DataError("a data batch is empty; a Dataset item must be (input, label)")
        x = batch[0]
        y = batch[1] if len(batch) > 1 else None
    else:
        x, y = batch, None
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = None if y is None else torch.as_tensor(y, dtype=torch.long)
    return xt, yt


class BatchSource(ABC):
    """Samples that can be walked in batches: shuffled for training, in order for evaluation."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of samples."""

    @abstractmethod
    def steps(self, batch_size: int) -> int:
        """Batches per epoch (optimiser steps per epoch of a training run)."""

    @abstractmethod
    def shuffled(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """One training epoch; arrays and Datasets follow ``torch.randperm(n, generator)``."""

    @abstractmethod
    def ordered(self, batch_size: int) -> Iterator[Batch]:
        """Every sample once, in order (evaluation, predictions, statistics)."""

    @abstractmethod
    def take(self, indices: Sequence[int]) -> BatchSource:
        """The samples at ``indices``, in that order."""

    def subset(self, samples: int, seed: int) -> BatchSource:
        """A seeded subset of ``samples`` samples (the same indices for every kind of source)."""
        return self.take(subset_indices(len(self), samples, seed).tolist())

    def arrays(self, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray | None]:
        """Every sample, in order, as numpy arrays (for small subsets that methods hold whole)."""
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        unlabelled = False
        for x, y in self.ordered(batch_size):
            xs.append(x.numpy())
            if y is None:
                unlabelled = True
            else:
                ys.append(y.numpy())
        if not xs:
            return np.empty((0,), np.float32), None
        labels = None if unlabelled else np.concatenate(ys)
        return np.concatenate(xs), labels

    def empty(self) -> bool:
        """True when there are no samples."""
        return len(self) == 0

    def limit(self, samples: int | None, seed: int) -> BatchSource:
        """This source, or its seeded subset of ``samples`` when it holds more."""
        if samples is None:
            return self
        try:
            if len(self) <= samples:
                return self
        except DataError:
            pass  # a stream of unknown length: its head
        return self.subset(samples, seed)

    def inputs(self, batch_size: int = 1024) -> Iterator[torch.Tensor]:
        """Input batches in order (labels dropped), e.g. for activation statistics."""
        for x, _ in self.ordered(batch_size):
            yield x


class ArrayBatches(BatchSource):
    """Arrays held in memory, indexed a batch at a time."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def steps(self, batch_size: int) -> int:
        return math.ceil(len(self.x) / batch_size)

    def _batch(self, index: torch.Tensor | slice) -> Batch:
        return self.x[index], None if self.y is None else self.y[index]

    def shuffled(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        order = torch.randperm(len(self.x), generator=generator)
        for i in range(0, len(order), batch_size):
            yield self._batch(order[i : i + batch_size])

    def ordered(self, batch_size: int) -> Iterator[Batch]:
        for i in range(0, len(self.x), batch_size):
            yield self._batch(slice(i, i + batch_size))

    def take(self, indices: Sequence[int]) -> BatchSource:
        return ArrayBatches(*self._batch(torch.as_tensor(np.asarray(indices, dtype=np.int64))))


class DatasetBatches(BatchSource):
    """A map-style torch Dataset, read item by item and collated into batches."""

    def __init__(self, dataset: TorchDataset, collate: Callable[[list[Any]], Any]) -> None:
        if not isinstance(dataset, Sized):
            raise DataError(
                f"{type(dataset).__name__} has no len(); wrap it in a DataLoader to use it"
            )
        self.dataset, self.collate = dataset, collate

    def __len__(self) -> int:
        return len(self.dataset)

    def steps(self, batch_size: int) -> int:
        return math.ceil(len(self) / batch_size)

    def _batch(self, indices: list[int]) -> Batch:
        getitems = getattr(self.dataset, "__getitems__", None)
        items = getitems(indices) if getitems else [self.dataset[i] for i in indices]
        return _split_item(self.collate(items))

    def shuffled(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        order = torch.randperm(len(self), generator=generator).tolist()
        for i in range(0, len(order), batch_size):
            yield self._batch(order[i : i + batch_size])

    def ordered(self, batch_size: int) -> Iterator[Batch]:
        for i in range(0, len(self), batch_size):
            yield self._batch(list(range(i, min(i + batch_size, len(self)))))

    def take(self, indices: Sequence[int]) -> BatchSource:
        return DatasetBatches(Subset(self.dataset, [int(i) for i in indices]), self.collate)


class LoaderBatches(BatchSource):
    """A DataLoader, iterated as it is: its own batch size, order, workers and collation."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        try:
            return len(self.loader.dataset)  # type: ignore[arg-type]
        except TypeError:
            raise DataError(
                "the DataLoader's dataset has no len(); give it a __len__ (its sample count)"
            ) from None

    def empty(self) -> bool:
        try:
            return len(self) == 0
        except DataError:
            return False  # a stream: known only by iterating it

    def steps(self, batch_size: int) -> int:
        try:
            return len(self.loader)
        except TypeError:
            raise DataError(
                "the DataLoader has no len() (a stream), but the number of batches per epoch is "
                "needed (cosine lr, gradual pruning); give its dataset a __len__"
            ) from None

    def shuffled(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        sampler = getattr(self.loader, "sampler", None)
        if isinstance(sampler, EpochSampler):
            sampler.generator = generator  # the run's seed decides the order, as for arrays
        for batch in self.loader:
            yield _split_item(batch)

    def ordered(self, batch_size: int) -> Iterator[Batch]:
        return self.shuffled(batch_size, torch.Generator())

    def _streamed(self) -> bool:
        dataset = self.loader.dataset
        return isinstance(dataset, IterableDataset) or not isinstance(dataset, Sized)

    def subset(self, samples: int, seed: int) -> BatchSource:
        if self._streamed():
            return _FirstSamples(self, samples)  # a stream cannot be indexed: take its head
        return super().subset(samples, seed)

    def take(self, indices: Sequence[int]) -> BatchSource:
        wanted = [int(i) for i in indices]
        if not self._streamed():
            return DatasetBatches(self.loader.dataset, self.loader.collate_fn).take(wanted)
        if wanted == list(range(len(wanted))):
            return _FirstSamples(self, len(wanted))
        raise DataError(
            "this DataLoader streams its samples (an IterableDataset), so chosen samples cannot "
            "be picked from it; pass a map-style Dataset (with __getitem__ and __len__)"
        )


class _FirstSamples(BatchSource):
    """The first ``samples`` samples of a stream (an IterableDataset behind a DataLoader)."""

    def __init__(self, source: BatchSource, samples: int) -> None:
        self.source, self.samples = source, samples

    def __len__(self) -> int:
        return self.samples

    def steps(self, batch_size: int) -> int:
        return math.ceil(self.samples / batch_size)

    def shuffled(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        return self.ordered(batch_size)

    def ordered(self, batch_size: int) -> Iterator[Batch]:
        left = self.samples
        for x, y in self.source.ordered(batch_size):
            if left <= 0:
                return
            yield x[:left], None if y is None else y[:left]
            left -= len(x)

    def subset(self, samples: int, seed: int) -> BatchSource:
        return _FirstSamples(self.source, min(samples, self.samples))

    def take(self, indices: Sequence[int]) -> BatchSource:
        return self.source.take(indices)


Samples = np.ndarray | torch.Tensor | TorchDataset | DataLoader | BatchSource
"""What a training loop, an evaluation or a pruning method accepts as data."""


def as_batch_source(x: Samples, y: Any = None, what: str = "data") -> BatchSource:
    """Wrap arrays, a torch Dataset or a DataLoader as a :class:`BatchSource`.

    Args:
        x: inputs (array), or a Dataset / DataLoader of ``(input, label)`` samples.
        y: labels for array inputs (``None`` for inputs only); must be ``None`` otherwise.
        what: names the data in error messages (``"training data"``).
    """
    if isinstance(x, BatchSource):
        return x
    if isinstance(x, (DataLoader, TorchDataset)):
        if y is not None:
            raise DataError(
                f"{what}: labels come with the samples of a {type(x).__name__}; pass y=None"
            )
        return LoaderBatches(x) if isinstance(x, DataLoader) else DatasetBatches(x, default_collate)
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise DataError(
            f"{what} must be an array, a torch Dataset or a DataLoader; got {type(x).__name__}"
        )
    with warnings.catch_warnings():
        # loky workers receive read-only memory maps; batches are only read, never written
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        xt = torch.as_tensor(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x)
    xt = xt.to(torch.float32)
    yt = None
    if y is not None:
        yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).long()
        if len(yt) != len(xt):
            raise DataError(f"{what}: {len(xt)} inputs but {len(yt)} labels; pass one per input")
    return ArrayBatches(xt, yt)


def check_pair(x: Samples, y: Any, what: str) -> None:
    """Raise :class:`DataError` unless ``(x, y)`` is labelled arrays or a Dataset/DataLoader.

    Cheap: arrays are not copied or converted.
    """
    if isinstance(x, (np.ndarray, torch.Tensor)):
        if y is None:
            raise DataError(f"{what}: array inputs need their labels (y)")
        if len(y) != len(x):
            raise DataError(f"{what}: {len(x)} inputs but {len(y)} labels; pass one per input")
        return
    as_batch_source(x, y, what)


def sample_count(x: Samples) -> int:
    """Number of samples of arrays, a Dataset or a DataLoader."""
    return len(as_batch_source(x))


class EpochSampler(Sampler[int]):
    """A seeded permutation every epoch, the order the training loop walks arrays in.

    A training run (:func:`~ensprune.models.train_model`) hands the sampler its own generator,
    seeded from ``TrainConfig.seed``, so every run over a loader with this sampler visits the
    samples exactly as the same run over arrays does, however often the loader is reused (e.g. by
    the rounds of an iterative pruning schedule, each seeded on its own). Outside a run the
    sampler draws from a generator seeded with ``seed``.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n = int(n)
        self.generator = torch.Generator().manual_seed(int(seed))

    def __iter__(self) -> Iterator[int]:
        yield from torch.randperm(self.n, generator=self.generator).tolist()

    def __len__(self) -> int:
        return self.n


def seeded_loader(
    dataset: TorchDataset, batch_size: int, seed: int = 0, **loader_kwargs: Any
) -> DataLoader:
    """A shuffling DataLoader that visits ``dataset`` in the order of an array run.

    Training on it with ``TrainConfig(batch_size=batch_size)`` gives the same network as training
    on the same samples held as arrays, for any ``TrainConfig.seed`` (see :class:`EpochSampler`);
    ``seed`` orders it when it is iterated outside a training run. ``loader_kwargs`` go to
    ``DataLoader`` (``num_workers``, ``pin_memory``, ...). Any other DataLoader works too, in its
    own order.

    Example:
        >>> loader = seeded_loader(my_dataset, batch_size=128, num_workers=2)
        >>> context = PruningContext(loader, None, val_loader, None, finetune=cfg)
    """
    if not isinstance(dataset, Sized):
        raise DataError("seeded_loader needs a Dataset with len(); pass a DataLoader instead")
    sampler = EpochSampler(len(dataset), seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **loader_kwargs)
