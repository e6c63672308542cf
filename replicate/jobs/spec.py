"""Job specs: what a replication runs, read from TOML or YAML and validated with clear errors.

A spec names the dataset, the model, the training, the compression grid, the attacks with their
epsilons, the seeds, and the claim it checks. ``quick()`` derives the reduced grid of the same claim
(fewer epochs, images and levels) whose results are marked quick and never count toward a verdict.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

import pydantic
from pydantic import BaseModel, Field, field_validator

from evidence.files import MAX_SMALL_FILE_BYTES, FileRefused, read_regular_file
from evidence.vocab import Direction, Norm

from ..attacks import ATTACKS, AttackName
from ..errors import ReplicateError
from ..compress import DEFAULT_FINETUNE_LR, CompressorKind, Granularity, ScaleRule, compressor_class
from ..train.models import ModelName
from ..train.recipes import Recipe

__all__ = ["DataSpec", "TrainSpec", "CompressionSpec", "AttackGrid", "ClaimRef", "JobSpec", "SpecError", "load_spec", "catalogue", "get_claim_spec"]


_RUNTIME_FIELDS = {"device", "threads"}


class SpecError(ReplicateError, ValueError):
    """A spec that does not validate: the message names the file, field and reason."""


class _Strict(BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    name: str = "digits"
    test_fraction: float = Field(0.25, gt=0, lt=1)
    split_seed: int = 0
    n_train: int | None = Field(None, ge=10)
    n_test: int | None = Field(None, ge=10)


class TrainSpec(_Strict):
    epochs: int = Field(10, ge=1, le=500)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    adversarial: bool = False
    adv_eps: float = Field(0.1, ge=0, le=1)
    adv_steps: int = Field(7, ge=1)
    width: int | None = Field(None, ge=1, le=512, description="model width (LeNet/ResNet channels); None: the model's default")
    recipe: Recipe = Field(Recipe.adam, description="adam, or the SGD recipes pgd_at (Rice et al. 2020) / trades (Zhang et al. 2019)")
    trades_beta: float = Field(6.0, gt=0, le=100)


class CompressionSpec(_Strict):
    kind: CompressorKind  # the compressor registry's key (replicate.compress.COMPRESSORS)
    method: str = "global_l1"  # pruning method
    levels: list[float] = Field(default_factory=list)  # sparsities for prune; bit widths for quantize
    iterations: int = Field(1, ge=1, le=20)
    finetune: Literal["none", "standard", "adversarial"] = "none"
    finetune_epochs: int = Field(0, ge=0, le=100)
    finetune_lr: float = Field(DEFAULT_FINETUNE_LR, gt=0, le=1, description="learning rate of pruning fine-tuning and of quantization-aware training")
    act_bits: int | None = Field(None, ge=1, le=16)
    qat_epochs: int = Field(0, ge=0, le=100)
    bit_choices: list[int] = Field(default_factory=list, description="random_precision: the bit widths drawn from at each forward pass")
    granularity: Granularity = Granularity.per_channel
    scale_rule: ScaleRule = ScaleRule.mse
    importance: Literal["l1", "l2", "random"] = "l1"  # channel_prune: filter ranking
    keep_float: list[str] = Field(default_factory=list, description="int8_ptq: module names kept in float32 (mixed precision)")

    @field_validator("levels")
    @classmethod
    def _levels(cls, v, info):
        kind = info.data.get("kind")
        if kind is None:  # the kind failed its own validation (its error names the known kinds)
            return v
        for x in v:
            compressor_class(kind).check_level(x)
        return v


class AttackGrid(_Strict):
    name: AttackName
    eps: list[float] = Field(default_factory=list)
    steps: int = Field(10, ge=1, le=1000)
    restarts: int = Field(1, ge=1, le=20)
    queries: int = Field(1000, ge=10)
    temperature: float | None = Field(None, gt=0, description="PGD++ logit temperature")
    eot_samples: int | None = Field(None, ge=1, le=1000, description="EOT gradient samples per step")

    @field_validator("eps")
    @classmethod
    def _eps(cls, v, info):
        name = info.data.get("name")
        l2 = name in ATTACKS and ATTACKS[name].norm is Norm.l2
        for e in v:
            if e < 0 or (not l2 and e > 1):
                raise ValueError(f"epsilon {e} is outside [0, 1] (Linf on the pixel scale)" if not l2 else f"epsilon {e} is negative")
        return v


class ClaimRef(_Strict):
    question_id: str
    study: str  # the claim's study (its direction is tested)
    direction: Literal[Direction.up, Direction.down, Direction.neutral, Direction.mixed]
    statement: str = ""
    compare: list[str] = Field(default_factory=list)  # other studies whose claims on the question this run also speaks to


class JobSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_\-]+$")
    title: str = ""
    claim: ClaimRef
    data: DataSpec = DataSpec()
    model: ModelName = ModelName.lenet
    train: TrainSpec = TrainSpec()
    compression: list[CompressionSpec] = Field(min_length=1)
    attacks: list[AttackGrid] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    checks: bool = True
    quick_mode: bool = False
    neutral_margin: float = Field(2.0, gt=0, description="equivalence margin (percentage points) of a neutral claim; the verdict widens it "
                                  "to twice the largest binomial standard error of one accuracy on the test set")
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$", description="where it runs (replicate/train/device.py); not part of the hash")
    threads: int | None = Field(None, ge=1, le=512, description="torch threads per cell; not part of the hash")
    attack_mixed_precision: bool = Field(False, description="bfloat16 autocast while crafting attacks (weakens gradients; off by default)")

    def spec_hash(self) -> str:
        """Hash of what determines the results: everything but where it runs (device, threads)."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json", exclude=_RUNTIME_FIELDS), sort_keys=True).encode()).hexdigest()[:16]

    def quick(self) -> "JobSpec":
        """The reduced grid: 3 epochs, 1,000/200 images, the extreme levels, one seed, the first two epsilons.

        Results are marked quick and never count toward a verdict."""
        comp = [c.model_copy(update={"levels": sorted({c.levels[0], c.levels[-1]}) if c.levels else c.levels,
                                     "finetune_epochs": min(c.finetune_epochs, 1), "qat_epochs": min(c.qat_epochs, 1)}) for c in self.compression]
        atk = [a.model_copy(update={"eps": a.eps[:2], "steps": min(a.steps, 5), "queries": min(a.queries, 200)}) for a in self.attacks]
        return self.model_copy(update={
            "train": self.train.model_copy(update={"epochs": min(self.train.epochs, 3), "adv_steps": min(self.train.adv_steps, 3),
                                                   "batch_size": min(self.train.batch_size, 64)}),
            "data": self.data.model_copy(update={"n_train": min(self.data.n_train or 1000, 1000), "n_test": min(self.data.n_test or 200, 200)}),
            "compression": comp, "attacks": atk, "seeds": self.seeds[:1], "quick_mode": True,
        })


