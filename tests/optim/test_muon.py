"""Muon with AdamW (jobs.optim.muon): which parameter gets which method, the orthogonalised update, the composite."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from optim_support import make_closure
from torch import nn

from jobs.optim.muon import MuonAdamW, split_parameters

#: Newton-Schulz against the polar factor U Vᵀ of a well-conditioned 16 × 32 matrix, measured over 50 seeds:
#: spectral-norm error <= 0.323, Uᵀ O V's diagonal in [0.678, 1.137], its off-diagonal <= 0.021.
SPECTRAL_ERROR, DIAGONAL, OFF_DIAGONAL = 0.35, (0.65, 1.2), 0.03


class Net(nn.Module):
    """Embedding → linear → LayerNorm → linear → output layer, and a 1-D gain of its own."""

    def __init__(self, tied: bool = False):
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.first = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.hidden = nn.Linear(8, 8)
        self.scale = nn.Parameter(torch.ones(8))
        self.out = nn.Linear(8, 10)
        if tied:
            self.out.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm(self.first(self.embed(tokens))))
        return self.out(self.scale * torch.relu(self.hidden(h)))


def names(model: nn.Module, params: list[nn.Parameter]) -> set[str]:
    ids = {id(p) for p in params}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def test_hidden_weight_matrices_take_muon_and_everything_else_adamw():
    model = Net()
    hidden, other = split_parameters(model)
    assert names(model, hidden) == {"first.weight", "hidden.weight"}
    assert names(model, other) == {"embed.weight", "first.bias", "norm.weight", "norm.bias", "hidden.bias", "scale",
                                   "out.weight", "out.bias"}


def test_an_output_weight_tied_to_the_embedding_stays_with_adamw():
    model = Net(tied=True)
    hidden, other = split_parameters(model)
    assert names(model, hidden) == {"first.weight", "hidden.weight"}
    assert id(model.embed.weight) in {id(p) for p in other}
    assert len(hidden) + len(other) == len(list(model.parameters()))  # each parameter once


def test_convolution_kernels_take_adamw_and_recurrent_matrices_muon():
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 6), nn.Linear(6, 2))
    hidden, other = split_parameters(conv)
    assert names(conv, hidden) == {"2.weight"}
    assert {"0.weight", "0.bias", "3.weight"} <= names(conv, other)
    lstm = nn.Sequential(nn.LSTM(4, 5), nn.Linear(5, 2))
    assert names(lstm, split_parameters(lstm)[0]) == {"0.weight_ih_l0", "0.weight_hh_l0"}


def test_a_model_without_hidden_matrices_is_trained_by_adamw_alone():
    optimizer = MuonAdamW(nn.Linear(3, 2))
    assert list(optimizer.parts) == ["adamw"]


@pytest.mark.parametrize("seed", range(10))
def test_muons_update_is_close_to_the_polar_factor(seed):
    generator = torch.Generator().manual_seed(seed)
    gradient = torch.randn(16, 32, generator=generator, dtype=torch.float64)
    weight = nn.Parameter(torch.zeros(16, 32, dtype=torch.float64))
    model = nn.Sequential(nn.Linear(32, 16, bias=False), nn.Linear(16, 1))
    model[0].weight = weight
    optimizer = MuonAdamW(model, lr=1.0, weight_decay=0.0)
    weight.grad = gradient
    optimizer.step()
    update = -weight.detach()  # 16 × 32: no shape scaling, sqrt(max(1, 16/32)) = 1
    u, _, vh = torch.linalg.svd(gradient, full_matrices=False)
    assert torch.linalg.matrix_norm(update - u @ vh, ord=2) <= SPECTRAL_ERROR
    rotated = u.T @ update @ vh.T  # the update in the gradient's singular bases: near the identity
    diagonal = torch.diagonal(rotated)
    assert DIAGONAL[0] <= diagonal.min() and diagonal.max() <= DIAGONAL[1]
    assert (rotated - torch.diag(diagonal)).abs().max() <= OFF_DIAGONAL


def test_a_tall_matrix_moves_by_sqrt_rows_over_columns_more():
    gradient = torch.randn(16, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    steps = []
    for g in (gradient, gradient.T):
        weight = nn.Parameter(torch.zeros_like(g))
        optimizer = torch.optim.Muon([weight], lr=0.5, weight_decay=0.0)
        weight.grad = g.clone()
        optimizer.step()
        steps.append(weight.detach())
    torch.testing.assert_close(steps[1], np.sqrt(2.0) * steps[0].T, rtol=1e-12, atol=0)


def test_each_half_steps_as_its_torch_optimizer_would_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    twin = copy.deepcopy(model)
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
    composite = MuonAdamW(model, lr=0.05, momentum=0.9, weight_decay=0.1, adamw_lr=0.01, adamw_betas=(0.8, 0.9),
                          adamw_eps=1e-6, adamw_weight_decay=0.2)
    hidden, other = split_parameters(twin)
    muon = torch.optim.Muon(hidden, lr=0.05, momentum=0.9, weight_decay=0.1)
    adamw = torch.optim.AdamW(other, lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.2)
    for _ in range(3):
        composite.step(make_closure(list(model.parameters()), lambda: nn.functional.cross_entropy(model(x), y)))
        make_closure(list(twin.parameters()), lambda: nn.functional.cross_entropy(twin(x), y))()
        muon.step()
        adamw.step()
    for ours, theirs in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_a_schedule_scales_both_learning_rates():
    optimizer = MuonAdamW(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2)), lr=0.02, adamw_lr=3e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    assert scheduler.get_last_lr() == pytest.approx([0.01, 1.5e-4])
    assert optimizer.parts["muon"].param_groups[0]["lr"] == pytest.approx(0.01)
    assert optimizer.parts["adamw"].param_groups[0]["lr"] == pytest.approx(1.5e-4)


def test_a_state_dict_from_another_split_is_refused():
    deep = MuonAdamW(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="another model's split"):
        MuonAdamW(nn.Linear(3, 2)).load_state_dict(deep.state_dict())
