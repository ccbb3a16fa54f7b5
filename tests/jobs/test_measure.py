"""The curvature measurements against independent math (float64).

References never go through jobs.measure or jobs.curvature: spectra from
``torch.linalg.eigvalsh`` of matrices built explicitly (a known spectrum,
or ``torch.func.hessian`` of a function of the flat parameters), update
lines from the closed form of a quadratic, gradients from their formulas.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from jobs.curvature.outputs import SupervisedClosure
from jobs.measure.context import Context
from jobs.measure.spectrum import hessian_spectrum, top_eigenpairs
from jobs.measure.surface import filter_normalized, loss_surface, random_filter_direction
from jobs.measure.taylor import loglog_slope, taylor
from jobs.measure.update_line import update_line

pytestmark = pytest.mark.slow  # trains many runs in-process

F64 = torch.float64


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets, reduction="none")


class TanhClassifier:
    """A small tanh MLP on random data, and its loss as a pure function of the flat parameters."""

    def __init__(self, seed: int, dtype: torch.dtype = F64):
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).to(dtype)
        self.inputs = 2 * torch.randn(40, 4, dtype=dtype)
        self.targets = torch.randint(0, 3, (40,))
        self.params = list(self.model.parameters())
        self.names = [name for name, _ in self.model.named_parameters()]
        self.theta = torch.cat([p.detach().reshape(-1) for p in self.params])

    def closure(self) -> SupervisedClosure:
        return SupervisedClosure(self.model, self.inputs, self.targets, cross_entropy)

    def context(self, seed: int = 0) -> Context:
        return Context(self.params, self.closure(), generator=torch.Generator().manual_seed(seed))

    def loss_at(self, theta: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(theta, [p.numel() for p in self.params])
        tensors = {n: t.reshape(p.shape) for n, t, p in zip(self.names, pieces, self.params, strict=True)}
        return F.cross_entropy(torch.func.functional_call(self.model, tensors, (self.inputs,)), self.targets)


def by_magnitude(values: torch.Tensor) -> torch.Tensor:
    return values[torch.argsort(values.abs(), descending=True)]


# ----------------------------------------------------------------------------- power iteration


def test_power_iteration_with_deflation_finds_a_known_spectrum_in_the_default_20_iterations():
    # |λ| halves from one to the next: the Rayleigh quotient's error shrinks as 0.5^(2·20) ≈ 1e-12.
    spectrum = torch.tensor([-8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.125, -0.0625], dtype=F64)
    basis, _ = torch.linalg.qr(torch.randn(8, 8, dtype=F64, generator=torch.Generator().manual_seed(1)))
    matrix = basis @ torch.diag(spectrum) @ basis.T
    generator = torch.Generator().manual_seed(0)
    pairs = top_eigenpairs(lambda v: matrix @ v, lambda: torch.randn(8, dtype=F64, generator=generator), 3, 20)
    assert [p.value for p in pairs] == pytest.approx([-8.0, 4.0, 2.0], rel=1e-9)  # signed, largest |λ| first
    for pair, column in zip(pairs, basis.T[:3], strict=True):
        assert abs(float(pair.vector @ column)) == pytest.approx(1.0, abs=1e-9)
        assert pair.residual < 1e-4


def test_hessian_spectrum_of_a_network_equals_eigvalsh_of_its_explicit_hessian():
    setup = TanhClassifier(seed=5)  # its largest-magnitude eigenvalue is negative
    explicit = torch.func.hessian(setup.loss_at)(setup.theta)
    expected = by_magnitude(torch.linalg.eigvalsh(explicit))[:3]
    assert expected[0] < 0
    result = hessian_spectrum(setup.context(), top_k=3, iterations=400)
    found = [result.scalars[f"eigenvalue_{i}"] for i in (1, 2, 3)]
    assert found == pytest.approx(expected.tolist(), rel=1e-7)
    assert result.scalars["loss"] == pytest.approx(float(setup.loss_at(setup.theta)), rel=1e-14)
    assert torch.equal(torch.cat([p.detach().reshape(-1) for p in setup.params]), setup.theta)


def test_top_k_beyond_the_parameter_count_gives_one_eigenvalue_per_parameter():
    point = nn.Parameter(torch.tensor([1.0, 2.0], dtype=F64))

    def loss() -> torch.Tensor:
        return 3 * point[0] ** 2 + point[1] ** 2 + point[0] * point[1]

    def closure(backward: bool = True) -> torch.Tensor:
        with torch.no_grad():
            return loss()

    closure.loss_with_graph = loss
    result = hessian_spectrum(Context([point], closure), top_k=5, iterations=100)
    expected = by_magnitude(torch.linalg.eigvalsh(torch.tensor([[6.0, 1.0], [1.0, 2.0]], dtype=F64)))
    assert [result.scalars["eigenvalue_1"], result.scalars["eigenvalue_2"]] == pytest.approx(expected.tolist())
    assert "eigenvalue_3" not in result.scalars


# ----------------------------------------------------------------------------- Taylor test

DISTANCES = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5]


def test_taylor_slopes_are_1_2_3_in_float64():
    result = taylor(TanhClassifier(seed=2).context(), DISTANCES)
    slopes = [result.scalars[f"slope_{k}"] for k in ("constant", "linear", "quadratic")]
    assert slopes == pytest.approx([1.0, 2.0, 3.0], abs=0.1)
    assert result.arrays["distances"] == DISTANCES and len(result.arrays["quadratic"]) == len(DISTANCES)


def test_taylor_with_a_wrong_hessian_vector_product_fits_slope_2():
    """The slope test can fail: a Hessian product off by a factor of 2 leaves an h² term in r₃."""

    class DoubledHessian(Context):
        def hessian(self):
            operator = super().hessian()
            product = operator.matvec
            operator.matvec = lambda vector: 2 * product(vector)
            return operator

    setup = TanhClassifier(seed=2)
    result = taylor(DoubledHessian(setup.params, setup.closure(), generator=torch.Generator().manual_seed(0)),
                    DISTANCES)
    assert result.scalars["slope_quadratic"] == pytest.approx(2.0, abs=0.1)
    assert result.scalars["slope_linear"] == pytest.approx(2.0, abs=0.1)


def test_taylor_remainders_match_their_definitions():
    setup = TanhClassifier(seed=2)
    context = setup.context(seed=7)
    result = taylor(context, [0.1, 0.01])
    direction = setup.context(seed=7).random_direction()  # the same generator state gives the same direction
    gradient = torch.func.grad(setup.loss_at)(setup.theta)
    curvature = direction @ torch.func.hessian(setup.loss_at)(setup.theta) @ direction
    loss = setup.loss_at(setup.theta)
    for i, h in enumerate([0.1, 0.01]):
        change = setup.loss_at(setup.theta + h * direction) - loss
        assert result.arrays["constant"][i] == pytest.approx(abs(float(change)), rel=1e-9)
        assert result.arrays["linear"][i] == pytest.approx(abs(float(change - h * gradient @ direction)), rel=1e-6)
        expected = abs(float(change - h * gradient @ direction - 0.5 * h * h * curvature))
        assert result.arrays["quadratic"][i] == pytest.approx(expected, rel=1e-4)


def test_slopes_are_fitted_only_above_the_noise_floor():
    # r = h³ down to 1e-3, then a rounding plateau at 1e-12: fitting the plateau would flatten the slope.
    distances = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5]
    values = [1e-3, 1e-6, 1e-9, 1e-12, 1e-12]
    assert loglog_slope(distances, values, floor=1e-11) == pytest.approx(3.0)
    assert loglog_slope(distances, values, floor=0.0) < 2.6
    assert math.isnan(loglog_slope(distances, values, floor=1e-4))  # one point: no slope


def test_float32_remainders_floor_out_where_float64_ones_go_on():
    single, double = (taylor(TanhClassifier(seed=2, dtype=d).context(), DISTANCES) for d in (torch.float32, F64))
    assert single.scalars["noise_floor"] > 1e6 * double.scalars["noise_floor"]
    assert single.arrays["quadratic"][-1] < single.scalars["noise_floor"]  # below the floor: not fitted
    assert double.arrays["linear"][-1] > double.scalars["noise_floor"]


# ----------------------------------------------------------------------------- update line


class Objective:
    """``½θᵀAθ − bᵀθ (+ ¼Σθ⁴)`` of one parameter vector, with the closure protocol and its exact gradient."""

    def __init__(self, quartic: bool):
        generator = torch.Generator().manual_seed(3)
        root = torch.randn(5, 5, dtype=F64, generator=generator)
        self.matrix = root @ root.T + torch.eye(5, dtype=F64)
        self.offset = torch.randn(5, dtype=F64, generator=generator)
        self.quartic = quartic
        self.theta = nn.Parameter(torch.randn(5, dtype=F64, generator=generator))

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        loss = 0.5 * theta @ self.matrix @ theta - self.offset @ theta
        return loss + 0.25 * (theta**4).sum() if self.quartic else loss

    def gradient(self, theta: torch.Tensor) -> torch.Tensor:
        gradient = self.matrix @ theta - self.offset
        return gradient + theta**3 if self.quartic else gradient

    def __call__(self, backward: bool = True) -> torch.Tensor:
        if not backward:
            with torch.no_grad():
                return self.value(self.theta)
        self.theta.grad = None
        loss = self.value(self.theta)
        loss.backward()
        return loss.detach()

    def loss_with_graph(self) -> torch.Tensor:
        return self.value(self.theta)


def adam_after_two_steps(objective: Objective) -> torch.optim.Adam:
    optimizer = torch.optim.Adam([objective.theta], lr=0.05)
    for _ in range(2):
        optimizer.step(objective)
    return optimizer


def angle(direction: torch.Tensor, gradient: torch.Tensor) -> float:
    return math.degrees(math.acos(float(direction @ gradient / (direction.norm() * gradient.norm()))))


def test_update_line_on_a_quadratic_recovers_the_exact_minimum_along_the_adam_step():
    objective = Objective(quartic=False)
    optimizer = adam_after_two_steps(objective)
    twin = copy.deepcopy((objective, optimizer))
    theta = objective.theta.detach().clone()
    result = update_line(Context([objective.theta], objective, optimizer), points=30, low=-0.5, high=1.0)

    twin[1].step(twin[0])  # the step the measurement took, taken for real on a copy
    step = twin[0].theta.detach() - theta
    gradient, matrix = objective.gradient(theta), objective.matrix
    minimum = float(-(gradient @ step) / (step @ matrix @ step) * step.norm())
    assert result.scalars["step_length"] == pytest.approx(float(step.norm()), rel=1e-12)
    assert result.scalars["minimum"] == pytest.approx(minimum, rel=1e-9)
    assert result.scalars["r_squared"] == pytest.approx(1.0, abs=1e-12)
    assert result.scalars["curvature"] == pytest.approx(float(step @ matrix @ step / step.norm() ** 2), rel=1e-9)
    direction = step / step.norm()
    assert result.scalars["angle"] == pytest.approx(angle(direction, objective.gradient(theta + minimum * direction)))
    assert result.scalars["angle"] == pytest.approx(90.0, abs=1e-6)  # at the exact line minimum
    assert len(result.arrays["positions"]) == len(result.arrays["losses"]) == 30


def test_update_line_angle_off_the_line_minimum_is_the_angle_to_the_exact_gradient():
    objective = Objective(quartic=True)  # the parabola only approximates the line: its minimum is off
    optimizer = adam_after_two_steps(objective)
    twin = copy.deepcopy((objective, optimizer))
    theta = objective.theta.detach().clone()
    result = update_line(Context([objective.theta], objective, optimizer), points=30, low=-2.0, high=2.0)
    twin[1].step(twin[0])
    direction = (twin[0].theta.detach() - theta) / (twin[0].theta.detach() - theta).norm()
    expected = angle(direction, objective.gradient(theta + result.scalars["minimum"] * direction))
    assert result.scalars["angle"] == pytest.approx(expected, rel=1e-9)
    assert abs(result.scalars["angle"] - 90.0) > 0.1 and result.scalars["r_squared"] < 1 - 1e-6


def test_update_line_restores_parameters_and_optimizer_state_bitwise():
    objective = Objective(quartic=True)
    optimizer = adam_after_two_steps(objective)
    twin = copy.deepcopy((objective, optimizer))
    update_line(Context([objective.theta], objective, optimizer), points=10, low=-0.5, high=1.0)
    assert torch.equal(objective.theta, twin[0].theta)
    state, twin_state = optimizer.state_dict(), twin[1].state_dict()
    assert state["param_groups"] == twin_state["param_groups"]
    for key in ("step", "exp_avg", "exp_avg_sq"):
        assert torch.equal(state["state"][0][key], twin_state["state"][0][key])
    optimizer.step(objective)
    twin[1].step(twin[0])
    assert torch.equal(objective.theta, twin[0].theta)


# ----------------------------------------------------------------------------- loss surface


def grid_point(setup: TanhClassifier, first: torch.Tensor, second: torch.Tensor, a: float, b: float) -> float:
    return float(setup.loss_at(setup.theta + a * first + b * second))


@pytest.mark.parametrize("directions", ["random", "eigen"])
def test_loss_surface_grid_equals_direct_evaluations(directions):
    setup = TanhClassifier(seed=0)
    result = loss_surface(setup.context(seed=4), directions, span=0.5, resolution=5, iterations=400)
    replay = setup.context(seed=4)  # the same generator: the same directions
    if directions == "random":
        first, second = random_filter_direction(replay), random_filter_direction(replay)
    else:
        explicit = torch.func.hessian(setup.loss_at)(setup.theta)
        values, vectors = torch.linalg.eigh(explicit)
        order = torch.argsort(values.abs(), descending=True)
        first, second = vectors[:, order[0]], vectors[:, order[1]]
        assert result.scalars["eigenvalue_1"] == pytest.approx(float(values[order[0]]), rel=1e-6)
        assert result.scalars["eigenvalue_2"] == pytest.approx(float(values[order[1]]), rel=1e-6)
    coordinates, losses = result.arrays["coordinates"], result.arrays["losses"]
    assert coordinates == pytest.approx([-0.5, -0.25, 0.0, 0.25, 0.5])
    assert losses[2][2] == pytest.approx(float(setup.loss_at(setup.theta)), rel=1e-14)
    for i, j in [(0, 0), (0, 4), (1, 3), (4, 2)]:
        # eigenvectors have a sign of their own: the grid is the direct one or its point reflection
        direct = grid_point(setup, first, second, coordinates[i], coordinates[j])
        reflected = grid_point(setup, first, second, -coordinates[i], -coordinates[j])
        flipped = [grid_point(setup, first, second, s * coordinates[i], t * coordinates[j])
                   for s, t in ((1, -1), (-1, 1))]
        candidates = [direct] if directions == "random" else [direct, reflected, *flipped]
        assert min(abs(losses[i][j] - c) for c in candidates) < 1e-6 * abs(direct)
    assert result.scalars["lowest"] == pytest.approx(min(min(row) for row in losses))


def test_filter_normalisation_gives_each_filter_the_norm_of_the_weights_filter():
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(4, 3, 2, 2, dtype=F64, generator=generator),  # conv: a filter per output channel
               torch.randn(5, 6, dtype=F64, generator=generator),  # linear: a filter per row
               torch.randn(5, dtype=F64, generator=generator)]  # a vector: one filter
    direction = [torch.randn(w.shape, dtype=F64, generator=generator) for w in weights]
    normalised = filter_normalized(direction, weights)

    def filters(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.flatten(1) if tensor.dim() >= 2 else tensor[None]

    for d, n, w in zip(direction, normalised, weights, strict=True):
        assert torch.allclose(filters(n).norm(dim=1), filters(w).norm(dim=1), rtol=1e-12)
        cosines = F.cosine_similarity(filters(d), filters(n), dim=1)  # each filter keeps its direction
        assert torch.allclose(cosines, torch.ones_like(cosines), atol=1e-12)
    assert len(filters(normalised[0])) == 4 and len(filters(normalised[1])) == 5