def _parse(text: str, name: str) -> dict:
    try:
        if name.endswith(".json"):
            return json.loads(text)
        if name.endswith((".yaml", ".yml")):
            import yaml

            return yaml.safe_load(text) or {}
        return tomllib.loads(text)
    except Exception as exc:  # both parsers raise their own error types
        raise SpecError(f"{name}: not valid {'YAML' if name.endswith(('.yaml', '.yml')) else 'JSON' if name.endswith('.json') else 'TOML'}: {exc}") from None


def load_spec(source: str | Path | dict, *, name: str | None = None) -> JobSpec:
    """Read and validate a spec (file path, or an already parsed mapping)."""
    if isinstance(source, dict):
        data, name = source, name or "spec"
    else:
        path = Path(source)
        try:  # a regular file of at most 16 MiB: a FIFO named spec.toml is refused, not waited on
            raw = read_regular_file(path, limit=MAX_SMALL_FILE_BYTES, what="spec file")
            text = raw.decode("utf-8")
        except FileRefused as exc:
            raise SpecError(str(exc)) from None
        except UnicodeDecodeError as exc:
            raise SpecError(f"{path}: not UTF-8 text (byte at offset {exc.start})") from None
        data, name = _parse(text, str(path)), str(path)
    try:
        return JobSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        lines = [f"{name}: field {'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SpecError("\n".join(lines)) from None


def catalogue() -> dict[str, JobSpec]:
    """The built-in specs, one per contradiction of the seed, by id."""
    folder = resources.files("replicate") / "catalogue"
    specs = {}
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            spec = load_spec(_parse(entry.read_text(encoding="utf-8"), entry.name), name=entry.name)
            specs[spec.id] = spec
    return specs


def get_claim_spec(claim_id: str) -> JobSpec:
    specs = catalogue()
    if claim_id not in specs:
        raise SpecError(f"no catalogue claim {claim_id!r}; known: {', '.join(specs)} (or give a spec file)")
    return specs[claim_id]
