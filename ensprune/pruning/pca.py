"""PCA of hidden activations, folded into the next layer: ``h ≈ μ + U_k U_kᵀ (h − μ)``.

For every Linear layer fed by a hidden layer (its input is a post-activation, possibly
flattened, never the network's input), the covariance of that input over calibration samples
is decomposed and the ``k`` leading components kept. The layer ``y = W h + b`` becomes a
projection ``z = U_kᵀ h − U_kᵀ μ`` (``k`` outputs) followed by ``y = (W U_k) z + (b + W μ)``:
exact when ``h`` lies in the span, and physically smaller when ``k (h + out) < h · out``
(otherwise the layer is left alone). The layer producing ``h`` keeps its width: a nonlinearity
sits in between, so only the next layer can absorb the projection.

``k``: with ``variance`` set, the fewest components explaining that share of the input's
variance; unset, components are kept network-wide by their share of variance within the
parameter budget of ``sparsity`` (share of prunable weights to remove).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.models.measure import count_parameters
from ensprune.pruning._base import (
    METHODS,
    PruningContext,
    PruningMethod,
    PruningResult,
    check_sparsity,
)
from ensprune.pruning._curvature import (
    Recorder,
    check_positive_int,
    guarded_eigh,
    iter_batches,
    layer_views,
)
from ensprune.pruning._factorise import (
    Candidate,
    install_factors,
    rank_for_share,
    ranks_for_budget,
    weight_sparsity,
)
from ensprune.pruning.lowrank import check_share

if TYPE_CHECKING:
    import optuna

# Below this share of shrinkable weights pca refuses: it could not change the network materially.
MIN_SHRINKABLE_SHARE = 0.05


@torch.no_grad()
def hidden_input_moments(
    model: nn.Module, context: PruningContext, samples: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(mean, covariance) of the input of every Linear layer fed by a hidden layer, float64."""
    views = {n: v for n, v in layer_views(model).items() if isinstance(v.module, nn.Linear)}
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    fed_by_input: set[str] = set()
    rows: dict[str, int] = {}
    was = model.training
    model.eval()
    try:
        with Recorder(views, grads=False) as rec:
            for x, _ in iter_batches(context, samples):
                model(x)
                for name, view in views.items():
                    h = rec.inputs[name]
                    if h.data_ptr() == x.data_ptr():
                        fed_by_input.add(name)  # raw inputs, not a hidden layer's outputs
                    h = h.reshape(-1, view.matrix().shape[1]).double()
                    sums[name] = sums[name] + h.sum(0) if name in sums else h.sum(0)
                    squares[name] = squares[name] + h.T @ h if name in squares else h.T @ h
                    rows[name] = rows.get(name, 0) + h.shape[0]
    finally:
        model.train(was)
    out = {}
    for name in views:
        if name in fed_by_input or name not in sums:
            continue
        mean = sums[name] / rows[name]
        out[name] = (mean, squares[name] / rows[name] - torch.outer(mean, mean))
    return out


@METHODS.register("pca")
class PCAProjection(PruningMethod):
    """Keep the principal components of hidden activations; fold them into the next layer.

    Args:
        variance: share of each input's variance to keep (e.g. 0.95); unset (default): the
            number of components follows the target parameter count.
        samples: calibration samples (seeded) the covariances are estimated from.
    """

    name = "pca"
    description = "PCA of hidden activations, projection folded into the next Linear layer"
    structured = True
    replaces_modules = True

    def __init__(self, variance: float | None = None, samples: int = 2048) -> None:
        self.variance = check_share(self.name, "variance", variance)
        self.samples = check_positive_int(self.name, "samples", samples)

    def params(self) -> dict[str, Any]:
        return {"variance": self.variance, "samples": self.samples}

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Nothing: the components follow the trial's sparsity (``variance`` fixed in the spec)."""
        return {}

    @torch.no_grad()
    def prune(self, model: nn.Module, sparsity: float, context: PruningContext) -> PruningResult:
        target = check_sparsity(sparsity)
        pruned = copy.deepcopy(model)
        dense = count_parameters(model).prunable
        moments = hidden_input_moments(pruned, context, self.samples)
        if not moments:
            raise SpecError(
                f"pca needs a Linear layer fed by a hidden layer's outputs; this "
                f"{type(model).__name__} has none (its Linear layers read the network input "
                "or there are no Linear layers): use lowrank instead"
            )
        views = layer_views(pruned)
        shrinkable = sum(views[name].weight.numel() for name in moments) / dense
        if shrinkable < MIN_SHRINKABLE_SHARE:
            raise SpecError(
                f"pca can shrink only Linear layers fed by a hidden layer, and in this "
                f"{type(model).__name__} they hold {shrinkable:.1%} of the prunable weights (the "
                "rest are convolutions or read the network input): use lowrank instead"
            )
        bases = {}
        candidates = []
        for name, (_, cov) in moments.items():
            values, vectors = guarded_eigh(cov)
            values, vectors = values.flip(0), vectors.flip(1)  # descending
            bases[name] = vectors
            share = values / max(float(values.sum()), 1e-300)
            out, width = views[name].matrix().shape
            candidates.append(Candidate(name, share, out + width, out * width))
        if self.variance is not None:
            ranks = {
                c.name: r
                for c in candidates
                if c.smaller(r := rank_for_share(c.values, self.variance))
            }
        else:
            fixed = dense - sum(c.dense for c in candidates)
            ranks = ranks_for_budget(candidates, round((1 - target) * dense) - fixed)
        for name, k in ranks.items():
            mean, _ = moments[name]
            basis = bases[name][:, :k]  # U_k, (h, k)
            weight = views[name].matrix().double()
            bias = views[name].bias
            b = torch.zeros(weight.shape[0], dtype=torch.float64) if bias is None else bias.double()
            install_factors(
                pruned,
                name.removesuffix("weight").removesuffix("."),
                (basis.T, -(basis.T @ mean)),
                (weight @ basis, b + weight @ mean),
            )
        return PruningResult(
            pruned,
            info={
                "sparsity": weight_sparsity(pruned, dense),
                "components": {name.removesuffix(".weight"): k for name, k in ranks.items()},
            },
        )
