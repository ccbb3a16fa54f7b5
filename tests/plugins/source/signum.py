"""Signum (Bernstein et al. 2018): the sign of a momentum average; a plugin in a plain source folder."""

import torch


class Signum(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.9):
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure):
        with torch.enable_grad():
            loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                average = self.state[p].setdefault("average", torch.zeros_like(p))
                average.mul_(group["momentum"]).add_(p.grad, alpha=1 - group["momentum"])
                p.sub_(torch.sign(average), alpha=group["lr"])
        return loss
