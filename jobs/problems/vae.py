"""DeepOBS's mnist_vae and fmnist_vae: a variational autoencoder trained on the images alone.

Loss per image: the squared error between the reconstruction and the image
summed over pixels, plus the KL divergence of the latent Gaussian from
N(0, I), −½ Σ (1 + 2 log σ − μ² − σ²) (DeepOBS's TF definition). No
accuracy, no regularisation, pixels scaled to [0, 1]. Splits as for the
image classifiers (a validation set the size of the test set held out
from the training set). The latent noise of a training batch comes from
the global stream (which the closure replays, so a line search sees the
same noise); evaluation draws its noise from a fixed seed inside a forked
stream, so it is the same at every evaluation and leaves training's random
numbers untouched.
"""

from __future__ import annotations

from pathlib import Path

import torch

from jobs.problems.base import Split, TensorProblem
from jobs.problems.data.images import labelled_images
from jobs.problems.nets.vae import VAE

EVAL_SEED = 0


class VariationalAutoencoder(TensorProblem):
    def __init__(self, batch_size: int, device: torch.device, dtype: torch.dtype, *, problem: str, dataset: str,
                 data_dir: str | Path | None):
        data = labelled_images(dataset, data_dir, problem)
        splits = {}
        for name, (images, _) in data.items():
            pixels = torch.as_tensor(images, device=device)
            splits[name] = Split(pixels, pixels)  # the targets are the images
        super().__init__(VAE().to(device=device, dtype=dtype), splits, batch_size, train_eval_size=len(splits["test"]))
        self.dtype = dtype
        self.cuda_devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []

    def prepare(self, inputs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return inputs.to(self.dtype) / 255

    def example_losses(self, outputs: tuple[torch.Tensor, ...], targets: torch.Tensor | None) -> torch.Tensor:
        images, mean, log_std = outputs
        squared_error = (images - self.prepare(targets)).pow(2).flatten(1).sum(dim=1)
        divergence = -0.5 * (1 + 2 * log_std - mean.pow(2) - torch.exp(2 * log_std)).sum(dim=1)
        return squared_error + divergence

    def evaluate(self, split: str) -> dict[str, float]:
        with torch.random.fork_rng(devices=self.cuda_devices):
            torch.manual_seed(EVAL_SEED)
            return super().evaluate(split)

