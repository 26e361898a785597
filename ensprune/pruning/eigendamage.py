"""EigenDamage: structured pruning in the Kronecker-factored eigenbasis (Wang et al. 2019).

Each Linear / Conv layer ``z = W a`` (``W`` its ``(out, d)`` matrix, a convolution unfolded to
``d = in · kernel``) has K-FAC factors ``A = E[a aᵀ]`` and ``S = E[g gᵀ]``
(:func:`~ensprune.pruning._curvature.kfac_factors`). With the eigendecompositions
``A = Q_A Λ_A Q_Aᵀ`` and ``S = Q_S Λ_S Q_Sᵀ`` (``torch.linalg.eigh`` on the symmetrised factor,
eigenvalues clamped at 0 and damped by ``damping ·`` their mean), the rotated weight
``W* = Q_Sᵀ W Q_A`` sees a diagonal curvature, so OBD is exact there: removing entry ``W*_ij``
costs ``½ λ_S,i λ_A,j W*_ij²`` (``eigenvalues="ekfac"``: EKFAC's re-fitted ``Λ*_ij`` instead of
the product). An input eigen-direction ``j`` (a column of ``W*``) is scored by the sum of its
entries' costs, an output direction ``i`` (a row) likewise; directions are removed network-wide,
cheapest first, until the network holds ``1 − sparsity`` of its prunable weights.

A layer keeping ``r_in`` input and ``r_out`` output directions is rebuilt as three layers,
``W ≈ Q_S[:, I] · W*[I, J] · Q_A[:, J]ᵀ``: a projection onto the kept input directions (the
layer's own kernel, stride and padding; ``r_in · d`` weights), a ``r_out × r_in`` core (a 1x1
convolution for convolutions) and the projection back to the output space (``out · r_out``,
carrying the layer's bias). That costs ``r_in · d + r_in · r_out + r_out · out`` weights and is
done only when it is fewer than ``out · d``: the budget counts a layer at its dense size until then,
and a layer whose kept directions never make it smaller is left exactly as it was (a same-size
reconstruction in the eigenbasis would lose accuracy and remove nothing). Rebuilt networks are
physically smaller; ``info`` reports the realised sparsity, which can fall short of the target
when every layer is down to one direction per side, or overshoot it by one direction's worth.

The bias stays out of the eigenbasis (``A`` without its bias row, the bias on the last factor),
so without pruning the rebuilt layer computes the original one exactly (up to rounding). Grouped
convolutions and layers outside ``context.layers`` are left alone; the classifier head keeps all
its output directions while ``context.layers.protect_head`` is set (its logits keep full rank).
With ``context.finetune.epochs > 0`` the rebuilt network is fine-tuned, as in the paper.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ensprune.models.edits import apply_edit
from ensprune.models.measure import count_parameters
from ensprune.pruning._base import (
    METHODS,
    PruningContext,
    PruningMethod,
    PruningResult,
    check_sparsity,
)
from ensprune.pruning._curvature import (
    KFAC_FISHERS,
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
from ensprune.pruning._factorise import weight_sparsity
from ensprune.pruning._layers import example_input, head_name
from ensprune.pruning.finetune import finetune

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)
EIGENVALUES = ("kfac", "ekfac")


@dataclass
class Eigenbasis:
    """One layer in its Kronecker eigenbasis.

    Attributes:
        q_s: ``(out, out)`` eigenvectors of ``S`` (columns).
        q_a: ``(d, d)`` eigenvectors of ``A`` without the bias coordinate (columns).
        rotated: ``W* = Q_Sᵀ W Q_A``, ``(out, d)``, float64.
        costs: OBD cost of each entry of ``rotated`` in the eigenbasis, ``(out, d)``.
    """

    q_s: torch.Tensor
    q_a: torch.Tensor
    rotated: torch.Tensor
    costs: torch.Tensor

    def reconstruct(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """``Q_S[:, I] W*[I, J] Q_A[:, J]ᵀ``: the weight matrix from the kept directions only."""
        return self.q_s[:, rows] @ self.rotated[rows][:, cols] @ self.q_a[:, cols].T


def rotate(view: LayerView, q_s: torch.Tensor, q_a: torch.Tensor) -> torch.Tensor:
    """``Q_Sᵀ W Q_A`` of a layer's ``(out, d)`` weight matrix, float64."""
    return q_s.T @ view.matrix().double() @ q_a


def three_layer_cost(rank_in: int, rank_out: int, d: int, out: int) -> int:
    """Weights of the rebuilt layer: projection ``r_in · d``, core, back-projection ``out · r_out``."""
    return rank_in * d + rank_in * rank_out + rank_out * out


