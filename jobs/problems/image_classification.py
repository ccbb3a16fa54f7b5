"""Image classification on a dataset from the data folder: a network, cross-entropy and an L2 penalty.

One class serves every image problem; the registry entry names the
dataset, the network and the preprocessing recipe
(:mod:`jobs.problems.data.augment`). The data lives on the run's device as
uint8 pixels; the validation set is DeepOBS's, held out from the training
set and as large as the test set (:mod:`jobs.problems.data.splits`), and
the training loss is evaluated on a fixed subset of the training set that
large too, as DeepOBS does. Weight decay is the penalty ½·wd·Σ‖W‖² on the
weights :func:`~jobs.problems.nets.layers.decayed_weights` selects, added
to the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from jobs.curvature.outputs import Categorical
from jobs.problems.base import Split, TensorProblem
from jobs.problems.data.augment import ImagePipeline, recipe
from jobs.problems.data.images import CLASSES, labelled_images
from jobs.problems.nets import deepobs_cifar, deepobs_mnist, densenet, mobilenet, resnet, thesis_cnn, vgg, wrn
from jobs.problems.nets.layers import decayed_weights, l2_penalty

#: network name (registry ``setup["net"]``) → builder taking the number of classes
NETS: dict[str, Callable[[int], nn.Module]] = {
    "logreg": deepobs_mnist.logreg,
    "mlp": deepobs_mnist.mlp,
    "2c2d": deepobs_mnist.two_conv_two_dense,
    "3c3d": deepobs_cifar.three_conv_three_dense,
    "allcnnc": deepobs_cifar.all_cnn_c,
    "vgg16": vgg.vgg16,
    "vgg19": vgg.vgg19,
    "wrn164": wrn.wrn164,
    "wrn404": wrn.wrn404,
    "resnet20": resnet.resnet20,
    "resnet32": resnet.resnet32,
    "resnet56": resnet.resnet56,
    "densenet40": densenet.densenet40,
    "mobilenetv2": mobilenet.mobilenetv2,
    "cnn3192": thesis_cnn.cnn3192,
}
#: Evaluation batches are this many training batches: without gradients a forward pass keeps only a few
#: layers' activations, where a training step keeps them all.
EVAL_BATCHES = 4


class ImageClassification(TensorProblem):
    has_accuracy = True
    likelihood = Categorical()

    def __init__(self, batch_size: int, device: torch.device, dtype: torch.dtype, *, problem: str, dataset: str,
                 data_dir: str | Path | None, net: str, pipeline: str, weight_decay: float, augment: bool = False):
        data = labelled_images(dataset, data_dir, problem)
        self.pipeline = ImagePipeline(recipe(pipeline, dataset), data["train"][0], augment, device, dtype)
        splits = {
            name: Split(torch.as_tensor(images, device=device), torch.as_tensor(labels, device=device))
            for name, (images, labels) in data.items()
        }
        model = NETS[net](CLASSES[dataset]).to(device=device, dtype=dtype)
        super().__init__(model, splits, batch_size, train_eval_size=len(splits["test"]))
        self.eval_chunk = min(self.eval_chunk, EVAL_BATCHES * batch_size)
        self.weights, self.weight_decay = decayed_weights(model), weight_decay

    def prepare(self, inputs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.pipeline(inputs, generator)

    def example_losses(self, outputs: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        return F.cross_entropy(outputs, targets, reduction="none")

    def regularizer(self) -> torch.Tensor | float:
        return l2_penalty(self.weights, self.weight_decay)
