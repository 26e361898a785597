"""Seeded training with early stopping on validation loss, and batched inference.

Data may be arrays, a torch ``Dataset`` or a ``DataLoader`` everywhere (training, validation,
evaluation, predictions); see :mod:`ensprune.data.batching`. With a Dataset or a DataLoader the
labels come with the samples and the ``y`` arguments are ``None``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ensprune._registry import Registry
from ensprune.data.augment import AUGMENTATIONS, check_image_batch, get_augmentation
from ensprune.data.batching import Batch, Samples, as_batch_source
from ensprune.errors import DataError, SpecError
from ensprune.progress import Progress

StepHook = Callable[[nn.Module], None]
# Called after every epoch with the validation accuracy; may raise to stop the run (trial pruning).
EpochHook = Callable[[float], None]
OptimizerFactory = Callable[[list[nn.Parameter], "TrainConfig"], torch.optim.Optimizer]
LrScheduleFactory = Callable[
    [torch.optim.Optimizer, "TrainConfig", int], torch.optim.lr_scheduler.LRScheduler | None
]

# name -> (trainable parameters, config) -> optimiser; ``TrainConfig.optimizer`` names one.
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")
# name -> (optimiser, config, steps per epoch) -> per-step lr scheduler (None: constant lr).
LR_SCHEDULES: Registry[LrScheduleFactory] = Registry("lr schedule")


@OPTIMIZERS.register("adam")
def _adam(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (L2 penalty added to the gradient)."""
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


@OPTIMIZERS.register("adamw")
def _adamw(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay)."""
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


@OPTIMIZERS.register("sgd")
def _sgd(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum 0.9."""
    return torch.optim.SGD(
        params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
    )


@LR_SCHEDULES.register("constant")
def _constant(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The same lr throughout."""
    return None


@LR_SCHEDULES.register("cosine")
def _cosine(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per step from lr down to 0 over the run's epochs (Loshchilov & Hutter 2017)."""
    total = max(config.epochs * steps_per_epoch, 1)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    )


