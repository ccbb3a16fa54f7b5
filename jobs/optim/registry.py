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

from jobs import library_optimizers
from jobs.plugins import Plugin
from jobs.registry import Entry, Registry
from jobs.schema import Param, SpecError, count, non_negative, positive, unit_interval, validate_params


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
    #: Entries whose ``params`` open up more (the pytorch-optimizer adapter: its algorithm's constructor):
    #: validated ``params`` -> (their owner in words, their schema). Those are optional: left out, the
    #: implementation's default applies.
    open_params: Callable[[Mapping[str, Any]], tuple[str, Mapping[str, Param]]] | None = None


class OptimizerRegistry(Registry):
    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        entry = self.resolve(config)
        checked = self._validate_open(entry, config) if entry.open_params else super().validate(config)
        problem = entry.check(checked) if entry.check else None
        if problem:
            raise SpecError(problem)
        return checked

    def _validate_open(self, entry: OptimizerEntry, config: Mapping[str, Any]) -> dict[str, Any]:
        name = config["name"]
        fixed = {k: v for k, v in config.items() if k in entry.params}
        checked = {"name": name, **validate_params(self.kind, f"{self.kind} {name!r}", entry.params, fixed)}
        owner, opened = entry.open_params(checked)
        schema = {**opened, **entry.params}
        rest = {k: v for k, v in config.items() if k != "name" and k not in entry.params}
        return {**checked, **validate_params(self.kind, owner, schema, rest, optional=schema)}


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
#: Schedule-Free's average x_{t+1} = (1 - c) x_t + c z_{t+1}, c = w_t / sum of w_i, w_t = (t+1)^r * lr_max^power.
_SCHEDULE_FREE_AVERAGE = {
    "r": non_negative("polynomial weighting of the average: w_t grows as (t+1)^r; 0: the paper's"),
    "weight_lr_power": non_negative("w_t grows with the largest learning rate so far to this power; 2: the paper's"),
}


