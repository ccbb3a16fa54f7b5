"""Config names → optimizer classes, with hyperparameter schemas.

Importing this module does not import torch; :func:`build_optimizer` does.
Defaults live in ``conf/optimizer/<name>.yaml`` (what sweeps start from)
and in each class's signature (what library users get); the schemas here
only say which values are legal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jobs.plugins import Plugin
from jobs.registry import Entry, Registry
from jobs.schema import Param, SpecError, count, non_negative, positive, unit_interval


@dataclass(frozen=True)
class OptimizerEntry(Entry):
    #: False for methods that choose their own step size (line searches):
    #: learning-rate schedules cannot apply to them.
    has_lr: bool = True
    #: Checks that involve more than one parameter: validated params -> an error sentence or None.
    check: Callable[[Mapping[str, Any]], str | None] | None = None
    #: True for methods that hook into the network's layers (K-FAC): built from the model, not its parameters.
    takes_model: bool = False
    #: validated params -> whether the method needs the problem's likelihood (Gauss-Newton, Fisher, K-FAC).
    needs_likelihood: Callable[[Mapping[str, Any]], bool] = lambda params: False
    #: True for methods that take gradients from curvature closures (``loss_with_graph``/``model_output``),
    #: which the trainer neither clips nor averages over ranks.
    curvature: bool = False


class OptimizerRegistry(Registry):
    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        entry = self.resolve(checked)
        problem = entry.check(checked) if entry.check else None
        if problem:
            raise SpecError(problem)
        return checked


def _uses_outputs(params: Mapping[str, Any]) -> bool:
    return params.get("curvature", "fisher") != "hessian"


def _c1_below_c2(params: Mapping[str, Any]) -> str | None:
    if params["c1"] < params["c2"]:
        return None
    return f"optimizer.c1 must be smaller than optimizer.c2 (got c1={params['c1']!r}, c2={params['c2']!r})."


_FISHER = Param("str", choices=("true", "empirical"),
                help="true: labels sampled from the model; empirical: the data's labels")
_CG = {
    "cg_tolerance": positive("CG stops when the residual norm is below this times sqrt(#params)"),
    "cg_max_iterations": count(1, "CG iterations per step at most"),
}
_BETAS = Param("floats", low=0.0, high=1.0, high_open=True, length=2, help="(beta1, beta2), each in [0, 1)")


def _open_unit(help: str) -> Param:
    """(0, 1): sufficient-decrease and curvature constants, shrink factors."""
    return Param("float", low=0.0, high=1.0, low_open=True, high_open=True, help=help)


def _at_least_one(help: str) -> Param:
    return Param("float", low=1.0, help=help)


def _from_trainer(help: str) -> Param:
    """An integer the trainer supplies when the config leaves it null."""
    return Param("int", low=1, nullable=True, help=f"{help}; null: taken from the trainer")


def plugin_entry(plugin: Plugin) -> OptimizerEntry:
    """A plugin optimizer's entry: learning-rate schedules apply when its constructor takes ``lr``."""
    return OptimizerEntry(plugin.target, plugin.params, doc=(plugin.cls.__doc__ or "").strip().split("\n")[0],
                          plugin=plugin, has_lr=plugin.extras["has_lr"])