@dataclass(frozen=True)
class TrainConfig:
    """How to train one network.

    Attributes:
        epochs: maximum number of passes over the training data.
        batch_size: mini-batch size.
        lr: learning rate.
        weight_decay: L2 penalty (decoupled for AdamW).
        optimizer: a name in :data:`OPTIMIZERS` (any case): ``"adam"``, ``"adamw"`` or ``"sgd"``
            (momentum 0.9, Nesterov).
        patience: stop after this many epochs without a lower validation loss (0 disables).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
        seed: seeds initial shuffling and dropout; the same seed gives the same run.
        augment: name of a training-time augmentation of image batches (``"shift"``,
            ``"affine"``, ``"flip_shift"``; see :mod:`ensprune.data.augment`), or ``None``.
            Validation and test data are never augmented.
        distill: weight α of knowledge distillation (Hinton et al. 2015): the loss becomes
            (1 - α) · cross-entropy + α · T² · KL(teacher ‖ student) at temperature T. Needs a
            ``teacher`` in :func:`train_model`; pruning methods use the unpruned network.
        temperature: the distillation temperature T.
        lr_schedule: ``"constant"`` or ``"cosine"`` (per optimiser step from ``lr`` down to 0
            over ``epochs`` epochs; Loshchilov & Hutter 2017). Cosine decay settles the weights
            at the end of a fixed budget, so it pairs with ``patience=0``, and a cosine run that
            completes its budget returns its last weights (the lowest validation loss often
            comes early, before the network is best; see :func:`train_model`'s ``keep_best``).
        clean_epochs: the last ``clean_epochs`` epochs of a run skip ``augment`` (of each run:
            every round of a round-based pruning schedule and both stages of an annealed
            fine-tune train separately). A small (e.g. very sparse) network underfits warped
            images; on LeNet-300-100 at 98 % sparsity clean final epochs lower test error (see
            the gradual-schedule tables of benchmarks/RESULTS.md). Ignored without ``augment``.
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    patience: int = 5
    device: str = "cpu"
    seed: int = 0
    augment: str | None = None
    distill: float = 0.0
    temperature: float = 4.0
    lr_schedule: str = "constant"
    clean_epochs: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise SpecError(f"epochs must be >= 0; got {self.epochs}")
        if self.batch_size < 1:
            raise SpecError(f"batch_size must be >= 1; got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise SpecError(f"lr must be a positive number; got {self.lr}")
        # names in any case; the config holds the registered spelling
        object.__setattr__(self, "optimizer", OPTIMIZERS.canonical(self.optimizer))
        object.__setattr__(self, "lr_schedule", LR_SCHEDULES.canonical(self.lr_schedule))
        if self.device not in ("cpu", "cuda", "auto"):
            raise SpecError(f"device must be cpu, cuda or auto; got {self.device!r}")
        if self.augment is not None:  # unknown names list the valid ones
            object.__setattr__(self, "augment", AUGMENTATIONS.canonical(self.augment))
        if not 0.0 <= self.distill <= 1.0:
            raise SpecError(f"distill must lie in [0, 1] (the KD loss weight); got {self.distill}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise SpecError(f"temperature must be a positive number; got {self.temperature}")
        if isinstance(self.clean_epochs, bool) or not isinstance(self.clean_epochs, int):
            raise SpecError(f"clean_epochs must be an integer >= 0; got {self.clean_epochs!r}")
        if self.clean_epochs < 0:
            raise SpecError(f"clean_epochs must be an integer >= 0; got {self.clean_epochs}")


@dataclass
class TrainHistory:
    """Per-epoch curves of one training run; the returned model holds the best-val-loss weights."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    snapshot: dict[str, torch.Tensor] | None = None

    @property
    def epochs_run(self) -> int:
        return len(self.train_loss)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("device 'cuda' was asked for but no CUDA device is available; use 'cpu'")
    return torch.device(device)


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return OPTIMIZERS.get(config.optimizer)(params, config)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: Samples,
    y: np.ndarray | None = None,
    batch_size: int = 1024,
    device: str = "cpu",
) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on (x, y), or on a labelled Dataset/DataLoader."""
    source = as_batch_source(x, y, "evaluation data")
    logits, labels = _logits(model, source.ordered(batch_size), device)
    if labels is None:
        raise DataError("evaluation data has no labels; pass y, or (input, label) samples")
    if len(labels) == 0:
        return math.nan, math.nan
    loss = float(nn.functional.cross_entropy(logits, labels))
    acc = float((logits.argmax(1) == labels).float().mean())
    return loss, acc


def _logits(
    model: nn.Module, batches: Iterator[Batch], device: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits of every batch on the CPU, and the labels when every batch has them."""
    dev = resolve_device(device)
    was_training = model.training
    model.eval()
    model.to(dev)
    out: list[torch.Tensor] = []
    labels: list[torch.Tensor] | None = []
    try:
        for xb, yb in batches:
            out.append(model(xb.to(dev)).float().cpu())
            if yb is None:
                labels = None
            elif labels is not None:
                labels.append(yb)
    finally:
        model.train(was_training)
    logits = torch.cat(out) if out else torch.empty(0)
    if labels is None:
        return logits, None
    return logits, torch.cat(labels) if labels else torch.empty(0, dtype=torch.long)


@torch.no_grad()
def predict_logits(
    model: nn.Module, x: Samples, batch_size: int = 1024, device: str = "cpu"
) -> torch.Tensor:
    """Logits of ``model`` on x (arrays, Dataset or DataLoader, in its order), on the CPU."""
    return _logits(model, as_batch_source(x, None, "inputs").ordered(batch_size), device)[0]


def predict_proba(
    model: nn.Module, x: Samples, batch_size: int = 1024, device: str = "cpu"
) -> np.ndarray:
    """Softmax probabilities (N, C) as float64 numpy."""
    logits = predict_logits(model, x, batch_size=batch_size, device=device)
    return torch.softmax(logits.double(), dim=1).numpy()


