"""signSGD (Bernstein et al. 2018): θ ← θ − lr · sign(∇L(θ) + wd · θ)."""

import torch


class SignSGD(torch.optim.Optimizer):
    """signSGD with optional L2 weight decay; reports the share of gradient signs that flipped."""

    hyperparameters = {"lr": {"low": 0.0, "low_open": True, "help": "step length per coordinate"},
                       "weight_decay": {"low": 0.0, "help": "L2 penalty added to the gradient"}}

    def __init__(self, params, lr: float = 0.01, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})
        self.diagnostics = {}

    @torch.no_grad()
    def step(self, closure):
        with torch.enable_grad():
            loss = closure()
        flipped, total = 0, 0
        for group in self.param_groups:
            for p in group["params"]:
                direction = torch.sign(p.grad + group["weight_decay"] * p)
                previous = self.state[p].get("sign")
                if previous is not None:
                    flipped += int((direction != previous).sum())
                total += direction.numel()
                self.state[p]["sign"] = direction
                p.sub_(direction, alpha=group["lr"])
        self.diagnostics = {"flipped": flipped / total}
        return loss
