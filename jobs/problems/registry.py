"""Config names → test problems, with parameter schemas and the datasets they read (torch-free).

Names are ``<dataset>_<network>``: the dataset is one of mnist, fmnist,
cifar10, cifar100, svhn, tolstoi (also the problem's folder in the data
folder, see :mod:`jobs.problems.data.files`), the network is DeepOBS's
name where DeepOBS defines the problem (logreg, mlp, 2c2d, 3c3d, vae,
vgg16, allcnnc, wrn164, char_rnn, …) or the architecture and its depth
otherwise (resnet20, resnet32, resnet56, densenet40, mobilenetv2; cnn3192,
the thesis's MNIST CNN named by its parameter count). Problems without
files are named by what they are (digits_mlp, mnist1d_cnn, quadratic_deep,
rosenbrock, …). Default batch sizes and training lengths live in
``conf/problem/<name>.yaml``: DeepOBS's where DeepOBS sets them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobs.plugins import Plugin
from jobs.problems.data.files import DATASETS, DatasetFiles
from jobs.registry import Entry, Registry
from jobs.schema import Param, count, non_negative, positive, unit_interval


@dataclass(frozen=True)
class ProblemEntry(Entry):
    """``dataset``: the folder of files it reads (None: none); ``setup``: fixed constructor arguments;
    ``classifier``: its data loss is a categorical likelihood (Gauss-Newton, Fisher and K-FAC apply);
    ``files``: a plugin's own dataset files (see :class:`jobs.problems.base.Problem`)."""

    dataset: str | None = None
    setup: Mapping[str, Any] = field(default_factory=dict)
    classifier: bool = False
    files: DatasetFiles | None = None

    @property
    def dataset_files(self) -> DatasetFiles | None:
        """The files the problem reads from the data folder, checked before anything is launched."""
        return DATASETS[self.dataset] if self.dataset is not None else self.files


WEIGHT_DECAY = non_negative("L2 penalty ½·wd·Σ‖W‖² on the network's weights, added to the loss")
AUGMENT = Param("bool", help="augment training images (random crops; flips and lighting where the recipe has them)")
START = Param("floats", length=2, help="initial point (x, y)")
STEPS = count(1, "optimizer steps that make one 'epoch'")
QUADRATIC = {
    "dim": count(1, "number of parameters"),
    "condition_number": Param("float", low=1.0, help="κ: eigenvalues geometric from 1/κ to 1"),
    "rotate": Param("bool", help="rotate the eigenbasis by a fixed random rotation (not axis-aligned)"),
    "steps_per_epoch": STEPS,
}


def classifier(dataset: str, net: str, pipeline: str, doc: str) -> ProblemEntry:
    params = {"weight_decay": WEIGHT_DECAY}
    if pipeline != "unit":
        params["augment"] = AUGMENT
    return ProblemEntry("jobs.problems.image_classification:ImageClassification", params,
                        doc=f"{doc} on {DATASETS[dataset].title}.", dataset=dataset,
                        setup={"net": net, "pipeline": pipeline}, classifier=True)


def function_2d(cls: str, doc: str) -> ProblemEntry:
    return ProblemEntry(f"jobs.problems.functions:{cls}", {"start": START, "steps_per_epoch": STEPS}, doc=doc)