@dataclass
class _Ranks:
    """Directions a layer keeps while the budget is filled."""

    rank_in: int
    rank_out: int
    d: int
    out: int

    @property
    def dense(self) -> int:
        return self.out * self.d

    def rebuilt_cost(self) -> int:
        return three_layer_cost(self.rank_in, self.rank_out, self.d, self.out)

    def cost(self) -> int:
        """What the layer costs in the network: rebuilt only when that is smaller."""
        return min(self.dense, self.rebuilt_cost())

    def smaller(self) -> bool:
        return self.rebuilt_cost() < self.dense


@torch.no_grad()
def install_eigen_factors(
    model: nn.Module, module_name: str, basis: Eigenbasis, rows: torch.Tensor, cols: torch.Tensor
) -> None:
    """Replace ``module_name`` by its three-layer factorisation on the kept directions."""
    old = model.get_submodule(module_name)
    weight = old.weight
    bias = getattr(old, "bias", None)
    assert isinstance(weight, torch.Tensor)
    new = apply_edit(
        model,
        {
            "op": "eigenbasis",
            "name": module_name,
            "rank_in": int(cols.numel()),
            "rank_out": int(rows.numel()),
        },
    )
    assert isinstance(new, nn.Sequential)
    weights = (basis.q_a[:, cols].T, basis.rotated[rows][:, cols], basis.q_s[:, rows])
    for module, matrix in zip(new, weights, strict=True):
        assert isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d))
        module.weight.copy_(matrix.reshape(module.weight.shape).to(weight.dtype))
    back = new[-1]
    if isinstance(bias, torch.Tensor) and isinstance(back.bias, torch.Tensor):
        back.bias.copy_(bias.detach())


@METHODS.register("eigendamage")
class EigenDamagePruning(PruningMethod):
    """Prune eigen-directions of K-FAC's Kronecker eigenbasis; rebuild layers that get smaller.

    Args:
        eigenvalues: ``"kfac"`` (``λ_S,i λ_A,j``, default) or ``"ekfac"`` (re-fitted in the
            eigenbasis from per-sample gradients: one more pass over the calibration samples).
        fisher: labels of the output gradients: ``"true"`` (sampled from the model, seeded) or
            ``"empirical"`` (the training labels).
        damping: added to each factor's eigenvalues, relative to their mean.
        samples: calibration samples drawn (seeded) from the training data.
    """

    name = "eigendamage"
    description = (
        "EigenDamage: prune directions of K-FAC's eigenbasis, rebuild layers as 3 smaller ones"
    )
    structured = True
    replaces_modules = True

    def __init__(
        self,
        eigenvalues: str = "kfac",
        fisher: str = "true",
        damping: float = 1e-3,
        samples: int = 1024,
    ) -> None:
        self.eigenvalues = check_choice(self.name, "eigenvalues", eigenvalues, EIGENVALUES)
        self.fisher = check_choice(self.name, "fisher", fisher, KFAC_FISHERS)
        self.damping = check_damping(self.name, damping)
        self.samples = check_positive_int(self.name, "samples", samples)

    def params(self) -> dict[str, Any]:
        return {
            "eigenvalues": self.eigenvalues,
            "fisher": self.fisher,
            "damping": self.damping,
            "samples": self.samples,
        }

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {
            "eigenvalues": trial.suggest_categorical(f"{cls.name}.eigenvalues", list(EIGENVALUES)),
            "fisher": trial.suggest_categorical(f"{cls.name}.fisher", list(KFAC_FISHERS)),
            "damping": trial.suggest_float(f"{cls.name}.damping", 1e-5, 1e-1, log=True),
        }

    def eigenbases(self, model: nn.Module, context: PruningContext) -> dict[str, Eigenbasis]:
        """Every ungrouped prunable layer the context selects, in its Kronecker eigenbasis."""
        selected = set(context.prunable(model))
        views = {
            name: view
            for name, view in layer_views(model).items()
            if name in selected and view.groups == 1
        }
        factors = kfac_factors(
            model, iter_batches(context, self.samples), self.fisher, context.generator(salt=17)
        )
        out: dict[str, Eigenbasis] = {}
        refit: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, view in views.items():
            f = factors[name]
            d = view.matrix().shape[1]
            values_s, q_s = guarded_eigh(f.S)
            values_a, q_a = guarded_eigh(f.A[:d, :d])  # the bias stays out of the basis
            costs = torch.outer(damp(values_s, self.damping), damp(values_a, self.damping))
            out[name] = Eigenbasis(q_s, q_a, rotate(view, q_s, q_a), costs)
            if f.bias:  # EKFAC's pass sees the bias's 1 too: give it its own basis vector
                q_a = torch.block_diag(q_a, torch.ones(1, 1, dtype=q_a.dtype))
            refit[name] = (q_s, q_a)
        if self.eigenvalues == "ekfac":
            values = ekfac_eigenvalues(
                model,
                iter_batches(context, self.samples, salt=8),
                refit,
                self.fisher,
                context.generator(salt=19),
            )
            for name, basis in out.items():
                fitted = values[name][:, : basis.q_a.shape[0]]
                basis.costs = damp(fitted.flatten(), self.damping).reshape(fitted.shape)
        for basis in out.values():
            basis.costs = 0.5 * basis.costs * basis.rotated**2
        return out

    def prune(self, model: nn.Module, sparsity: float, context: PruningContext) -> PruningResult:
        target = check_sparsity(sparsity)
        pruned = copy.deepcopy(model)
        dense = count_parameters(model).prunable
        bases = self.eigenbases(pruned, context)
        head = (
            head_name(pruned, example_input(pruned, context.x_train))
            if context.layers.protect_head
            else None
        )
        keep = _choose_directions(bases, head, dense, target)
        rebuilt: dict[str, dict[str, int]] = {}
        for name, (rows, cols) in keep.items():
            basis = bases[name]
            out, d = basis.rotated.shape
            ranks = _Ranks(int(cols.numel()), int(rows.numel()), d, out)
            if not ranks.smaller():
                continue
            install_eigen_factors(
                pruned, name.removesuffix("weight").removesuffix("."), basis, rows, cols
            )
            rebuilt[name.removesuffix(".weight")] = {
                "rank_in": ranks.rank_in,
                "rank_out": ranks.rank_out,
                "weights_before": ranks.dense,
                "weights_after": ranks.rebuilt_cost(),
            }
        info: dict[str, Any] = {
            "target_sparsity": target,
            "prunable_before": dense,
            "prunable_after": count_parameters(pruned).prunable,
            "rebuilt": rebuilt,
            "left_alone": sorted(
                n.removesuffix(".weight") for n in bases if n.removesuffix(".weight") not in rebuilt
            ),
        }
        if context.finetune.epochs > 0:
            history = finetune(pruned, {}, context.with_teacher(model), desc=self.name)
            info["finetune_epochs"] = history.epochs_run
        # Measured after fine-tuning: exact zeros (e.g. eigenvectors of a dead unit) count until then.
        info["sparsity"] = weight_sparsity(pruned, dense)
        if info["sparsity"] < target - 0.01:
            log.warning(
                "eigendamage reached %.1f%% sparsity of the %.1f%% asked: every prunable layer is "
                "down to its fewest directions",
                100 * info["sparsity"],
                100 * target,
            )
        return PruningResult(pruned, info=info)


