"""Curvature of a network's loss, for second-order pruning: one place for every estimate.

Every prunable layer (``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d``) is seen as a matrix product
``z = W a`` applied at ``L`` positions per sample: ``W`` is the weight reshaped to
``(out, in · kernel)``, ``a`` the unfolded input patch (a Linear layer has one position per
sample). Works on any ``nn.Module``: layers are found through
:func:`~ensprune.models.measure.prunable_parameters` and observed with forward hooks.

Estimates (all of the mean cross-entropy over calibration samples):

- :func:`fisher_diagonal`: the diagonal of the *empirical* Fisher (per-sample gradients at the
  true labels), of the *true* Fisher (labels sampled from the model's own softmax, seeded) or a
  Hutchinson estimate ``E[v ⊙ Hv]`` of the Hessian diagonal (Rademacher ``v``).
- :func:`kfac_factors`: K-FAC's ``A = E[a aᵀ]`` (inputs, bias as an appended 1) and
  ``S = E[g gᵀ]`` (per-sample output gradients), ``F ≈ A ⊗ S``; convolutions follow KFC
  (``A`` averaged over positions, ``S`` summed over them).
- :func:`ekfac_eigenvalues`: EKFAC's re-fitted eigenvalues, the second moments of per-sample
  gradients rotated into the Kronecker eigenbasis ``(Q_S, Q_A)``.
- :func:`layer_input_hessian`: ``H = 2 X Xᵀ / n`` of one layer's inputs (the Hessian of its
  squared reconstruction error), the curvature of layer-wise OBS.

Eigen-decompositions go through :func:`guarded_eigh`: symmetrised, in float64, eigenvalues clamped
at zero, so a factor that is singular (dead ReLUs, constant pixels) never yields NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ensprune.data.batching import as_batch_source
from ensprune.errors import DataError, SpecError
from ensprune.models.measure import prunable_parameters
from ensprune.pruning._base import PruningContext

FISHERS = ("empirical", "true", "hutchinson")
KFAC_FISHERS = ("empirical", "true")
CURVATURE_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)


def check_choice(who: str, knob: str, value: object, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else a :class:`SpecError` naming them."""
    if value not in choices:
        raise SpecError(f"{who}: {knob} must be one of {', '.join(choices)}; got {value!r}")
    return str(value)


