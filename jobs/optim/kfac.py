"""K-FAC: Kronecker-factored approximate curvature (Martens & Grosse, ICML 2015; ALGORITHMS.md §3).

For a layer with weight matrix ``W`` (out × in; the bias, when there is
one, as a last column; a convolution's kernel flattened to
out × in·kh·kw) the Fisher block of ``W`` (row-major) is approximated by
``G ⊗ A`` with

    A = E[ā āᵀ]   ā: the layer's input, with a 1 appended for the bias,
    G = E[g gᵀ]   g: the gradient of an example's loss w.r.t. the layer's output,

so the block's inverse applied to the gradient ``V`` is ``G⁻¹ V A⁻¹``.

Choices where the sources leave one open:

* Convolutions follow KFC (Grosse & Martens, ICML 2016): ā runs over the
  input patches of every output position; A sums over positions and
  averages over examples, G averages over both, so a convolution with one
  output position has the factors of the linear layer on its flattened
  input. The patches come from the layer's own forward pass with one-hot
  kernels: for a plain ``Conv2d`` that is ``F.unfold`` with its stride,
  padding and dilation, and it is also right for layers that pad
  themselves (digits_cnn's TF-"same" convolution pads asymmetrically).
  Linear layers treat extra input dimensions (sequences), and repeated
  calls of one layer in a forward pass, as positions the same way.
  Grouped convolutions, other layer types and layers with frozen
  parameters are not factored: their parameters take the plain gradient.
* Damping is factored Tikhonov (§6.3 of the paper): ``A + π√λ I`` and
  ``G + √λ/π I`` with ``π = √((tr A / dim A) / (tr G / dim G))``, whose
  Kronecker product is ``A ⊗ G + λ I`` plus the cross terms.
* Fisher: "true" draws every example's label from the model
  (``likelihood.sample``) for G; "empirical" uses the data's labels.
  The step's gradient is always the data-label gradient of the objective,
  regulariser included.
* Order of an update (KL clipping from Ba et al., ICLR 2017; the rest our choice):
  ``V = ∇L + weight_decay·θ``; ``U = G⁻¹ V A⁻¹`` per factored layer (``U = V``
  elsewhere); KL clipping ``ν = min(1, √(kl_clip / (lr² Σ ⟨U, V⟩)))``, the
  sum over factored layers (the others have no curvature estimate to
  measure a KL change by); heavy-ball momentum ``b ← μ b + ν U`` (torch's
  SGD form); ``θ ← θ − lr b``.

Cost: one forward and one backward pass per step. Every ``factor_every``
steps the true Fisher needs a second backward pass (of the sampled
labels' loss; the empirical one reuses the gradient's), and the factors
cost two matrix products per layer; every ``inverse_every`` steps two
inversions per layer. On factor steps the gradient comes from the
``model_output()`` forward pass, not from ``closure()``, so the trainer's
gradient clipping does not apply to those steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from jobs.curvature.products import FISHER_KINDS
from jobs.optim.protocol import Closure, evaluate

Layer = nn.Linear | nn.Conv2d


@dataclass
class _Capture:
    """What one layer saw during a factor pass: its inputs, and the gradients w.r.t. its outputs."""

    inputs: list[torch.Tensor] = field(default_factory=list)
    gradients: list[torch.Tensor] = field(default_factory=list)


def _factored(module: nn.Module) -> bool:
    if not isinstance(module, (nn.Linear, nn.Conv2d)) or (isinstance(module, nn.Conv2d) and module.groups != 1):
        return False
    return all(p.requires_grad for p in _layer_params(module))


def _layer_params(layer: Layer) -> list[torch.Tensor]:
    return [layer.weight] if layer.bias is None else [layer.weight, layer.bias]


def _patches(layer: Layer, inputs: torch.Tensor) -> torch.Tensor:
    """ā for every example and position: (examples·positions) × (in·kh·kw [+1])."""
    if isinstance(layer, nn.Linear):
        rows = inputs.reshape(-1, layer.in_features)
    else:
        # The layer's forward with one-hot kernels maps its input to the patches its kernel sees.
        width = layer.weight[0].numel()
        kernels = torch.eye(width, dtype=inputs.dtype, device=inputs.device).view(width, *layer.weight.shape[1:])
        replaced = {"weight": kernels} if layer.bias is None else {"weight": kernels, "bias": kernels.new_zeros(width)}
        with torch.no_grad():
            patches = torch.func.functional_call(layer, replaced, (inputs,))
        rows = patches.movedim(1, -1).reshape(-1, width)
    if layer.bias is not None:
        rows = torch.cat([rows, rows.new_ones(rows.shape[0], 1)], dim=1)
    return rows


def _output_rows(layer: Layer, gradient: torch.Tensor) -> torch.Tensor:
    """g for every example and position: (examples·positions) × out."""
    if isinstance(layer, nn.Conv2d):
        gradient = gradient.movedim(1, -1)
    return gradient.reshape(-1, gradient.shape[-1])


def _as_matrix(tensors: list[torch.Tensor]) -> torch.Tensor:
    """A layer's weight-shaped and bias-shaped tensors as one out × (in [+1]) matrix."""
    columns = [tensors[0].reshape(tensors[0].shape[0], -1)]
    if len(tensors) > 1:
        columns.append(tensors[1].unsqueeze(1))
    return torch.cat(columns, dim=1)