ENTRIES: dict[str, ProblemEntry] = {
    # No files needed.
    "digits_mlp": ProblemEntry(
        "jobs.problems.digits:DigitsMLP",
        {
            "hidden": count(1, "units per hidden layer"),
            "layers": count(1, "hidden layers"),
            "dropout": unit_interval("dropout probability after each hidden layer"),
            "weight_decay": non_negative("L2 penalty added to the loss"),
        },
        doc="An MLP on scikit-learn's bundled 8x8 digits, fixed 1197/300/300 split.",
        classifier=True,
    ),
    "digits_cnn": ProblemEntry(
        "jobs.problems.digits:DigitsCNN", {"weight_decay": WEIGHT_DECAY},
        doc="The second-order thesis's CNN (312 weights on 8x8 inputs) on scikit-learn's bundled digits.",
        classifier=True,
    ),
    "mnist1d_mlp": ProblemEntry(
        "jobs.problems.mnist1d:Mnist1dMLP",
        {"hidden": count(1, "units of both hidden layers (the paper's: 100)"), "weight_decay": WEIGHT_DECAY},
        doc="The MNIST-1D paper's residual MLP on MNIST-1D, generated offline; 3600/400/1000 split.",
        classifier=True,
    ),
    "mnist1d_cnn": ProblemEntry(
        "jobs.problems.mnist1d:Mnist1dCNN", {"weight_decay": WEIGHT_DECAY},
        doc="The MNIST-1D paper's CNN (three 1-D convolutions, 25 channels) on MNIST-1D, generated offline.",
        classifier=True,
    ),
    "quadratic_deep": ProblemEntry(
        "jobs.problems.quadratic:QuadraticDeep",
        doc="DeepOBS's 100-d noisy quadratic with a deep-learning-like eigenspectrum.",
    ),
    "quadratic": ProblemEntry(
        "jobs.problems.quadratic:Quadratic", QUADRATIC,
        doc="A deterministic quadratic ½θᵀQθ of chosen dimension and condition number.",
    ),
    "noisy_quadratic": ProblemEntry(
        "jobs.problems.quadratic:NoisyQuadratic", {**QUADRATIC, "noise": positive("σ: data x ~ N(0, σ² Q⁻¹)")},
        doc="The noisy quadratic model (Zhang et al. 2019): fresh samples every step, noise aligned with Q.",
    ),
    "rosenbrock": function_2d("Rosenbrock", "The 2-D Rosenbrock function (a=1, b=100), deterministic."),
    "beale": function_2d("Beale", "The 2-D Beale function, deterministic."),
    "himmelblau": function_2d("Himmelblau", "Himmelblau's 2-D function (four minima), deterministic."),
    "branin": function_2d("Branin", "The 2-D Branin function (three minima), deterministic."),
    # DeepOBS.
    **{
        f"{data}_{net}": classifier(data, net, "unit", doc)
        for data in ("mnist", "fmnist")
        for net, doc in (("logreg", "DeepOBS's logistic regression"), ("mlp", "DeepOBS's 4-layer MLP"),
                         ("2c2d", "DeepOBS's 2 conv + 2 dense CNN"))
    },
    **{
        f"{data}_vae": ProblemEntry(
            "jobs.problems.vae:VariationalAutoencoder",
            doc=f"DeepOBS's variational autoencoder on {DATASETS[data].title}.", dataset=data,
        )
        for data in ("mnist", "fmnist")
    },
    **{
        f"{data}_3c3d": classifier(data, "3c3d", "deepobs", "DeepOBS's 3 conv + 3 dense CNN")
        for data in ("cifar10", "cifar100", "svhn")
    },
    "cifar10_vgg16": classifier("cifar10", "vgg16", "deepobs", "DeepOBS's VGG 16 (inputs resized to 224)"),
    "cifar10_vgg19": classifier("cifar10", "vgg19", "deepobs", "DeepOBS's VGG 19 (inputs resized to 224)"),
    "cifar100_vgg16": classifier("cifar100", "vgg16", "deepobs", "DeepOBS's VGG 16 (inputs resized to 224)"),
    "cifar100_vgg19": classifier("cifar100", "vgg19", "deepobs", "DeepOBS's VGG 19 (inputs resized to 224)"),
    "cifar100_allcnnc": classifier("cifar100", "allcnnc", "deepobs", "DeepOBS's All-CNN-C"),
    "cifar100_wrn164": classifier("cifar100", "wrn164", "deepobs", "DeepOBS's Wide ResNet 16-4"),
    "cifar100_wrn404": classifier("cifar100", "wrn404", "deepobs", "DeepOBS's Wide ResNet 40-4"),
    "svhn_wrn164": classifier("svhn", "wrn164", "deepobs", "DeepOBS's Wide ResNet 16-4"),
    "tolstoi_char_rnn": ProblemEntry(
        "jobs.problems.text:CharacterRNN", doc="DeepOBS's 2-layer LSTM predicting characters of War and Peace.",
        dataset="tolstoi", classifier=True,
    ),
    # The line-search papers' networks and the second-order thesis's CNN.
    **{
        f"{data}_{net}": classifier(data, net, "standard", doc)
        for data in ("cifar10", "cifar100", "svhn")
        for net, doc in (("resnet20", "ResNet-20 (He et al. 2016)"), ("resnet32", "ResNet-32 (He et al. 2016)"),
                         ("resnet56", "ResNet-56 (He et al. 2016)"), ("densenet40", "DenseNet-40, k=12"),
                         ("mobilenetv2", "MobileNetV2 for 32x32 inputs"))
    },
    "mnist_cnn3192": classifier("mnist", "cnn3192", "unit", "The second-order thesis's 3192-parameter CNN"),
}

def plugin_entry(plugin: Plugin) -> ProblemEntry:
    return ProblemEntry(plugin.target, plugin.params, doc=(plugin.cls.__doc__ or "").strip().split("\n")[0],
                        plugin=plugin, classifier=plugin.extras["classifier"], files=plugin.extras["dataset_files"])


PROBLEMS = Registry("problem", ENTRIES, plugin_entry)