OPTIMIZERS = OptimizerRegistry(
    "optimizer",
    {
        "sgd": OptimizerEntry(
            "torch.optim:SGD",
            {
                "lr": positive("learning rate"),
                "momentum": unit_interval("heavy-ball factor; 0 is plain SGD"),
                "dampening": unit_interval(),
                "nesterov": Param("bool"),
                "weight_decay": non_negative("L2 penalty added to the gradient"),
            },
            doc="SGD with heavy-ball or Nesterov momentum (torch.optim.SGD).",
        ),
        "adam": OptimizerEntry(
            "torch.optim:Adam",
            {
                "lr": positive("learning rate"),
                "betas": _BETAS,
                "eps": positive("added to the denominator; acts as damping"),
                "weight_decay": non_negative("L2 penalty added to the gradient"),
                "amsgrad": Param("bool"),
            },
            doc="Adam (Kingma & Ba 2015, torch.optim.Adam).",
        ),
        "adamw": OptimizerEntry(
            "torch.optim:AdamW",
            {
                "lr": positive("learning rate"),
                "betas": _BETAS,
                "eps": positive("added to the denominator; acts as damping"),
                "weight_decay": non_negative("decoupled decay: theta -= lr * weight_decay * theta"),
                "amsgrad": Param("bool"),
            },
            doc="AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019, torch.optim.AdamW).",
        ),
        "adagrad": OptimizerEntry(
            "torch.optim:Adagrad",
            {
                "lr": positive("learning rate"),
                "lr_decay": non_negative("lr / (1 + (t - 1) * lr_decay)"),
                "weight_decay": non_negative("L2 penalty added to the gradient"),
                "initial_accumulator_value": non_negative("starting value of the sum of squared gradients"),
                "eps": positive("delta added to the root of the accumulated squares"),
            },
            doc="AdaGrad (Duchi et al. 2011, torch.optim.Adagrad).",
        ),
        "rmsprop": OptimizerEntry(
            "torch.optim:RMSprop",
            {
                "lr": positive("learning rate"),
                "alpha": unit_interval("decay rate rho of the squared-gradient average"),
                "eps": positive("delta added to the root of the average"),
                "weight_decay": non_negative("L2 penalty added to the gradient"),
                "momentum": unit_interval("momentum on the scaled step; 0 is plain RMSProp"),
                "centered": Param("bool"),
            },
            doc="RMSProp (Tieleman & Hinton 2012, torch.optim.RMSprop).",
        ),
        "pal": OptimizerEntry(
            "jobs.optim.pal:PAL",
            {
                "mu": positive("measuring distance along the unit direction"),
                "alpha": positive("update step adaptation: multiplies the step to the parabola's minimum"),
                "beta": unit_interval("direction adaptation: d = -g + beta * d_prev"),
                "s_max": positive("largest step along the unit direction"),
            },
            has_lr=False,
            doc="Parabolic Approximation Line Search (Mutschler & Zell 2020); 2 forward + 1 backward per step.",
        ),
        "labpal": OptimizerEntry(
            "jobs.optim.labpal:LABPAL",
            {
                "variant": Param("str", choices=("sgd", "nsgd"), help="reuse a learning rate (sgd) or a step (nsgd)"),
                "alpha": positive("step size adaptation: multiplies the step to the parabola's minimum"),
                "momentum": unit_interval("momentum in the training phase; 0 is plain (N)SGD"),
                "sgd_steps": count(1, "training steps between line searches"),
                "approximation_batches": count(1, "batches averaged per line search (|B_a| / |B_i|)"),
                "s_max": positive("largest step along the unit direction"),
                "noise_factor": positive("noise adaptation epsilon: multiplies the batches per step"),
                "batch_milestones": Param("floats", low=0.0, high=1.0, low_open=True, high_open=True,
                                          help="fractions of training at which the batches per step double"),
                "total_steps": _from_trainer("training steps, for the batch-size schedule"),
            },
            has_lr=False,
            doc="Large-Batch Parabolic Approximation Line Search (Mutschler & Zell 2021), SGD or NSGD variant.",
        ),
        "sls": OptimizerEntry(
            "jobs.optim.sls:SLS",
            {
                "lr_init": positive("first step size tried"),
                "c": _open_unit("Armijo sufficient-decrease constant"),
                "beta": _open_unit("backtracking factor"),
                "gamma": _at_least_one("step-size reset: growth per epoch"),
                "lr_max": positive("cap on the reset step size"),
                "n_batches_per_epoch": _from_trainer("batches per epoch, for the reset rule"),
            },
            has_lr=False,
            doc="Stochastic Armijo line search with the reset rule (Vaswani et al. 2019).",
        ),
        "gols_i": OptimizerEntry(
            "jobs.optim.gols:GOLSI",
            {
                "lr_init": positive("first step size tried (later: the previous one)"),
                "c2": positive("curvature constant of the immediate-accept test"),
                "eta": Param("float", low=1.0, low_open=True, help="growth and shrink factor, > 1"),
                "momentum": unit_interval("direction d = -g + momentum * d_prev"),
            },
            has_lr=False,
            doc="Gradient-Only Line Search, Inexact (Kafka & Wilke 2019); fresh minibatch per evaluation.",
        ),
        "pls": OptimizerEntry(
            "jobs.optim.pls:PLS",
            {
                "lr_init": positive("the first search's initial step alpha0"),
                "c1": _open_unit("sufficient-decrease constant, below c2"),
                "c2": _open_unit("curvature constant, above c1"),
                "c_w": _open_unit("Wolfe-probability threshold for accepting a point"),
                "momentum": unit_interval("direction d = -g + momentum * d_prev"),
                "max_evaluations": count(1, "evaluations per line search"),
                "noise_batches": count(2, "fresh minibatches per step that estimate the noise"),
            },
            has_lr=False,
            check=_c1_below_c2,
            doc="Probabilistic Line Search (Mahsereci & Hennig 2015); GP over losses and slopes, Wolfe probabilities.",
        ),
        "sgd_hd": OptimizerEntry(
            "jobs.optim.sgd_hd:SGDHD",
            {
                "lr": positive("initial learning rate"),
                "hypergrad_lr": non_negative("learning rate of the learning rate"),
            },
            has_lr=False,
            doc="SGD with hypergradient descent on the learning rate (Baydin et al. 2018).",
        ),
        "alig": OptimizerEntry(
            "jobs.optim.alig:ALIG",
            {
                "lr": positive("maximal learning rate eta (caps the Polyak step)"),
                "momentum": unit_interval("Nesterov momentum; 0 is plain ALI-G"),
                "eps": positive("added to the squared gradient norm"),
            },
            doc="ALI-G: Polyak step sizes for interpolation, capped (Berrada et al. 2020).",
        ),
        "cocob": OptimizerEntry(
            "jobs.optim.cocob:COCOB",
            {"alpha": positive("bounds the per-coordinate step (1/alpha on the first step)")},
            has_lr=False,
            doc="COCOB-Backprop: coin betting, no learning rate (Orabona & Tommasi 2017).",
        ),
        "newton_cg": OptimizerEntry(
            "jobs.optim.newton_cg:NewtonCG",
            {
                "lr": positive("fixed step size, or the first step the Armijo search tries"),
                "step": Param("str", choices=("armijo", "fixed"), help="step size rule"),
                "armijo_c": _open_unit("Armijo sufficient-decrease constant"),
                "armijo_shrink": _open_unit("Armijo backtracking factor"),
                "max_backtracks": count(0, "Armijo halvings at most"),
                "curvature": Param("str", choices=("hessian", "ggn"), help="the matrix CG solves with"),
                "damping": non_negative("Tikhonov damping alpha in (H + alpha I) s = -g"),
                "adapt_damping": Param("bool", help="Levenberg-Marquardt adaptation of the damping"),
                **_CG,
                "warm_start": Param("bool", help="start CG from the previous step's solution (decayed)"),
                "cg_backtracking": Param("bool", help="take the best of CG's intermediate iterates (Martens 2010)"),
                "descent_threshold": Param("float", high=0.0, high_open=True,
                                           help="T < 0: fall back to -g when g.s > T"),
                "pretrain_steps": count(0, "plain gradient-descent steps before the first Newton step"),
                "pretrain_lr": positive("learning rate of the gradient-descent pre-training"),
            },
            check=lambda params: None if params["damping"] > 0 or not params["adapt_damping"] else (
                "optimizer.damping must be > 0 when optimizer.adapt_damping is true, since the adaptation "
                "multiplies it (got damping=0)."),
            needs_likelihood=_uses_outputs,
            curvature=True,
            doc="Newton-CG / Hessian-free: CG on damped Hessian or Gauss-Newton products, Armijo or fixed step.",
        ),
        "natural_gradient": OptimizerEntry(
            "jobs.optim.natural_gradient:NaturalGradient",
            {
                "lr": positive("learning rate lambda in theta -= lambda (F + damping I)^-1 g"),
                "damping": positive("added to the Fisher's diagonal"),
                "fisher": _FISHER,
                "solver": Param("str", choices=("exact", "cg"), help="exact: the explicit Fisher (small models); "
                                                                      "cg: CG on Fisher-vector products"),
                **_CG,
            },
            needs_likelihood=_uses_outputs,
            curvature=True,
            doc="Natural gradient descent with the true or empirical Fisher, solved exactly or by CG.",
        ),
        "kfac": OptimizerEntry(
            "jobs.optim.kfac:KFAC",
            {
                "lr": positive("learning rate"),
                "momentum": unit_interval("momentum on the preconditioned step"),
                "damping": positive("Tikhonov damping, split over the two factors"),
                "weight_decay": non_negative("L2 penalty added to the gradient"),
                "factor_decay": unit_interval("running-average factor of the Kronecker factors"),
                "factor_every": count(1, "steps between factor updates"),
                "inverse_every": count(1, "steps between factor inversions"),
                "kl_clip": Param("float", low=0.0, low_open=True, nullable=True,
                                 help="bound on the step's KL change; null: no clipping"),
                "fisher": _FISHER,
            },
            takes_model=True,
            needs_likelihood=_uses_outputs,
            curvature=True,
            doc="K-FAC (Martens & Grosse 2015) for Linear and Conv2d layers; plain steps elsewhere.",
        ),
        # Probabilistic preconditioning (de Roos & Hennig 2019) and, without the preconditioner, seed 000's
        # AdaptiveSGD: the same hyperparameters; the learning rate comes from the Hessian estimate.
        **{
            name: OptimizerEntry(
                f"jobs.optim.preconditioning:{cls}",
                {
                    "lr": Param("float", low=0.0, low_open=True, nullable=True,
                                help="learning rate before the first estimate; null: hold still until then"),
                    "momentum": unit_interval("heavy-ball momentum of the inner SGD"),
                    "num_observations": count(1, "Hessian-vector observations per estimate, the prior's mean first"),
                    "prior_iterations": count(1, "minibatches whose products set the prior, learning rate and noise"),
                    "est_rank": count(0, "eigenpairs of the estimate kept for the preconditioner"),
                    "update": Param("str", choices=("epoch", "steps", "auto"),
                                    help="re-estimate every epoch, every update_every steps, or when a check fails"),
                    "update_every": _from_trainer("steps between estimates (steps) or checks (auto), or one epoch"),
                    "check_factor": Param("float", low=1.0, low_open=True,
                                          help="auto: re-estimate when a fresh curvature scale is off by this factor"),
                },
                has_lr=False,
                curvature=True,
                doc=doc,
            )
            for name, cls, doc in (
                ("preconditioned_sgd", "PreconditionedSGD",
                 "Probabilistic preconditioning (de Roos & Hennig 2019): SGD on the gradient preconditioned by a "
                 "low-rank Hessian estimate from Hessian-vector products, learning rate from its prior scale."),
                ("adaptive_sgd", "AdaptiveSGD",
                 "Seed 000's AdaptiveSGD: PreconditionedSGD's estimated learning rate, gradients not preconditioned."),
            )
        },
    },
    plugin_entry=plugin_entry,
)


def build_optimizer(config: Mapping[str, Any], params: Iterable[Any], model: Any = None):
    """Instantiate the optimizer a validated config names, over ``params`` (or ``model`` where it hooks layers)."""
    entry = OPTIMIZERS.resolve(config)
    if entry.takes_model:
        if model is None:
            raise ValueError(f"optimizer {config['name']!r} hooks into the network's layers; pass the model.")
        return OPTIMIZERS.load(config)(model, **OPTIMIZERS.arguments(config))
    return OPTIMIZERS.load(config)(params, **OPTIMIZERS.arguments(config))