def _from_matrix(layer: Layer, matrix: torch.Tensor) -> list[torch.Tensor]:
    if layer.bias is None:
        return [matrix.view_as(layer.weight)]
    return [matrix[:, :-1].reshape_as(layer.weight), matrix[:, -1].clone()]


def _damped_inverse(matrix: torch.Tensor, shift: float) -> torch.Tensor:
    # inv_ex rather than inv: non-finite factors (a diverging run) give a non-finite step, which the trainer
    # reports as divergence, instead of an exception.
    eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    return torch.linalg.inv_ex(matrix + shift * eye).inverse


def _balance(a: torch.Tensor, g: torch.Tensor) -> float:
    """π of factored Tikhonov damping; 1 where a factor's trace is zero or not finite."""
    pi_squared = float((a.trace() / a.shape[0]) / (g.trace() / g.shape[0]))
    return math.sqrt(pi_squared) if 0.0 < pi_squared < math.inf else 1.0


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class KFAC(torch.optim.Optimizer):
    """K-FAC over a model's trainable parameters, with Kronecker-factored Linear and Conv2d layers.

    Built from the model: its forward hooks record layer inputs and output
    gradients, during factor passes only. One param group, the model's
    trainable parameters, with global hyperparameters. Defaults:
    ``factor_decay=0.95``, ``factor_every=10``, ``inverse_every=100``
    (ALGORITHMS.md §3), ``momentum=0.9``, ``damping=1e-3`` and
    ``kl_clip=1e-3`` are those of Wang's KFAC-PyTorch; ``lr=0.01`` is ten
    times its 0.001, since the KL clip bounds the step anyway and
    digits_cnn trains faster with it. ``kl_clip=None`` disables the
    clipping.

    Factors, inverses and momentum buffers live in ``state`` under each
    layer's weight, the step count under ``state["kfac"]``, so
    ``state_dict()`` resumes a run exactly. The first factor update
    initialises the running averages; steps 0, ``factor_every``, … update
    the factors and steps 0, ``inverse_every``, … the inverses (a layer
    takes the plain gradient until it has inverses).

    ``diagnostics``: ``effective_lr`` (``lr·ν``), ``kl_scale`` (``ν``),
    ``factor_update`` and ``inverse_update`` (1 on the steps that did),
    ``evaluations`` (forward passes: 1).
    """

    GLOBAL = "kfac"

    def __init__(self, model: nn.Module, lr: float = 0.01, momentum: float = 0.9, damping: float = 1e-3,
                 weight_decay: float = 0.0, factor_decay: float = 0.95, factor_every: int = 10,
                 inverse_every: int = 100, kl_clip: float | None = 1e-3, fisher: str = "true"):
        _require(0.0 < lr < math.inf, f"lr must be a finite number > 0 (got {lr!r}).")
        _require(0.0 <= momentum < 1.0, f"momentum must be in [0, 1) (got {momentum!r}).")
        _require(0.0 < damping < math.inf, f"damping must be a finite number > 0 (got {damping!r}).")
        _require(0.0 <= weight_decay < math.inf, f"weight_decay must be a finite number >= 0 (got {weight_decay!r}).")
        _require(0.0 <= factor_decay < 1.0, f"factor_decay must be in [0, 1) (got {factor_decay!r}).")
        _require(factor_every >= 1 and inverse_every >= 1,
                 f"factor_every and inverse_every must be >= 1 (got {factor_every!r}, {inverse_every!r}).")
        _require(kl_clip is None or 0.0 < kl_clip < math.inf, f"kl_clip must be null or > 0 (got {kl_clip!r}).")
        _require(fisher in FISHER_KINDS, f"fisher must be one of {', '.join(FISHER_KINDS)} (got {fisher!r}).")
        defaults = {"lr": lr, "momentum": momentum, "damping": damping, "weight_decay": weight_decay,
                    "factor_decay": factor_decay, "factor_every": factor_every, "inverse_every": inverse_every,
                    "kl_clip": kl_clip, "fisher": fisher}
        super().__init__([p for p in model.parameters() if p.requires_grad], defaults)
        self.layers: list[Layer] = [m for m in model.modules() if _factored(m)]
        self.diagnostics: dict[str, float | int] = {}
        self._captures: dict[Layer, _Capture] | None = None  # set during a factor pass's forward only
        self._capturing_gradients = False  # set during the backward pass that feeds G
        self._hooks = [layer.register_forward_hook(self._record) for layer in self.layers]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if self.param_groups:
            raise ValueError("KFAC updates the model it was built from, as one param group; build another "
                             "optimizer for other parameters.")
        super().add_param_group(param_group)

    def remove_hooks(self) -> None:
        """Detach the optimizer from the model's layers (no factor updates after this)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    # -- recording ---------------------------------------------------------------------------
    def _record(self, layer: Layer, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if self._captures is None:
            return
        capture = self._captures.setdefault(layer, _Capture())
        capture.inputs.append(inputs[0].detach())
        if output.requires_grad:
            # A tensor hook sees the gradient w.r.t. this output even if a later in-place op modifies it.
            output.register_hook(self._gradient_recorder(capture))

    def _gradient_recorder(self, capture: _Capture) -> Callable[[torch.Tensor], None]:
        def record(gradient: torch.Tensor) -> None:
            if self._capturing_gradients:
                capture.gradients.append(gradient.detach())

        return record

    def _factor_pass(self, closure: Any, hyper: dict[str, Any]) -> torch.Tensor:
        """One forward pass: G's statistics from the Fisher's labels, the factors, and the objective's gradient."""
        self._captures = {}
        try:
            output = closure.model_output()
        finally:
            captures, self._captures = self._captures, None
        loss = output.loss()
        try:
            if hyper["fisher"] == "true":
                if output.likelihood is None:
                    raise ValueError("The true Fisher samples labels from the model, and this problem's loss is "
                                     "no likelihood; use fisher=empirical or a classification problem.")
                sampled = output.example_losses(output.outputs, output.likelihood.sample(output.outputs)).sum()
                self._capturing_gradients = True
                if captures:
                    torch.autograd.grad(sampled, [layer.weight for layer in captures], retain_graph=True,
                                        allow_unused=True)
                self._capturing_gradients = False
                scale = 1.0
            else:  # captured during the objective's backward: its output gradients are per-example ones / N
                self._capturing_gradients = True
                scale = float(output.batch_size)
            for p in hyper["params"]:
                p.grad = None
            loss.backward()
        finally:
            self._capturing_gradients = False
        with torch.no_grad():
            self._update_factors(captures, scale, output.batch_size, hyper["factor_decay"])
        return loss.detach()

    # -- factors and inverses ----------------------------------------------------------------
    def _update_factors(self, captures: dict[Layer, _Capture], scale: float, examples: int, decay: float) -> None:
        """Running averages of A and G; ``scale`` turns the captured output gradients into per-example ones."""
        for layer, capture in captures.items():
            if not capture.gradients:  # the layer's output did not reach the loss
                continue
            a = torch.cat([_patches(layer, x) for x in capture.inputs])
            g = torch.cat([_output_rows(layer, dg) for dg in capture.gradients])
            new = {"A": a.T @ a / examples, "G": (g.T @ g) * (scale * scale / g.shape[0])}
            state = self.state[layer.weight]
            for key, value in new.items():
                if key in state:
                    state[key].mul_(decay).add_(value, alpha=1.0 - decay)
                else:
                    state[key] = value

    def _update_inverses(self, damping: float) -> None:
        gamma = math.sqrt(damping)
        for layer in self.layers:
            state = self.state[layer.weight]
            if "A" in state:
                pi = _balance(state["A"], state["G"])
                state["A_inverse"] = _damped_inverse(state["A"], pi * gamma)
                state["G_inverse"] = _damped_inverse(state["G"], gamma / pi)

    # -- the step ----------------------------------------------------------------------------
    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        if closure is None or not hasattr(closure, "model_output"):
            raise ValueError("KFAC needs a closure with model_output() (the trainer's, or "
                             "jobs.curvature.SupervisedClosure) for its factor passes.")
        hyper = self.param_groups[0]
        count = self.state[self.GLOBAL].get("step", 0)
        factor_update = count % hyper["factor_every"] == 0
        inverse_update = count % hyper["inverse_every"] == 0
        loss = self._factor_pass(closure, hyper) if factor_update else evaluate(closure, backward=True)
        with torch.no_grad():
            if inverse_update:
                self._update_inverses(hyper["damping"])
            kl_scale = self._update(hyper)
        self.state[self.GLOBAL]["step"] = count + 1
        self.diagnostics = {"effective_lr": hyper["lr"] * kl_scale, "kl_scale": kl_scale,
                            "factor_update": int(factor_update), "inverse_update": int(inverse_update),
                            "evaluations": 1}
        return loss

    def _update(self, hyper: dict[str, Any]) -> float:
        """Precondition, clip, add momentum and move the parameters; returns ν."""
        params = [p for p in hyper["params"] if p.grad is not None]
        directions = {p: p.grad.add(p, alpha=hyper["weight_decay"]) if hyper["weight_decay"] else p.grad
                      for p in params}
        inner_products = []
        for layer in self.layers:
            state = self.state[layer.weight]
            layer_params = _layer_params(layer)
            if "A_inverse" not in state or any(p not in directions for p in layer_params):
                continue
            v = _as_matrix([directions[p] for p in layer_params])
            u = state["G_inverse"] @ v @ state["A_inverse"]
            inner_products.append((u * v).sum())
            directions.update(zip(layer_params, _from_matrix(layer, u), strict=True))
        lr, kl_clip = hyper["lr"], hyper["kl_clip"]
        kl_scale = 1.0
        if kl_clip is not None and inner_products:
            uv = float(torch.stack(inner_products).sum())
            if uv > 0.0:
                kl_scale = min(1.0, math.sqrt(kl_clip / (lr * lr * uv)))
        for p, direction in directions.items():
            step = direction * kl_scale
            if hyper["momentum"] > 0:
                buffer = self.state[p].get("momentum_buffer")
                if buffer is None:
                    buffer = self.state[p]["momentum_buffer"] = step.clone()
                else:
                    buffer.mul_(hyper["momentum"]).add_(step)
                step = buffer
            p.add_(step, alpha=-lr)
        return kl_scale