def _schedule_free_beta1(params: Mapping[str, Any]) -> str | None:
    if params["betas"][0] > 0:
        return None
    return ("optimizer.betas[0] must be > 0 for Schedule-Free, whose evaluation point x = (y - (1 - beta1) z) / beta1 "
            f"divides by it (got {params['betas'][0]!r}).")


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
        # Today's baselines (ALGORITHMS.md §6) from torch.optim where it has them. torch's NAdam is Dozat's, with
        # the momentum schedule mu_t = beta1 (1 - 0.5 * 0.96^(t psi)); AlgoPerf's NAdamW keeps mu_t = beta1.
        "nadamw": OptimizerEntry(
            "torch.optim:NAdam",
            {
                "lr": positive("learning rate"),
                "betas": _BETAS,
                "eps": positive("added to the denominator; acts as damping"),
                "weight_decay": non_negative("decay coefficient, decoupled or L2 (decoupled_weight_decay)"),
                "momentum_decay": non_negative("psi of the momentum schedule; large: mu_t -> beta1"),
                "decoupled_weight_decay": Param("bool", help="true: NAdamW; false: NAdam with an L2 penalty"),
            },
            doc="NAdamW: NAdam (Dozat 2016) with decoupled weight decay, AlgoPerf's baseline (torch.optim.NAdam).",
        ),
        "radam": OptimizerEntry(
            "torch.optim:RAdam",
            {
                "lr": positive("learning rate"),
                "betas": _BETAS,
                "eps": positive("added to the denominator; acts as damping"),
                "weight_decay": non_negative("decay coefficient, decoupled or L2 (decoupled_weight_decay)"),
                "decoupled_weight_decay": Param("bool", help="decoupled (AdamW's) or L2 weight decay"),
            },
            doc="RAdam: Adam with its variance rectified (Liu et al. 2020, torch.optim.RAdam).",
        ),
        "adafactor": OptimizerEntry(
            "torch.optim:Adafactor",
            {
                "lr": positive("cap of the relative step size rho_t = min(lr, 1/sqrt(t))"),
                "beta2_decay": Param("float", high=0.0, high_open=True,
                                     help="tau < 0 in beta2_t = 1 - t^tau"),
                "d": positive("update clipping threshold on RMS(U)"),
                "weight_decay": non_negative("decoupled: theta -= lr * weight_decay * theta"),
            },
            doc="Adafactor: factored second moments, relative steps (Shazeer & Stern 2018, torch.optim.Adafactor).",
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
        # Schedule-Free (Defazio et al. 2024), the authors' package: gradients at y, evaluated and checkpointed at
        # the average x (train()/eval(), see jobs.optim.protocol). Its warm-up is the schedule's (algoperf_constant),
        # which gives the package's weights lr_t^2 of the warmed-up lr; the package's warmup_steps stays 0. AdamW is
        # the package's since 1.3: Adam's bias correction inside the root, not folded into lr_t as in the paper.
        "schedulefree_sgd": OptimizerEntry(
            "schedulefree:SGDScheduleFree",
            {
                "lr": positive("learning rate of the z step (the authors: 10-50x a tuned SGD's)"),
                "momentum": _open_unit("interpolation beta: gradients at y = (1 - beta) z + beta x"),
                "weight_decay": non_negative("L2 penalty added to the gradient at y"),
                **_SCHEDULE_FREE_AVERAGE,
            },
            doc="Schedule-Free SGD (Defazio et al. 2024, the authors' schedulefree package), evaluated at the mean.",
        ),
        "schedulefree_adamw": OptimizerEntry(
            "schedulefree:AdamWScheduleFree",
            {
                "lr": positive("learning rate of the z step"),
                "betas": _BETAS,
                "eps": positive("added to the denominator; acts as damping"),
                "weight_decay": non_negative("decoupled decay at y: z -= lr * weight_decay * y"),
                **_SCHEDULE_FREE_AVERAGE,
            },
            check=_schedule_free_beta1,
            doc="Schedule-Free AdamW (Defazio et al. 2024, the authors' schedulefree package), evaluated at the mean.",
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
                "estimator": Param("str", choices=("code", "exact"),
                                   help="code: the authors' published implementation (finite-difference parabola, "
                                        "a move that ends each search, averaged estimates); exact: the parabola "
                                        "through the three mean losses, Algorithm 9's procedure"),
                "untrusted_updates": count(0, "estimator=code: updates before estimates are averaged"),
                "averaged_estimates": count(1, "estimator=code: how many of the last estimates are averaged"),
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
        "muon": OptimizerEntry(
            "jobs.optim.muon:MuonAdamW",
            {
                "lr": positive("Muon's learning rate (hidden weight matrices)"),
                "momentum": unit_interval("Muon's momentum"),
                "nesterov": Param("bool", help="Nesterov momentum for Muon"),
                "ns_steps": count(1, "Newton-Schulz iterations per orthogonalisation"),
                "weight_decay": non_negative("Muon's decoupled decay: theta -= lr * weight_decay * theta"),
                "adjust_lr_fn": Param("str", choices=("original", "match_rms_adamw"),
                                      help="Muon's step scale: sqrt(max(1, rows/cols)) or 0.2 sqrt(max(rows, cols))"),
                "adamw_lr": positive("AdamW's learning rate (every other parameter)"),
                "adamw_betas": _BETAS,
                "adamw_eps": positive("AdamW's eps"),
                "adamw_weight_decay": non_negative("AdamW's decoupled decay"),
            },
            takes_model=True,
            doc="Muon (Jordan et al. 2024, torch.optim.Muon) on hidden weight matrices, AdamW on the rest.",
        ),
        # Lion and SOAP: pytorch-optimizer's classes, whose rules are the papers' (Lion: c = b1 m + (1 - b1) g,
        # theta -= lr (sign(c) + wd theta), m = b2 m + (1 - b2) g; SOAP: the authors' code's, Adam in the
        # eigenbasis of Shampoo's factors, first moment kept in the original basis, eigenbasis refreshed by one
        # power iteration and QR every precondition_frequency steps; it takes that QR in float32, the authors in
        # the parameters' dtype), with a closure step, a tensors-only state and deterministic CPU kernels; the
        # same package serves optimizer=pytorch_optimizer, so one dependency (lion-pytorch would add a second,
        # heavyball is built around torch.compile). Shampoo is ours (jobs.optim.shampoo says why).
        "lion": OptimizerEntry(
            "pytorch_optimizer:Lion",
            {
                "lr": positive("learning rate (the paper: 3-10x below AdamW's)"),
                "betas": _BETAS,
                "weight_decay": non_negative("decoupled: theta -= lr * weight_decay * theta (3-10x AdamW's)"),
            },
            doc="Lion: sign of interpolated momentum (Chen et al. 2023, pytorch-optimizer's Lion).",
        ),
        "soap": OptimizerEntry(
            "pytorch_optimizer:SOAP",
            {
                "lr": positive("learning rate"),
                "betas": _BETAS,
                "shampoo_beta": Param("float", low=0.0, high=1.0, high_open=True, nullable=True,
                                      help="decay of Shampoo's factors; null: beta2"),
                "eps": positive("added to the denominator"),
                "weight_decay": non_negative("decoupled: theta -= lr * weight_decay * theta"),
                "precondition_frequency": count(1, "steps between eigenbasis refreshes"),
                "max_precondition_dim": count(1, "dimensions larger than this are not rotated"),
                "precondition_1d": Param("bool", help="rotate vectors (biases) too"),
            },
            doc="SOAP: Adam in the eigenbasis of Shampoo's factors (Vyas et al. 2024, pytorch-optimizer's SOAP).",
        ),
        "shampoo": OptimizerEntry(
            "jobs.optim.shampoo:Shampoo",
            {
                "lr": positive("learning rate eta"),
                "eps": positive("the factors start at eps * I"),
                "update_every": count(1, "steps between inverse-root recomputations; 1: the paper's"),
                "max_dim": count(1, "dimensions larger than this are not preconditioned"),
                "weight_decay": non_negative("decoupled: theta -= lr * weight_decay * theta"),
            },
            doc="Shampoo (Gupta et al. 2018) on one device: L^-1/4 G R^-1/4, roots refreshed every few steps.",
        ),
        "pytorch_optimizer": OptimizerEntry(
            "jobs.library_optimizers:build",
            {"algorithm": Param("str", nonempty=True, help="a name of pytorch_optimizer.get_supported_optimizers()")},
            open_params=library_optimizers.open_params,
            doc="Any optimizer of the pytorch-optimizer collection, its hyperparameters from its signature.",
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
