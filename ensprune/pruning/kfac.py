"""Second-order saliency under K-FAC and EKFAC curvature (Martens & Grosse 2015; George et al. 2018).

K-FAC approximates each layer's Fisher block by ``A ⊗ S`` (input and output-gradient
covariances, :func:`~ensprune.pruning._curvature.kfac_factors`). For weight ``W_ij``:

- ``saliency="obd"``: ``½ W_ij² F_ij,ij`` with the Kronecker diagonal ``F_ij,ij = S_ii A_jj``;
- ``saliency="obs"``: the OBS cost of removing the single weight ``W_ij² / (2 [F⁻¹]_ij,ij)``, with
  ``[F⁻¹]_ij,ij = [(S + γI)⁻¹]_ii [(A + γI)⁻¹]_jj`` (the bias's row of ``A`` included, so the bias
  is free to compensate; ``γ = damping ·`` the factor's mean eigenvalue).

``ekfac`` keeps K-FAC's eigenbasis ``(Q_S, Q_A)`` but re-fits the eigenvalues to the second
moments of per-sample gradients in that basis (``Λ*``), which makes the diagonal in the Kronecker
eigenbasis exact; the diagonal of ``F`` and ``F⁻¹`` in the weight basis are
``(Q_S∘Q_S) Λ* (Q_A∘Q_A)ᵀ`` and ``(Q_S∘Q_S) (Λ* + γ)⁻¹ (Q_A∘Q_A)ᵀ``.

Scores only: weights are masked, not updated (the layer-wise weight update is ``obs``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.pruning._base import METHODS, Masks, PruningContext
from ensprune.pruning._curvature import (
    KFAC_FISHERS,
    KroneckerFactors,
    LayerView,
    check_choice,
    check_damping,
    check_positive_int,
    damp,
    ekfac_eigenvalues,
    guarded_eigh,
    iter_batches,
    kfac_factors,
    layer_views,
)
from ensprune.pruning._score import ScoreMethod

if TYPE_CHECKING:
    import optuna

SALIENCIES = ("obd", "obs")


@dataclass
class LayerCurvature:
    """One layer's curvature in a form both saliencies and the OBS update can use.

    Attributes:
        diagonal: ``diag(F)`` over ``(out, d[+1])`` (bias column last when present).
        inverse_diagonal: ``diag((F + γ)⁻¹)`` over the same shape.
        solve: ``C -> (F + γ)⁻¹ C`` for a matrix ``C`` of that shape.
    """

    diagonal: torch.Tensor
    inverse_diagonal: torch.Tensor
    solve: Callable[[torch.Tensor], torch.Tensor]


def kfac_curvature(f: KroneckerFactors, damping: float) -> LayerCurvature:
    """K-FAC: ``F = A ⊗ S``; damping ``γ = damping ·`` mean eigenvalue, on each factor."""
    values_s, q_s = guarded_eigh(f.S)
    values_a, q_a = guarded_eigh(f.A)
    inv_s, inv_a = 1.0 / damp(values_s, damping), 1.0 / damp(values_a, damping)

    def solve(c: torch.Tensor) -> torch.Tensor:
        return (q_s * inv_s) @ (q_s.T @ c @ q_a) @ (q_a * inv_a).T

    return LayerCurvature(
        diagonal=torch.outer(torch.diagonal(f.S), torch.diagonal(f.A)),
        inverse_diagonal=torch.outer((q_s**2) @ inv_s, (q_a**2) @ inv_a),
        solve=solve,
    )


def ekfac_curvature(
    q_s: torch.Tensor, q_a: torch.Tensor, values: torch.Tensor, damping: float
) -> LayerCurvature:
    """EKFAC: ``F = (Q_A ⊗ Q_S) diag(Λ*) (Q_A ⊗ Q_S)ᵀ``; ``γ = damping · mean(Λ*)``."""
    inverse = 1.0 / damp(values, damping)

    def solve(c: torch.Tensor) -> torch.Tensor:
        return q_s @ ((q_s.T @ c @ q_a) * inverse) @ q_a.T

    return LayerCurvature(
        diagonal=(q_s**2) @ values @ (q_a**2).T,
        inverse_diagonal=(q_s**2) @ inverse @ (q_a**2).T,
        solve=solve,
    )


def saliency_scores(
    views: dict[str, LayerView], curvature: dict[str, LayerCurvature], saliency: str
) -> dict[str, torch.Tensor]:
    """OBD ``½ w² F_qq`` or OBS ``w² / (2 [F⁻¹]_qq)`` of every weight (weight-shaped)."""
    out = {}
    for name, view in views.items():
        c = curvature[name]
        w2 = view.matrix().double() ** 2
        d = w2.shape[1]
        if saliency == "obd":
            score = 0.5 * w2 * c.diagonal[:, :d]
        else:
            score = w2 / (2.0 * c.inverse_diagonal[:, :d])
        out[name] = view.to_weight(score).to(view.weight.dtype)
    return out


def kfac_scores(
    views: dict[str, LayerView],
    factors: dict[str, KroneckerFactors],
    saliency: str,
    damping: float,
) -> dict[str, torch.Tensor]:
    """K-FAC OBD or OBS saliency of every weight (``views`` keyed like ``factors``)."""
    curvature = {name: kfac_curvature(factors[name], damping) for name in views}
    return saliency_scores(views, curvature, saliency)


@torch.no_grad()
def obs_update(view: LayerView, keep: torch.Tensor, curvature: LayerCurvature) -> None:
    """Apply the sum of the single-weight OBS updates of the removed weights, then zero them.

    ``δθ = −Σ_q (w_q / [F⁻¹]_qq) F⁻¹ e_q`` over the removed ``q``: one solve with the matrix of
    coefficients. It treats the removals as independent (WoodFisher's cheap multi-weight update),
    which over-corrects when removed weights are strongly correlated. (A grouped convolution's
    update is computed on its block-diagonal matrix and kept inside the blocks.)
    """
    matrix = view.matrix().double()
    d = matrix.shape[1]
    full = matrix
    if view.bias is not None:
        full = torch.cat([matrix, view.bias.detach().double()[:, None]], dim=1)
    kept = view.matrix(keep)
    removed = view.matrix(~keep)
    coefficients = torch.zeros_like(full)
    coefficients[:, :d] = torch.where(
        removed, matrix / curvature.inverse_diagonal[:, :d], torch.zeros_like(matrix)
    )
    full = full - curvature.solve(coefficients)
    view.weight.copy_(view.to_weight(full[:, :d] * kept).to(view.weight.dtype))
    if view.bias is not None:
        view.bias.copy_(full[:, d].to(view.weight.dtype))


@METHODS.register("kfac")
class KFACPruning(ScoreMethod):
    """OBD or OBS saliency under K-FAC curvature; OBS also moves the surviving weights.

    Args:
        saliency: ``"obs"`` (single-weight OBS cost, default) or ``"obd"``.
        update: with ``saliency="obs"``, apply the (independent-removal) OBS weight update
            :func:`obs_update` to the survivors and the bias; ignored for ``"obd"``.
        fisher: labels of the output gradients: ``"true"`` (sampled from the model, seeded) or
            ``"empirical"`` (the training labels).
        damping: relative damping ``γ / mean eigenvalue`` of the inverted curvature.
        samples: calibration samples drawn (seeded) from the training data.
        **kwargs: scope, schedule, ... of :class:`ScoreMethod`.
    """

    name = "kfac"
    description = "OBD / OBS saliency (and OBS update) under K-FAC (A ⊗ S) curvature"

    def __init__(
        self,
        saliency: str = "obs",
        update: bool = True,
        fisher: str = "true",
        damping: float = 1e-3,
        samples: int = 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.saliency = check_choice(self.name, "saliency", saliency, SALIENCIES)
        if not isinstance(update, bool):
            raise SpecError(f"{self.name}: update must be true or false; got {update!r}")
        self.update = update
        self.fisher = check_choice(self.name, "fisher", fisher, KFAC_FISHERS)
        self.damping = check_damping(self.name, damping)
        self.samples = check_positive_int(self.name, "samples", samples)
        self._curvature: dict[str, LayerCurvature] = {}

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "saliency": self.saliency,
            "update": self.update,
            "fisher": self.fisher,
            "damping": self.damping,
            "samples": self.samples,
        }

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {
            **super().search_space(trial),
            "saliency": trial.suggest_categorical(f"{cls.name}.saliency", list(SALIENCIES)),
            "fisher": trial.suggest_categorical(f"{cls.name}.fisher", list(KFAC_FISHERS)),
            "damping": trial.suggest_float(f"{cls.name}.damping", 1e-5, 1e-1, log=True),
        }

    def factors(self, model: nn.Module, context: PruningContext) -> dict[str, KroneckerFactors]:
        return kfac_factors(
            model, iter_batches(context, self.samples), self.fisher, context.generator(salt=17)
        )

    def curvature(self, model: nn.Module, context: PruningContext) -> dict[str, LayerCurvature]:
        return {
            name: kfac_curvature(f, self.damping)
            for name, f in self.factors(model, context).items()
        }

    def scores(self, model: nn.Module, context: PruningContext) -> dict[str, torch.Tensor]:
        # Kept for ``remove`` of the same round: the update uses the curvature that ranked.
        self._curvature = self.curvature(model, context)
        return saliency_scores(layer_views(model), self._curvature, self.saliency)

    def remove(self, model: nn.Module, masks: Masks, context: PruningContext) -> Masks:
        if self.saliency != "obs" or not self.update or not self._curvature:
            return super().remove(model, masks, context)
        views = layer_views(model)
        for name, keep in masks.items():
            obs_update(views[name], keep, self._curvature[name])
        self._curvature = {}
        return masks


@METHODS.register("ekfac")
class EKFACPruning(KFACPruning):
    """OBD or OBS saliency under EKFAC: K-FAC's eigenbasis with re-fitted eigenvalues."""

    name = "ekfac"
    description = "OBD / OBS saliency (and OBS update) under EKFAC (re-fitted eigenvalues)"

    def curvature(self, model: nn.Module, context: PruningContext) -> dict[str, LayerCurvature]:
        factors = self.factors(model, context)
        bases = {name: (guarded_eigh(f.S)[1], guarded_eigh(f.A)[1]) for name, f in factors.items()}
        values = ekfac_eigenvalues(
            model,
            iter_batches(context, self.samples, salt=8),
            bases,
            self.fisher,
            context.generator(salt=19),
        )
        return {name: ekfac_curvature(*bases[name], values[name], self.damping) for name in bases}
