"""Learned pruning ratio: a soft magnitude mask whose ratio r and temperature τ are trained.

During training every prunable weight is used as ``w · m`` with the soft mask

    m = sigmoid((w² - t²) / τ),   t = the r-quantile of |w| over all prunable weights,

so r (the share of weights below the threshold) and τ (how soft the cut is) are parameters of
the loss, trained by gradient descent next to the weights, each with its own learning rate and
initial value. The loss adds the regulariser ``λ (target - r)²`` (the learned-ratio thesis uses
target 1: without a pull towards sparsity the cross-entropy alone drives r to 0).

Gradients (written by hand in :class:`SoftMask` and :class:`QuantileThreshold`, and checked
against finite differences in the tests). With ``g = ∂L/∂m`` and ``s = m (1 - m)``:

* ``∂L/∂τ = -Σ g · s · (w² - t²) / τ²`` (τ is trained as ``log τ``, so Adam's steps are relative);
* ``∂L/∂t = -Σ g · s · 2t / τ`` and ``∂t/∂r = 1 / f(t)``, the inverse density of |w| at t (the
  derivative of a quantile function), so ``∂L/∂r = ∂L/∂t / f(t)``: a larger r means a larger
  threshold. f is a Gaussian kernel density estimate of |w| on a 1024-point grid computed by
  FFT (:func:`ensprune.pruning._density.fft_kde`, Silverman's bandwidth, reflected at 0);
* the weights get ``∂L/∂w`` through the product ``w · m(w)`` once, by autograd (the threshold
  t is treated as a constant of the weights).

After ``1 - hard_share`` of the epoch budget the soft mask is made hard: the weights keep their
soft-masked values ``w · m``, the share r of smallest |w| is removed (one global threshold,
with the usual per-layer cap so no layer collapses), and the rest of the budget fine-tunes with
the masks enforced. The result reports the *realised* hard sparsity: the ``sparsity`` argument
of :meth:`AdaptivePruning.prune` is the regulariser's target, not a promise.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from torch.func import functional_call

from ensprune.data.augment import check_image_batch, get_augmentation
from ensprune.data.batching import as_batch_source
from ensprune.errors import DataError, SpecError
from ensprune.models.measure import prunable_parameters
from ensprune.models.training import (
    _distillation_loss,
    _make_optimizer,
    evaluate,
    resolve_device,
)
from ensprune.pruning._base import (
    METHODS,
    PruningContext,
    PruningMethod,
    PruningResult,
    check_sparsity,
)
from ensprune.pruning._density import GRID_SIZE, fft_kde
from ensprune.pruning._masks import apply_masks, mask_sparsity, masks_from_scores
from ensprune.pruning.finetune import finetune

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

R_MIN, R_MAX = 0.0, 0.999
LOG_TAU_MIN = math.log(1e-4)  # τ / (mean w²) never falls below 1e-4: the mask stays smooth


class SoftMask(torch.autograd.Function):
    """``m = sigmoid((w² - t²) / τ)`` with hand-written gradients for w, t and τ."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor, t: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        m = torch.sigmoid((w * w - t * t) / tau)
        ctx.save_for_backward(w, t, tau, m)
        return m

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w, t, tau, m = ctx.saved_tensors
        gs = g * m * (1 - m) / tau  # ∂L/∂z with z = (w² - t²) / τ, over τ
        grad_w = gs * 2 * w
        grad_t = -(gs.sum() * 2 * t)
        grad_tau = -(gs * (w * w - t * t)).sum() / tau
        return grad_w, grad_t.reshape(t.shape), grad_tau.reshape(tau.shape)


class QuantileThreshold(torch.autograd.Function):
    """t = the r-quantile of |w| (computed outside), with ``∂t/∂r = 1 / f(t)``."""

    @staticmethod
    def forward(ctx: Any, r: torch.Tensor, t: torch.Tensor, density_at_t: float) -> torch.Tensor:
        ctx.density_at_t = density_at_t
        return t.detach().clone()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return g / ctx.density_at_t, None, None


def quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """The ``q`` quantile of a flat tensor, linearly interpolated (no size limit, unlike torch's)."""
    n = values.numel()
    pos = min(max(q, 0.0), 1.0) * (n - 1)
    lo = math.floor(pos)
    a = torch.kthvalue(values, lo + 1).values
    if lo + 1 >= n or pos == lo:
        return a
    b = torch.kthvalue(values, lo + 2).values
    return a + (pos - lo) * (b - a)