def _distillation_loss(
    logits: torch.Tensor, teacher: nn.Module, xb: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T² · KL(softmax(teacher / T) ‖ softmax(student / T)), averaged over the batch."""
    with torch.no_grad():
        target = nn.functional.log_softmax(teacher(xb) / temperature, dim=1)
    student = nn.functional.log_softmax(logits / temperature, dim=1)
    kl = nn.functional.kl_div(student, target, log_target=True, reduction="batchmean")
    return kl * temperature**2


def train_model(
    model: nn.Module,
    x_train: Samples,
    y_train: np.ndarray | None,
    x_val: Samples,
    y_val: np.ndarray | None,
    config: TrainConfig,
    *,
    before_step: StepHook | None = None,
    after_step: StepHook | None = None,
    progress: bool = True,
    desc: str = "train",
    snapshot_epoch: int | None = None,
    teacher: nn.Module | None = None,
    keep_best: bool | None = None,
    after_epoch: EpochHook | None = None,
) -> TrainHistory:
    """Train ``model`` in place with early stopping on validation loss; restore the best weights.

    Args:
        x_train, y_train: training inputs and labels as arrays, or a torch Dataset / DataLoader
            of ``(input, label)`` samples with ``y_train=None``. Arrays and Datasets are shuffled
            by a permutation seeded from ``config.seed`` and cut into ``config.batch_size``
            batches; a DataLoader is used as it is (its batch size and order).
        x_val, y_val: validation data, in the same forms.
        before_step: called after ``backward`` and before the optimizer step (e.g. mask gradients).
        after_step: called after each optimizer step (e.g. re-apply pruning masks).
        progress: report progress over epochs (a bar on a terminal, log lines when piped;
            see :mod:`ensprune.progress`).
        snapshot_epoch: keep a copy of the weights after this many epochs in
            ``history.snapshot`` (the early checkpoint of lottery-ticket rewinding).
        teacher: the network distilled from when ``config.distill > 0`` (not modified).
        keep_best: restore the weights of the lowest validation loss at the end; ``False`` keeps
            the last ones (when hooks change the network during the run, e.g. gradual pruning,
            an earlier state would undo them). ``None`` (default): restore them after a
            constant-lr run or an early stop, keep the last ones after a completed cosine run.
        after_epoch: called with the validation accuracy after every epoch (e.g. to report it
            to an Optuna pruner); an exception it raises ends the run and propagates.

    Returns:
        The per-epoch history.
    """
    dev = resolve_device(config.device)
    model.to(dev)
    train = as_batch_source(x_train, y_train, "training data")
    val = as_batch_source(x_val, y_val, "validation data")
    history = TrainHistory()
    if config.epochs == 0 or train.empty():
        return history
    if config.distill > 0:
        if teacher is None:
            raise SpecError(
                f"distill={config.distill} needs a teacher network; pass teacher= or set distill=0"
            )
        teacher.to(dev).eval()
    gen = torch.Generator().manual_seed(config.seed)
    augment = None
    if config.augment is not None:
        augment = get_augmentation(config.augment)
        augment_gen = torch.Generator().manual_seed(config.seed + 7919)
    optimizer = _make_optimizer(model, config)
    scheduler = None
    if config.lr_schedule != "constant":
        scheduler = _make_lr_scheduler(optimizer, config, train.steps(config.batch_size))
    augment_until = config.epochs - config.clean_epochs
    best_loss = math.inf
    best_state = copy.deepcopy(model.state_dict())
    since_best = 0
    bar = Progress(config.epochs, desc=desc, unit="epoch", enabled=progress)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # dropout draws from the global generator
        for epoch in range(config.epochs):
            model.train()
            total, seen = 0.0, 0
            for xb, yb in train.shuffled(config.batch_size, gen):
                if yb is None:
                    raise DataError(
                        "training data has no labels; pass y, or (input, label) samples"
                    )
                yb = yb.to(dev)
                if augment is not None and epoch < augment_until:
                    if seen == 0 and epoch == 0:
                        check_image_batch(tuple(xb.shape), str(config.augment))
                    xb = augment(xb, augment_gen)
                xb = xb.to(dev)
                optimizer.zero_grad(set_to_none=True)
                logits = model(xb)
                loss = nn.functional.cross_entropy(logits, yb)
                if config.distill > 0:
                    assert teacher is not None
                    loss = (1.0 - config.distill) * loss + config.distill * _distillation_loss(
                        logits, teacher, xb, config.temperature
                    )
                loss.backward()
                if before_step is not None:
                    before_step(model)
                optimizer.step()
                if after_step is not None:
                    after_step(model)
                if scheduler is not None:
                    scheduler.step()
                total += float(loss.detach()) * len(yb)
                seen += len(yb)
            val_loss, val_acc = evaluate(model, val, device=config.device)
            history.train_loss.append(total / max(seen, 1))
            history.val_loss.append(val_loss)
            history.val_accuracy.append(val_acc)
            bar.update(1, val_loss=f"{val_loss:.4f}", val_acc=f"{val_acc:.4f}")
            if after_epoch is not None:
                try:
                    after_epoch(val_acc)
                except BaseException:
                    bar.close()
                    raise
            if snapshot_epoch is not None and epoch + 1 == snapshot_epoch:
                history.snapshot = copy.deepcopy(model.state_dict())
            if val_loss < best_loss - 1e-6:
                best_loss, since_best, history.best_epoch = val_loss, 0, epoch
                best_state = copy.deepcopy(model.state_dict())
            else:
                since_best += 1
                if config.patience and since_best >= config.patience:
                    history.stopped_early = True
                    break
    bar.close()
    if keep_best is None:
        keep_best = config.lr_schedule == "constant" or history.stopped_early
    if keep_best:
        model.load_state_dict(best_state)
    return history


def _make_lr_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    return LR_SCHEDULES.get(config.lr_schedule)(optimizer, config, steps_per_epoch)
