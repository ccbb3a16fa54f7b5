"""DeepOBS's variational autoencoder for 28×28 images (mnist_vae, fmnist_vae).

Encoder: three 4×4 "same" convolutions of 64 filters (strides 2, 2, 1)
with leaky ReLU (slope 0.3) and dropout 0.2 after each, then two dense
layers 3136 → 8 for the mean and for a log standard deviation (the
second layer's output halved, as in DeepOBS); z = mean + ε·exp(log std).
Decoder: dense 8 → 24 → 49 with leaky ReLU, reshaped to 1×7×7, three 4×4
"same" transposed convolutions of 64 filters (strides 2, 1, 1) with ReLU,
dropout 0.2 after the first two, then dense 12544 → 784 with a sigmoid.
Every weight Glorot-uniform, every bias zero (TF's defaults). ε comes
from torch's global random stream.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from jobs.problems.nets.layers import SameConv2d, SameConvTranspose2d

LATENT = 8
SLOPE = 0.3


class VAE(nn.Module):
    def __init__(self, latent: int = LATENT):
        super().__init__()
        self.latent = latent
        self.encoder = nn.ModuleList([SameConv2d(1, 64, 4, 2), SameConv2d(64, 64, 4, 2), SameConv2d(64, 64, 4, 1)])
        self.mean = nn.Linear(7 * 7 * 64, latent)
        self.log_std = nn.Linear(7 * 7 * 64, latent)
        self.expand = nn.Sequential(nn.Linear(latent, 24), nn.LeakyReLU(SLOPE), nn.Linear(24, 49), nn.LeakyReLU(SLOPE))
        self.decoder = nn.ModuleList([
            SameConvTranspose2d(1, 64, 4, 2), SameConvTranspose2d(64, 64, 4, 1), SameConvTranspose2d(64, 64, 4, 1),
        ])
        self.image = nn.Linear(14 * 14 * 64, 28 * 28)
        self.dropout = nn.Dropout(0.2)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstructed images (B, 1, 28, 28), latent means and log standard deviations (B, latent)."""
        for conv in self.encoder:
            x = self.dropout(F.leaky_relu(conv(x), SLOPE))
        x = x.flatten(1)
        mean, log_std = self.mean(x), 0.5 * self.log_std(x)
        z = mean + torch.randn_like(mean) * torch.exp(log_std)
        x = self.expand(z).view(-1, 1, 7, 7)
        for index, deconv in enumerate(self.decoder):
            x = torch.relu(deconv(x))
            if index < 2:
                x = self.dropout(x)
        return torch.sigmoid(self.image(x.flatten(1))).view(-1, 1, 28, 28), mean, log_std