def check_positive_int(who: str, knob: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{who}: {knob} must be an integer >= 1; got {value!r}")
    return value


def check_damping(who: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e3:
        raise SpecError(
            f"{who}: damping must be a positive number (relative to the mean curvature, "
            f"e.g. 1e-3); got {value!r}"
        )
    return float(value)


# ---------------------------------------------------------------------------------------------
# Layers as matrix products


@dataclass(frozen=True)
class LayerView:
    """A prunable layer seen as ``z = W a`` at ``L`` positions per sample.

    Attributes:
        name: the weight's key in ``prunable_parameters`` (``"0.weight"``).
        module: the layer.
    """

    name: str
    module: nn.Module

    @property
    def weight(self) -> torch.Tensor:
        weight = self.module.weight
        assert isinstance(weight, torch.Tensor)
        return weight

    @property
    def bias(self) -> torch.Tensor | None:
        bias = getattr(self.module, "bias", None)
        return bias if isinstance(bias, torch.Tensor) else None

    @property
    def has_bias(self) -> bool:
        return self.bias is not None

    @property
    def groups(self) -> int:
        return int(getattr(self.module, "groups", 1))

    def matrix(self, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The weight as ``(out, in · kernel)``, columns ordered like :meth:`patches`.

        A grouped convolution's weight is spread block-diagonally (zeros where an output
        channel does not read an input channel), so every layer is one dense matrix product.
        """
        w = (self.weight if weight is None else weight).detach()
        out = w.shape[0]
        if self.groups == 1:
            return w.reshape(out, -1)
        per_group = w[0].numel()
        full = torch.zeros(out, self.groups, per_group, dtype=w.dtype)
        full[torch.arange(out), self.group_of_rows()] = w.reshape(out, per_group)
        return full.reshape(out, -1)

    def group_of_rows(self) -> torch.Tensor:
        """The group each output row belongs to."""
        out = self.weight.shape[0]
        return torch.arange(out) // (out // self.groups)

    def group_columns(self, group: int) -> slice:
        """The columns of :meth:`matrix` (and :meth:`patches`) that ``group`` reads."""
        per_group = self.weight[0].numel()
        return slice(group * per_group, (group + 1) * per_group)

    def to_weight(self, matrix: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`matrix`: the weight-shaped entries of an ``(out, in · kernel)`` matrix."""
        out = self.weight.shape[0]
        if self.groups == 1:
            return matrix.reshape(self.weight.shape)
        blocks = matrix.reshape(out, self.groups, -1)[torch.arange(out), self.group_of_rows()]
        return blocks.reshape(self.weight.shape)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's input ``x`` as ``(N, L, in · kernel)`` patches."""
        m = self.module
        if isinstance(m, nn.Linear):
            return x.reshape(x.shape[0], -1, x.shape[-1])
        if isinstance(m, nn.Conv2d):
            cols = F.unfold(x, m.kernel_size, m.dilation, m.padding, m.stride)  # type: ignore[arg-type]
            return cols.transpose(1, 2)
        assert isinstance(m, nn.Conv1d)
        cols = F.unfold(
            x.unsqueeze(2),
            (1, m.kernel_size[0]),
            dilation=(1, m.dilation[0]),
            padding=(0, int(m.padding[0])),
            stride=(1, m.stride[0]),
        )
        return cols.transpose(1, 2)

    def output_grads(self, g: torch.Tensor) -> torch.Tensor:
        """The gradient w.r.t. the layer's output as ``(N, L, out)``."""
        if isinstance(self.module, nn.Linear):
            return g.reshape(g.shape[0], -1, g.shape[-1])
        return g.flatten(2).transpose(1, 2)


def layer_views(model: nn.Module) -> dict[str, LayerView]:
    """Every prunable layer of ``model`` by weight name; refuses layers the maths does not cover.

    Raises:
        SpecError: a grouped/depthwise convolution or one with non-zero padding modes.
    """
    views = {}
    for name in prunable_parameters(model):
        module_name = name.removesuffix("weight").removesuffix(".")
        module = model.get_submodule(module_name)
        if not isinstance(module, CURVATURE_LAYERS):
            raise SpecError(
                f"second-order pruning handles Linear, Conv1d and Conv2d layers; {name!r} "
                f"belongs to a {type(module).__name__}"
            )
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            if module.padding_mode != "zeros":
                raise SpecError(
                    f"second-order pruning needs zero-padded convolutions; {name!r} has "
                    f"padding_mode={module.padding_mode!r}"
                )
            if isinstance(module.padding, str):
                raise SpecError(
                    f"second-order pruning needs numeric conv padding; {name!r} has "
                    f"padding={module.padding!r}"
                )
        views[name] = LayerView(name, module)
    return views


# ---------------------------------------------------------------------------------------------
# Calibration data and recording


def iter_batches(
    context: PruningContext, samples: int, batch_size: int = 256, salt: int = 7
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Up to ``samples`` training examples (a subset seeded from the context), in batches."""
    # arrays, a Dataset or a DataLoader (ensprune.data.batching): the same seeded subset of each
    source = as_batch_source(context.x_train, context.y_train, "calibration data")
    n = len(source)
    rng = np.random.default_rng(context.seed * 1_000_003 + salt)
    index = np.sort(rng.permutation(n)[: min(samples, n)])
    for x, y in source.take(index.tolist()).ordered(batch_size):
        if y is None:
            raise DataError("calibration data needs labels: (input, label) samples or y arrays")
        yield x, y


class Recorder:
    """Forward hooks keeping each layer's input and (after backward) its output gradient."""

    def __init__(self, views: dict[str, LayerView], grads: bool = True) -> None:
        self.views = views
        self.inputs: dict[str, torch.Tensor] = {}
        self.grads: dict[str, torch.Tensor] = {}
        self._handles = [
            view.module.register_forward_hook(self._hook(name, grads))
            for name, view in views.items()
        ]

    def _hook(self, name: str, grads: bool) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            self.inputs[name] = inputs[0].detach()
            if grads and output.requires_grad:

                def keep(g: torch.Tensor) -> None:
                    self.grads[name] = g.detach()

                output.register_hook(keep)

        return hook

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sampled_labels(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Labels drawn from the model's own predictive distribution (the true Fisher's labels)."""
    probs = torch.softmax(logits.detach().double(), dim=1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def _backward_per_sample(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    fisher: str,
    generator: torch.Generator,
) -> None:
    """One forward/backward whose output gradients are per-sample loss gradients."""
    logits = model(x)
    labels = y if fisher == "empirical" else sampled_labels(logits, generator)
    # Summed (not averaged) loss: the gradient at each sample's output is that sample's own.
    F.cross_entropy(logits, labels, reduction="sum").backward()


def _eval_mode(model: nn.Module) -> Callable[[], None]:
    """Put ``model`` in eval mode (curvature of the deployed network); returns the undo."""
    was = model.training
    model.eval()

    def undo() -> None:
        model.train(was)

    return undo


# ---------------------------------------------------------------------------------------------
# Diagonal Fisher / Hessian


def fisher_diagonal(
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    kind: str,
    generator: torch.Generator,
    probes: int = 8,
) -> dict[str, torch.Tensor]:
    """Diagonal curvature of the mean loss, one tensor per prunable weight (its shape).

    Args:
        kind: ``"empirical"`` (mean squared per-sample gradient at the true labels), ``"true"``
            (the same at labels sampled from the model's softmax with ``generator``) or
            ``"hutchinson"`` (``E[v ⊙ Hv]`` with ``probes`` Rademacher vectors per batch, an
            unbiased estimate of the Hessian diagonal; entries may come out negative).
    """
    check_choice("fisher_diagonal", "kind", kind, FISHERS)
    views = layer_views(model)
    total = {name: torch.zeros_like(v.weight, dtype=torch.float64) for name, v in views.items()}
    count = 0
    undo = _eval_mode(model)
    try:
        for x, y in batches:
            if kind == "hutchinson":
                _hutchinson_batch(model, views, x, y, generator, probes, total)
                count += 1
                continue
            with Recorder(views) as rec:
                model.zero_grad(set_to_none=True)
                _backward_per_sample(model, x, y, kind, generator)
            for name, view in views.items():
                a = view.patches(rec.inputs[name]).double()
                g = view.output_grads(rec.grads[name]).double()
                total[name] += view.to_weight(_per_sample_grad_squares(a, g))
            count += x.shape[0]
    finally:
        model.zero_grad(set_to_none=True)
        undo()
    return {
        name: (total[name] / max(count, 1)).to(view.weight.dtype) for name, view in views.items()
    }


def _per_sample_grad_squares(a: torch.Tensor, g: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Σ_n (∇_W ℓ_n)² for ``∇_W ℓ_n = Σ_l g_nl a_nlᵀ`` (shapes (N, L, d) and (N, L, out))."""
    if a.shape[1] == 1:  # no weight sharing: the square factorises
        return (g[:, 0] ** 2).T @ (a[:, 0] ** 2)
    out = torch.zeros(g.shape[2], a.shape[2], dtype=a.dtype)
    for start in range(0, a.shape[0], chunk):
        per_sample = torch.einsum(
            "nlo,nld->nod", g[start : start + chunk], a[start : start + chunk]
        )
        out += (per_sample**2).sum(0)
    return out


def _hutchinson_batch(
    model: nn.Module,
    views: dict[str, LayerView],
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    probes: int,
    total: dict[str, torch.Tensor],
) -> None:
    weights = [view.weight for view in views.values()]
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, weights, create_graph=True)
    for p in range(probes):
        vs = [
            torch.randint(0, 2, w.shape, generator=generator).to(w.dtype) * 2 - 1 for w in weights
        ]
        hvs = torch.autograd.grad(grads, weights, grad_outputs=vs, retain_graph=p < probes - 1)
        for name, v, hv in zip(views, vs, hvs, strict=True):
            total[name] += (v * hv).detach().reshape(total[name].shape).double() / probes


# ---------------------------------------------------------------------------------------------
# K-FAC and EKFAC


@dataclass
class KroneckerFactors:
    """K-FAC factors of one layer: ``F ≈ A ⊗ S`` for the weight matrix (and bias column).

    Attributes:
        A: ``E[a aᵀ]`` of input patches, ``(d + 1, d + 1)`` with the bias's constant 1 appended
            when the layer has a bias, else ``(d, d)``; float64.
        S: ``E[g gᵀ]`` of per-sample output gradients, ``(out, out)``; float64.
        bias: whether ``A`` carries the bias row/column (last).
    """

    A: torch.Tensor
    S: torch.Tensor
    bias: bool


def _augment(a: torch.Tensor, bias: bool) -> torch.Tensor:
    if not bias:
        return a
    return torch.cat([a, torch.ones(*a.shape[:-1], 1, dtype=a.dtype)], dim=-1)


def kfac_factors(
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    fisher: str,
    generator: torch.Generator,
) -> dict[str, KroneckerFactors]:
    """K-FAC factors of every prunable layer (``fisher``: ``"empirical"`` or ``"true"``)."""
    check_choice("kfac_factors", "fisher", fisher, KFAC_FISHERS)
    views = layer_views(model)
    sums_a: dict[str, torch.Tensor] = {}
    sums_s: dict[str, torch.Tensor] = {}
    positions: dict[str, int] = {}
    samples = 0
    undo = _eval_mode(model)
    try:
        for x, y in batches:
            with Recorder(views) as rec:
                model.zero_grad(set_to_none=True)
                _backward_per_sample(model, x, y, fisher, generator)
            for name, view in views.items():
                a = _augment(view.patches(rec.inputs[name]).double(), view.has_bias)
                g = view.output_grads(rec.grads[name]).double()
                a2, g2 = a.reshape(-1, a.shape[-1]), g.reshape(-1, g.shape[-1])
                sums_a[name] = sums_a[name] + a2.T @ a2 if name in sums_a else a2.T @ a2
                sums_s[name] = sums_s[name] + g2.T @ g2 if name in sums_s else g2.T @ g2
                positions[name] = positions.get(name, 0) + a2.shape[0]
            samples += x.shape[0]
    finally:
        model.zero_grad(set_to_none=True)
        undo()
    if samples == 0:
        raise SpecError("K-FAC needs at least one calibration sample; the training set is empty")
    # KFC: A averaged over samples and positions, S summed over positions and averaged over
    # samples; a Linear layer has one position per sample, so both are plain sample means.
    return {
        name: KroneckerFactors(
            A=_sym(sums_a[name] / positions[name]),
            S=_sym(sums_s[name] / samples),
            bias=view.has_bias,
        )
        for name, view in views.items()
    }


def _sym(m: torch.Tensor) -> torch.Tensor:
    return (m + m.T) / 2


def guarded_eigh(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending, clamped at 0) and eigenvectors of a symmetric PSD estimate."""
    values, vectors = torch.linalg.eigh(_sym(m.double()))
    return values.clamp_min(0.0), vectors


def damp(values: torch.Tensor, damping: float) -> torch.Tensor:
    """``values + damping · mean(values)`` (a tiny floor keeps an all-zero factor invertible)."""
    mean = float(values.mean()) if values.numel() else 0.0
    return values + damping * max(mean, 1e-12)


def damped_inverse_diagonal(m: torch.Tensor, damping: float) -> torch.Tensor:
    """``diag((M + γ I)⁻¹)`` with ``γ = damping · mean eigenvalue``, through :func:`guarded_eigh`."""
    values, vectors = guarded_eigh(m)
    return (vectors**2) @ (1.0 / damp(values, damping))


def ekfac_eigenvalues(
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    bases: dict[str, tuple[torch.Tensor, torch.Tensor]],
    fisher: str,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """EKFAC's eigenvalues ``E[(Q_Sᵀ ∇_W ℓ Q_A)²]``, shape ``(out, d[+1])`` per layer.

    Args:
        bases: ``(Q_S, Q_A)`` per layer (eigenvectors of the K-FAC factors, ``Q_A`` including the
            bias coordinate when ``A`` does).
    """
    check_choice("ekfac_eigenvalues", "fisher", fisher, KFAC_FISHERS)
    views = layer_views(model)
    total: dict[str, torch.Tensor] = {}
    samples = 0
    undo = _eval_mode(model)
    try:
        for x, y in batches:
            with Recorder(views) as rec:
                model.zero_grad(set_to_none=True)
                _backward_per_sample(model, x, y, fisher, generator)
            for name, view in views.items():
                q_s, q_a = bases[name]
                a = _augment(view.patches(rec.inputs[name]).double(), view.has_bias) @ q_a
                g = view.output_grads(rec.grads[name]).double() @ q_s
                squares = _per_sample_grad_squares(a, g)
                total[name] = total[name] + squares if name in total else squares
            samples += x.shape[0]
    finally:
        model.zero_grad(set_to_none=True)
        undo()
    return {name: t / max(samples, 1) for name, t in total.items()}


# ---------------------------------------------------------------------------------------------
# Layer-wise (OBC) curvature


@dataclass
class InputMoments:
    """Second moments of one layer's input patches (bias's 1 appended), float64.

    Attributes:
        hessian: ``H = 2 X Xᵀ / n`` of the inputs the layer sees in the (partly pruned) model:
            the Hessian of its squared reconstruction error, the same for every output row.
        cross: ``2 X_ref X̃ᵀ / n`` with ``X_ref`` the inputs of the same layer in a reference
            model (before pruning) on the same samples; ``None`` without a reference.
    """

    hessian: torch.Tensor
    cross: torch.Tensor | None


def layer_input_moments(
    model: nn.Module,
    name: str,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    reference: nn.Module | None = None,
) -> InputMoments:
    """:class:`InputMoments` of layer ``name`` (a ``prunable_parameters`` key) on ``batches``."""
    view = layer_views(model)[name]
    ref_view = layer_views(reference)[name] if reference is not None else None
    hessian: torch.Tensor | None = None
    cross: torch.Tensor | None = None
    n = 0
    undo = _eval_mode(model)
    undo_ref = _eval_mode(reference) if reference is not None else None
    try:
        with Recorder({name: view}, grads=False) as rec, torch.no_grad():
            ref_rec = Recorder({name: ref_view}, grads=False) if ref_view is not None else None
            try:
                for x, _ in batches:
                    model(x)
                    a = _augment(view.patches(rec.inputs[name]).double(), view.has_bias)
                    a = a.reshape(-1, a.shape[-1])
                    hessian = a.T @ a if hessian is None else hessian + a.T @ a
                    if ref_rec is not None and ref_view is not None and reference is not None:
                        reference(x)
                        r = _augment(ref_view.patches(ref_rec.inputs[name]).double(), view.has_bias)
                        r = r.reshape(-1, r.shape[-1])
                        cross = r.T @ a if cross is None else cross + r.T @ a
                    n += a.shape[0]
            finally:
                if ref_rec is not None:
                    ref_rec.close()
    finally:
        undo()
        if undo_ref is not None:
            undo_ref()
    if hessian is None:
        raise SpecError("layer-wise OBS needs at least one calibration sample")
    return InputMoments(_sym(2.0 * hessian / n), None if cross is None else 2.0 * cross / n)


__all__ = [
    "FISHERS",
    "KFAC_FISHERS",
    "InputMoments",
    "KroneckerFactors",
    "LayerView",
    "damp",
    "damped_inverse_diagonal",
    "ekfac_eigenvalues",
    "fisher_diagonal",
    "guarded_eigh",
    "iter_batches",
    "kfac_factors",
    "layer_input_moments",
    "layer_views",
]
