"""Dataset profiles: a claim's spec moved to CIFAR-10 or SVHN at the literature's strength.

The catalogue's specs are sized for MNIST-like data on a CPU (LeNet, epsilon 0.1). A CIFAR-10
number is comparable with the papers only with their model, training and threat model, so
``crev replicate run CLAIM --dataset cifar10`` applies :func:`adapt_spec`:

- data: the official train/test split (all 50,000 / 10,000 images unless the spec limits them);
- model: PreAct ResNet-18 (Rice et al. 2020) unless another CIFAR architecture is named;
- training: the claim's kind kept — PGD-AT (Linf 8/255, step 2/255, 10 steps; SGD 0.1, momentum 0.9,
  weight decay 5e-4, divided by 10 at 50 % and 75 % of 200 epochs, batch 128, crop + flip) when the
  claim's model is adversarially trained, the same SGD recipe without the attack otherwise;
- attacks: L∞ epsilons 2/255, 4/255, 8/255 (L2: 0.25, 0.5), PGD with at least 10 steps;
- fine-tuning after compression at SGD learning rate 0.01.

SVHN takes the same settings with learning rate 0.01 (Rice et al. 2020 train SVHN at 0.01: 0.1 diverges
under PGD-AT) and no flips. Everything stays overridable in a spec file.
"""

from __future__ import annotations

from dataclasses import dataclass

from evidence.vocab import Norm

from ..attacks import ATTACKS
from ..train.models import ModelName
from ..train.recipes import Recipe
from .spec import JobSpec

__all__ = ["DatasetProfile", "PROFILES", "adapt_spec", "CIFAR_ARCHS"]

CIFAR_ARCHS = (ModelName.preact_resnet18, ModelName.wrn_28_10, ModelName.wrn_34_10)


@dataclass(frozen=True)
class DatasetProfile:
    name: str
    model: ModelName = ModelName.preact_resnet18
    epochs: int = 200
    lr: float = 0.1
    batch_size: int = 128
    adv_eps: float = 8 / 255
    adv_steps: int = 10
    linf_eps: tuple[float, ...] = (2 / 255, 4 / 255, 8 / 255)
    l2_eps: tuple[float, ...] = (0.25, 0.5)
    min_attack_steps: int = 10
    finetune_lr: float = 0.01


PROFILES = {"cifar10": DatasetProfile("cifar10"), "svhn": DatasetProfile("svhn", lr=0.01)}


def adapt_spec(spec: JobSpec, dataset: str, *, model: ModelName | str | None = None) -> JobSpec:
    """``spec`` on ``dataset`` at the profile's settings (see the module docstring); a dataset without
    a profile only changes the data name."""
    if dataset not in PROFILES:
        return spec.model_copy(update={"data": spec.data.model_copy(update={"name": dataset})})
    p = PROFILES[dataset]
    arch = ModelName(model) if model else (spec.model if spec.model in CIFAR_ARCHS else p.model)
    adversarial = spec.train.adversarial
    train = spec.train.model_copy(update={
        "epochs": p.epochs, "lr": p.lr, "batch_size": p.batch_size, "adv_eps": p.adv_eps, "adv_steps": p.adv_steps, "width": None,
        "recipe": Recipe.pgd_at if adversarial else Recipe.sgd})
    attacks = []
    for a in spec.attacks:
        method = ATTACKS[a.name]
        eps = list(p.l2_eps if method.norm is Norm.l2 else p.linf_eps) if a.eps else []
        steps = max(a.steps, p.min_attack_steps) if method.iterative else a.steps
        attacks.append(a.model_copy(update={"eps": eps, "steps": steps}))
    comp = [c.model_copy(update={"finetune_lr": p.finetune_lr}) if c.finetune != "none" or c.qat_epochs else c for c in spec.compression]
    data = spec.data.model_copy(update={"name": dataset, "n_train": None, "n_test": None})
    return spec.model_copy(update={"data": data, "model": arch, "train": train, "attacks": attacks, "compression": comp})