class MagnitudeTable:
    """Sorted magnitudes |w| and their FFT density, from which t(r) and f(t) are read in O(1).

    Sorting 10⁵-10⁶ magnitudes and estimating their density every optimiser step would cost
    more than the step itself; the soft mask reads the table instead, and training rebuilds it
    every ``refresh_every`` steps (the weights move little in between, r is always current).
    """

    def __init__(self, magnitudes: torch.Tensor, grid_size: int = GRID_SIZE) -> None:
        self.sorted = torch.sort(magnitudes.detach().flatten()).values
        self.density = fft_kde(self.sorted, grid_size=grid_size, lower_bound=0.0)

    def threshold(self, r: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(t = the r-quantile, with ``∂t/∂r = 1/f(t)`` for autograd; f(t))."""
        n = self.sorted.numel()
        pos = min(max(float(r.detach()), 0.0), 1.0) * (n - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        t = self.sorted[lo] + (pos - lo) * (self.sorted[hi] - self.sorted[lo])
        f_t = max(float(self.density(float(t))), 1e-12)
        return QuantileThreshold.apply(r, t.to(r.dtype), f_t), f_t


def magnitude_threshold(
    magnitudes: torch.Tensor, r: torch.Tensor, grid_size: int = GRID_SIZE
) -> tuple[torch.Tensor, float]:
    """(t as a function of r with ``∂t/∂r = 1/f(t)``, f(t)) for flat magnitudes ``|w|``."""
    return MagnitudeTable(magnitudes, grid_size).threshold(r)


class _SoftMasked(nn.Module):
    """The network with every prunable weight replaced by ``w · m`` (for training and evaluation)."""

    def __init__(self, model: nn.Module, r0: float, log_tau0: float, scale: float) -> None:
        super().__init__()
        self.model = model
        self.ratio = nn.Parameter(torch.tensor(float(r0)))
        self.log_tau = nn.Parameter(torch.tensor(float(log_tau0)))
        self.scale = scale  # mean w² at the start: τ = exp(log_tau) · scale
        self.table: MagnitudeTable | None = None

    @property
    def tau(self) -> torch.Tensor:
        return self.log_tau.exp() * self.scale

    def refresh(self) -> None:
        """Rebuild the magnitude table from the current weights."""
        weights = prunable_parameters(self.model).values()
        self.table = MagnitudeTable(torch.cat([w.detach().abs().flatten() for w in weights]))

    def masked_weights(self) -> dict[str, torch.Tensor]:
        if self.table is None:
            self.refresh()
        assert self.table is not None
        t, _ = self.table.threshold(self.ratio)
        tau = self.tau
        weights = prunable_parameters(self.model)
        return {name: w * SoftMask.apply(w, t, tau) for name, w in weights.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, self.masked_weights(), (x,))


@METHODS.register("adaptive")
class AdaptivePruning(PruningMethod):
    """Learn the pruning ratio during training with a soft mask; finish with a hard mask.

    Args:
        r0: the ratio's initial value, in [0, 1).
        tau0: τ's initial value, relative to the mean squared prunable weight (scale-free).
        r_lr: Adam learning rate of r.
        tau_lr: Adam learning rate of log τ.
        reg: λ of the regulariser ``λ (target - r)²``; ``target`` is the ``sparsity`` passed to
            :meth:`prune`. The cross-entropy's pull on r near high sparsity is of order 10 on
            MNIST MLPs, so λ = 100 leaves r about one point below the target.
        hard_share: the share of the epoch budget ``context.finetune.epochs`` trained with the
            hard mask at the end (at least one epoch whenever the budget has two or more).
        anneal: the hard-mask fine-tuning ends at ``lr * anneal`` (see
            :func:`~ensprune.pruning.finetune.finetune`); ``None`` disables it.
        max_layer_sparsity: per-layer cap of the hard mask (``None``: every layer keeps at least
            a tenth of the network's density), as in the other global methods.
        refresh_every: optimiser steps between re-sorting the magnitudes and re-estimating
            their density (:class:`MagnitudeTable`); t follows r at every step.

    ``context.finetune`` gives the weights' optimiser, lr, batch size, augmentation and
    distillation; the soft phase trains for its full epoch share (no early stopping: r moves
    every step).
    """

    name = "adaptive"
    description = (
        "learned ratio: soft mask sigmoid((w²-t²)/τ) with trainable r and τ (FFT-KDE ∂t/∂r), "
        "regulariser λ(target-r)², then a hard mask; sparsity is the target, not a promise"
    )
    exact_sparsity: ClassVar[bool] = False

    def __init__(
        self,
        r0: float = 0.5,
        tau0: float = 0.05,
        r_lr: float = 2e-3,
        tau_lr: float = 1e-2,
        reg: float = 100.0,
        hard_share: float = 0.25,
        anneal: float | None = 0.1,
        max_layer_sparsity: float | None = None,
        refresh_every: int = 10,
    ) -> None:
        if (
            isinstance(refresh_every, bool)
            or not isinstance(refresh_every, int)
            or refresh_every < 1
        ):
            raise SpecError(
                f"adaptive: refresh_every must be an integer >= 1; got {refresh_every!r}"
            )
        self.refresh_every = refresh_every
        checks = {
            "r0": (r0, 0.0 <= _num(r0) <= R_MAX, f"in [0, {R_MAX}]"),
            "tau0": (tau0, _num(tau0) > 0, "> 0"),
            "r_lr": (r_lr, _num(r_lr) > 0, "> 0"),
            "tau_lr": (tau_lr, _num(tau_lr) >= 0, ">= 0 (0 freezes τ)"),
            "reg": (reg, _num(reg) >= 0, ">= 0"),
            "hard_share": (hard_share, 0.0 <= _num(hard_share) < 1.0, "in [0, 1)"),
        }
        for knob, (value, ok, rule) in checks.items():
            if not ok:
                raise SpecError(f"adaptive: {knob} must be a number {rule}; got {value!r}")
        if anneal is not None and not 0.0 < _num(anneal) <= 1.0:
            raise SpecError(f"adaptive: anneal must lie in (0, 1] or be None; got {anneal!r}")
        if max_layer_sparsity is not None and not 0.0 <= _num(max_layer_sparsity) <= 1.0:
            raise SpecError(
                f"adaptive: max_layer_sparsity must lie in [0, 1]; got {max_layer_sparsity!r}"
            )
        self.r0, self.tau0, self.r_lr, self.tau_lr = (
            float(r0),
            float(tau0),
            float(r_lr),
            float(tau_lr),
        )
        self.reg, self.hard_share = float(reg), float(hard_share)
        self.anneal = None if anneal is None else float(anneal)
        self.max_layer_sparsity = None if max_layer_sparsity is None else float(max_layer_sparsity)

    def params(self) -> dict[str, Any]:
        return {
            "r0": self.r0,
            "tau0": self.tau0,
            "r_lr": self.r_lr,
            "tau_lr": self.tau_lr,
            "reg": self.reg,
            "hard_share": self.hard_share,
            "anneal": self.anneal,
            "max_layer_sparsity": self.max_layer_sparsity,
            "refresh_every": self.refresh_every,
        }

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Initial values and learning rates of r and τ, the regulariser's weight, the hard phase."""
        return {
            "r0": trial.suggest_float("adaptive.r0", 0.1, 0.9),
            "tau0": trial.suggest_float("adaptive.tau0", 1e-3, 1.0, log=True),
            "r_lr": trial.suggest_float("adaptive.r_lr", 1e-4, 1e-2, log=True),
            "tau_lr": trial.suggest_float("adaptive.tau_lr", 1e-3, 1e-1, log=True),
            "reg": trial.suggest_float("adaptive.reg", 1.0, 1000.0, log=True),
            "hard_share": trial.suggest_float("adaptive.hard_share", 0.1, 0.5),
        }

    def prune(self, model: nn.Module, sparsity: float, context: PruningContext) -> PruningResult:
        target = check_sparsity(sparsity)
        context = context.with_teacher(model)
        pruned = copy.deepcopy(model)  # never modify the caller's network
        if not prunable_parameters(pruned):
            raise SpecError("adaptive: the model has no prunable (Linear/Conv2d) weights")
        budget = context.finetune.epochs
        hard_epochs = min(budget - 1, max(round(self.hard_share * budget), 1)) if budget > 1 else 0
        soft_epochs = budget - hard_epochs
        weights = prunable_parameters(pruned)
        scale = float(torch.cat([w.detach().flatten() ** 2 for w in weights.values()]).mean())
        soft = _SoftMasked(pruned, self.r0, math.log(self.tau0), max(scale, 1e-12))
        history = self._train_soft(soft, target, context, soft_epochs)
        soft.refresh()  # the final weights' own threshold
        with torch.no_grad():  # bake the soft mask into the weights, then cut at the learned ratio
            for name, value in soft.masked_weights().items():
                weights[name].copy_(value)
        ratio = float(soft.ratio.detach())
        scores = {name: w.detach().abs() for name, w in weights.items()}
        masks = masks_from_scores(scores, ratio, "global", self.max_layer_sparsity)
        apply_masks(pruned, masks)
        ft = finetune(
            pruned,
            masks,
            context,
            dataclasses.replace(context.finetune, epochs=hard_epochs, seed=context.seed + 1),
            desc="adaptive hard mask",
            anneal=self.anneal,
        )
        realised = mask_sparsity(masks)
        logger.info("adaptive: learned r = %.4f, realised hard sparsity %.4f", ratio, realised)
        return PruningResult(
            pruned,
            masks,
            info={
                "sparsity": realised,
                "target_sparsity": target,
                "target_role": "regulariser target λ(target - r)²; the realised sparsity is learned",
                "learned_ratio": ratio,
                "tau": float(soft.tau.detach()),
                "ratio_history": history,
                "soft_epochs": soft_epochs,
                "finetune_epochs": soft_epochs + ft.epochs_run,
            },
        )

    def _train_soft(
        self, soft: _SoftMasked, target: float, context: PruningContext, epochs: int
    ) -> list[float]:
        """Train weights, r and log τ together; returns r after each epoch."""
        cfg = context.finetune
        dev = resolve_device(cfg.device)
        soft.to(dev)
        optimizers = [
            _make_optimizer(soft.model, cfg),
            torch.optim.Adam([soft.ratio], lr=self.r_lr),
            torch.optim.Adam([soft.log_tau], lr=self.tau_lr),
        ]
        # arrays, a Dataset or a DataLoader (see ensprune.data.batching)
        train = as_batch_source(context.x_train, context.y_train, "training data")
        gen = torch.Generator().manual_seed(cfg.seed * 7 + context.seed)
        augment = None
        if cfg.augment is not None:
            augment = get_augmentation(cfg.augment)
            augment_gen = torch.Generator().manual_seed(cfg.seed + 7919)
        teacher = context.teacher.to(dev).eval() if cfg.distill > 0 and context.teacher else None
        ratios: list[float] = []
        step = 0
        soft.refresh()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            for epoch in range(epochs):
                soft.train()
                for xb, yb in train.shuffled(cfg.batch_size, gen):
                    if yb is None:
                        raise DataError("adaptive: training data has no labels")
                    if augment is not None and epoch < epochs - cfg.clean_epochs:
                        check_image_batch(tuple(xb.shape), str(cfg.augment))
                        xb = augment(xb, augment_gen)
                    xb, yb = xb.to(dev), yb.to(dev)
                    for opt in optimizers:
                        opt.zero_grad(set_to_none=True)
                    logits = soft(xb)
                    loss = nn.functional.cross_entropy(logits, yb)
                    if teacher is not None:
                        kd = _distillation_loss(logits, teacher, xb, cfg.temperature)
                        loss = (1 - cfg.distill) * loss + cfg.distill * kd
                    loss = loss + self.reg * (target - soft.ratio) ** 2
                    loss.backward()
                    for opt in optimizers:
                        opt.step()
                    step += 1
                    if step % self.refresh_every == 0:
                        soft.refresh()
                    with torch.no_grad():
                        soft.ratio.clamp_(R_MIN, R_MAX)
                        soft.log_tau.clamp_(min=LOG_TAU_MIN)
                ratios.append(float(soft.ratio.detach()))
                if logger.isEnabledFor(logging.INFO):
                    _, acc = evaluate(soft, context.x_val, context.y_val, device=cfg.device)
                    logger.info(
                        "adaptive epoch %d/%d: r = %.4f, tau = %.3g, val accuracy (soft) %.4f",
                        epoch + 1,
                        epochs,
                        ratios[-1],
                        float(soft.tau.detach()),
                        acc,
                    )
        return ratios


def _num(value: object) -> float:
    """``value`` as a float, NaN for anything that is not a number (so range checks fail)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)