def _choose_directions(
    bases: dict[str, Eigenbasis], head: str | None, dense: int, target: float
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Kept (output rows, input columns) of every layer: cheapest directions out first.

    Directions of every layer are ranked together by their summed OBD cost; each layer keeps at
    least one direction per side (the head all its output directions when protected). Removal
    stops once the network, counting each layer at ``min(dense, rebuilt)``, fits the budget.
    """
    ranks: dict[str, _Ranks] = {}
    candidates: list[tuple[float, str, int, int]] = []  # (cost, layer, side 0=row 1=col, index)
    for name, basis in bases.items():
        out, d = basis.rotated.shape
        ranks[name] = _Ranks(d, out, d, out)
        if name != head:
            candidates += [(float(c), name, 0, i) for i, c in enumerate(basis.costs.sum(1))]
        candidates += [(float(c), name, 1, j) for j, c in enumerate(basis.costs.sum(0))]
    candidates.sort(
        key=lambda c: (c[0], c[1], c[2], c[3])
    )  # ties broken by position: deterministic
    budget = round((1 - target) * dense)
    total = dense
    removed: dict[str, tuple[set[int], set[int]]] = {name: (set(), set()) for name in bases}
    for _, name, side, index in candidates:
        if total <= budget:
            break
        r = ranks[name]
        if (r.rank_out if side == 0 else r.rank_in) <= 1:
            continue
        before = r.cost()
        if side == 0:
            r.rank_out -= 1
        else:
            r.rank_in -= 1
        removed[name][side].add(index)
        total += r.cost() - before
    keep = {}
    for name, basis in bases.items():
        out, d = basis.rotated.shape
        rows_gone, cols_gone = removed[name]
        rows = torch.tensor([i for i in range(out) if i not in rows_gone], dtype=torch.long)
        cols = torch.tensor([j for j in range(d) if j not in cols_gone], dtype=torch.long)
        keep[name] = (rows, cols)
    return keep
