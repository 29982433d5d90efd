"""The engine's YAML configuration: one validated pydantic model per section.

Why pydantic with ``extra="forbid"``: a typo in a YAML key (``learning_rate`` for ``lr``) must fail loudly at
load time, not silently train with a default for an hour. Every validation failure becomes one
:class:`ConfigError` line that names the dotted key and, for choices, the allowed values, e.g.
``model.name: must be one of UNet, BasicUNet, AttentionUnet, SegResNet, DynUNet, CAREUNet (got 'Foo')``.

The resolved config (defaults filled in) is written beside every checkpoint; ``dump_config`` output loads
back to an identical object (round trip), so a model folder is self-describing.
"""

from __future__ import annotations

import copy
import inspect
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MODEL_NAMES = ("UNet", "BasicUNet", "AttentionUnet", "SegResNet", "DynUNet", "CAREUNet")
UNCERTAINTY_METHODS = ("entropy", "margin", "least_confidence", "bald", "variance", "tta")


class ConfigError(ValueError):
    """An invalid engine configuration. ``str(exc)`` is one readable line naming the key(s)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Augmentation(_Section):
    """Light, label-preserving augmentation; enough for fine-tuning on a handful of corrected images."""

    flips: bool = True
    rot90: bool = True  # only applied in the YX plane and only when the patch is square in YX
    intensity_scale: float = Field(0.1, ge=0.0, le=1.0)  # x * (1 + U(-s, s))
    intensity_shift: float = Field(0.1, ge=0.0, le=1.0)  # x + U(-s, s) (normalised units)


class DataConfig(_Section):
    spatial_dims: Literal[2, 3] = 2
    in_channels: int = Field(1, ge=1)
    normalization: Literal["percentile", "zscore", "minmax", "none"] = "percentile"
    percentiles: tuple[float, float] = (1.0, 99.8)
    patch_size: list[int] = Field(default_factory=lambda: [128, 128])
    foreground_fraction: float = Field(0.5, ge=0.0, le=1.0)  # share of patches centred on fg/corrected px
    augmentation: Augmentation = Field(default_factory=Augmentation)

    @field_validator("percentiles")
    @classmethod
    def _order(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= v[0] < v[1] <= 100.0:
            raise ValueError(f"must be two increasing values in [0, 100] (got {list(v)})")
        return v

    @field_validator("patch_size")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(s < 4 for s in v):
            raise ValueError(f"every size must be >= 4 (got {v})")
        return v


class ModelConfig(_Section):
    """A MONAI network (or CAREUNet, CSBDeep / CAREamics' UNet) by name plus the engine's cheap-uncertainty head.

    ``params`` go to the network's constructor (checked against its signature); ``head_features`` is the
    backbone's output width, followed by activation -> dropout(``dropout``) -> 1x1 conv to the task's outputs.
    """

    name: Literal["UNet", "BasicUNet", "AttentionUnet", "SegResNet", "DynUNet", "CAREUNet"] = "UNet"
    params: dict[str, Any] = Field(default_factory=dict)
    head_features: int = Field(16, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    # N2V2's anti-checkerboard changes (UNet and CAREUNet only; see im2im_engine/n2v_nets.py)
    blur_pool: bool = False  # down-sampling at stride 1, then a binomial blur and sub-sampling
    top_skip: bool = True  # false: no outermost skip connection

    @model_validator(mode="after")
    def _params_known(self) -> ModelConfig:
        if (self.blur_pool or not self.top_skip) and self.name not in ("UNet", "CAREUNet"):
            key = "blur_pool" if self.blur_pool else "top_skip"
            raise ValueError(f"{key}: only available for name UNet or CAREUNet (got {self.name!r})")
        if self.name == "CAREUNet":
            from .n2v_nets import CAREUNet as cls
        else:
            from monai.networks import nets

            cls = getattr(nets, self.name)
        sig = inspect.signature(cls.__init__)
        engine_set = ("self", "spatial_dims", "in_channels", "out_channels", "blur_pool", "top_skip")
        allowed = [p for p in sig.parameters if p not in engine_set]
        for key in self.params:
            if key in ("spatial_dims", "in_channels", "out_channels"):
                raise ValueError(f"params.{key}: set by the engine (data.* / task.*), remove it")
            if key in ("blur_pool", "top_skip"):
                raise ValueError(f"params.{key}: set model.{key} instead")
            if key not in allowed:
                raise ValueError(f"params.{key}: not a parameter of {self.name} (allowed: {', '.join(allowed)})")
        return self


class InstanceConfig(_Section):
    """Post-processing of the 3-class (background/interior/boundary) output into instance ids."""

    boundary_width: int = Field(1, ge=1, le=5)
    fg_threshold: float = Field(0.5, gt=0.0, lt=1.0)  # P(interior) + P(boundary)
    seed_threshold: float = Field(0.5, gt=0.0, lt=1.0)  # seeds only where P(interior) is above this
    min_size: int = Field(8, ge=0)  # objects smaller than this are dropped
    seed_distance: int = Field(5, ge=1, le=64)  # seeds (maxima of distance x P(interior)) at least this far apart


class StructMaskConfig(_Section):
    """structN2V: also hide a line of neighbours of every masked pixel, for noise correlated along it."""

    axes: Literal["horizontal", "vertical", "cross"] = "horizontal"  # along X, along Y, or both (YX plane)
    span: int = Field(5, ge=3, le=15)  # odd; the line is ``span`` pixels long, centred on the masked pixel

    @field_validator("span")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"must be odd (got {v})")
        return v


class N2VConfig(_Section):
    """Blind-spot masking of Noise2Void (``uniform``: a random neighbour) / N2V2 (``median`` of the window).

    Window 11 as in CAREamics, but 5 % of the pixels of each patch masked (one per 20-pixel stratum) where
    CAREamics masks 0.2 %: only masked pixels are in the loss, so each step learns from 25x more of them,
    and the replacements still leave 95 % of every input as it was (Noise2Self masks one pixel in 16). At 300
    steps x 16 patches of 64² it is worth 2-3 dB PSNR (``benchmarks/README.md`` #10). See
    :mod:`im2im_engine.n2v`.
    """

    strategy: Literal["uniform", "median"] = "uniform"
    masked_percent: float = Field(5.0, ge=0.05, le=10.0)  # percent of pixels masked per patch and channel
    window: int = Field(11, ge=3, le=21)  # odd; neighbourhood the replacement comes from
    struct_mask: StructMaskConfig | None = None
    independent_channels: bool = True  # each channel denoised on its own (channels folded into the batch)

    @field_validator("window")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"must be odd (got {v})")
        return v


class TaskConfig(_Section):
    kind: Literal["semantic", "instance", "regression", "denoise"] = "semantic"
    num_classes: int = Field(2, ge=2)  # semantic only, includes background
    out_channels: int = Field(1, ge=1)  # regression only (denoise: always data.in_channels)
    loss: Literal["dice_ce", "ce", "dice", "l1", "mse"] | None = None  # None: dice_ce / l1 / mse by task
    normalize_target: bool = True  # regression: percentile-normalise targets like inputs
    instance: InstanceConfig = Field(default_factory=InstanceConfig)
    n2v: N2VConfig = Field(default_factory=N2VConfig)  # denoise only

    @model_validator(mode="after")
    def _loss_fits(self) -> TaskConfig:
        if self.loss is None:
            return self
        seg = ("dice_ce", "ce", "dice")
        if not self.classify and self.loss in seg:
            raise ValueError(f"loss: must be one of l1, mse for {self.kind} (got {self.loss!r})")
        if self.classify and self.loss not in seg:
            raise ValueError(f"loss: must be one of dice_ce, ce, dice for {self.kind} (got {self.loss!r})")
        return self

    @property
    def classify(self) -> bool:
        """Class probabilities (semantic, instance) rather than intensities (regression, denoise)."""
        return self.kind in ("semantic", "instance")

    @property
    def output_channels(self) -> int:
        """Channels the network head produces for this task."""
        return {"semantic": self.num_classes, "instance": 3}.get(self.kind, self.out_channels)

    @property
    def resolved_loss(self) -> str:
        return self.loss or {"regression": "l1", "denoise": "mse"}.get(self.kind, "dice_ce")


class Weights(_Section):
    """Per-pixel loss weights by where a pixel's label came from; the caller builds the weight maps.

    ``painted``: set by a person's edit. ``reviewed``: not edited, but in an image the person marked done
    (checked all of it). ``pseudo`` / ``prediction``: copied from the pseudo label or a model's prediction
    and not vouched for. ``ignore``: under the ignore mask. Pixels of a label started empty and never
    painted in an image that is not done carry no information and get 0. ``corrected`` (older configs)
    sets both ``painted`` and ``reviewed``.
    """

    painted: float = Field(1.0, ge=0.0)
    reviewed: float = Field(1.0, ge=0.0)
    pseudo: float = Field(0.03, ge=0.0)
    prediction: float = Field(0.03, ge=0.0)
    ignore: float = Field(0.0, ge=0.0)

    @model_validator(mode="before")
    @classmethod
    def _legacy_corrected(cls, data: Any) -> Any:
        if isinstance(data, dict) and "corrected" in data:
            data = dict(data)
            level = data.pop("corrected")
            data.setdefault("painted", level)
            data.setdefault("reviewed", level)
        return data


class TrainingConfig(_Section):
    steps: int = Field(200, ge=1)
    # epochs, when set, replace ``steps``: one epoch draws ``patches_per_image`` patches from every image
    epochs: int | None = Field(None, ge=1)
    patches_per_image: int = Field(4, ge=1)
    batch_size: int = Field(4, ge=1)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float = Field(1.0, ge=0.0)  # 0 disables
    weights: Weights = Field(default_factory=Weights)
    val_every: int = Field(50, ge=1)
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0)  # hold out from train when no val set is given
    early_stopping_patience: int = Field(0, ge=0)  # in validations; 0 disables
    seed: int = 0
    amp: bool = True  # CUDA only: bf16 where supported, else fp16 with a grad scaler
    channels_last: bool = True  # CUDA only
    num_threads: int = Field(0, ge=0)  # CPU threads for torch; 0 leaves torch's default
    # background threads cutting the next patch batches (im2im_engine/pipeline.py); None: 4 on CUDA, 0 on CPU
    loader_workers: int | None = Field(None, ge=0, le=64)


class InferenceConfig(_Section):
    roi_size: list[int] = Field(default_factory=lambda: [128, 128])
    overlap: float = Field(0.25, ge=0.0, lt=1.0)
    mode: Literal["gaussian", "constant"] = "gaussian"
    sw_batch_size: int = Field(4, ge=1)
    sigma_scale: float = Field(0.125, gt=0.0)
    # average the output over the YX flips / quarter turns data.augmentation trained on (im2im_engine/tta.py):
    # up to 8 passes per window; the denoise presets turn it on
    tta: bool = False

    @field_validator("roi_size")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(s < 4 for s in v):
            raise ValueError(f"every size must be >= 4 (got {v})")
        return v


class UncertaintyConfig(_Section):
    method: Literal["entropy", "margin", "least_confidence", "bald", "variance", "tta"] = "entropy"
    passes: int = Field(8, ge=1, le=64)  # MC-dropout head passes, or TTA flips (capped at 2**spatial_dims)
    # bald/variance: dropout masks drawn per pixel where the Gaussian approximation of the dropout head is
    # not trusted (near the decision boundary), and everywhere when it would cost more (many classes)
    samples: int = Field(1024, ge=8, le=65536)
    reduction: Literal["mean", "topk"] = "mean"
    topk_percent: float = Field(10.0, gt=0.0, le=100.0)


class EngineConfig(_Section):
    """The whole engine configuration (one YAML file)."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    uncertainty: UncertaintyConfig = Field(default_factory=UncertaintyConfig)

    @model_validator(mode="after")
    def _consistent(self) -> EngineConfig:
        d = self.data.spatial_dims
        for key, val in (("data.patch_size", self.data.patch_size), ("inference.roi_size", self.inference.roi_size)):
            if len(val) != d:
                raise ValueError(f"{key}: needs {d} sizes for data.spatial_dims={d} (got {val})")
        if self.uncertainty.method in ("entropy", "margin", "least_confidence", "bald") and self.task.kind == "regression":
            raise ValueError(
                f"uncertainty.method: must be one of variance, tta for regression (got {self.uncertainty.method!r})"
            )
        if self.task.kind == "denoise":
            _denoise_consistent(self)
        return self


Config = EngineConfig


def _denoise_consistent(cfg: EngineConfig) -> None:
    """Denoising (N2V): output channels are the input channels, TTA is the uncertainty, the window fits.

    ``task.out_channels`` follows ``data.in_channels`` unless set explicitly (then it must match), so a
    preset stays valid when a project sets the channel count of its images.
    """
    task, data = cfg.task, cfg.data
    if "out_channels" not in task.model_fields_set:
        task.out_channels = data.in_channels
    elif task.out_channels != data.in_channels:
        raise ValueError(f"task.out_channels: must equal data.in_channels ({data.in_channels}) for denoise "
                         f"(got {task.out_channels})")
    if "method" not in cfg.uncertainty.model_fields_set:
        cfg.uncertainty.method = "tta"
    elif cfg.uncertainty.method != "tta":
        raise ValueError(f"uncertainty.method: must be tta for denoise (got {cfg.uncertainty.method!r})")
    window = task.n2v.window
    if any(p < window for p in data.patch_size):
        raise ValueError(f"data.patch_size: every size must be >= task.n2v.window ({window}) for denoise "
                         f"(got {data.patch_size})")


def _format_error(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    typ = err["type"]
    got = err.get("input")
    if typ == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        choices = ", ".join(s.strip().strip("'") for s in expected.replace(" or ", ", ").split(","))
        return f"{loc}: must be one of {choices} (got {got!r})"
    if typ == "extra_forbidden":
        return f"{loc}: unknown key" + _allowed_hint(err["loc"])
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if re.match(r"^[\w.]+: ", msg):  # a validator that already names its key relative to ``loc``
        return f"{loc}.{msg}" if loc else msg
    if "(got" in msg:
        return f"{loc}: {msg}" if loc else msg
    prefix = f"{loc}: " if loc else ""
    return f"{prefix}{msg[0].lower() + msg[1:]} (got {got!r})"


def _allowed_hint(loc: tuple) -> str:
    model: Any = EngineConfig
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        model = field.annotation
    fields = getattr(model, "model_fields", None)
    return f" (allowed: {', '.join(fields)})" if fields else ""


def load_config(
    source: str | os.PathLike | dict | EngineConfig | None = None, overrides: dict | None = None
) -> EngineConfig:
    """Load and validate a config from a YAML path, a dict or a config; ``overrides`` deep-merge on top.

    Raises :class:`ConfigError` with one line naming the offending key(s). A top-level ``loop:`` section
    belongs to the active-learning layer: the caller strips it; here it is an unknown key like any other.
    """
    origin = ""
    if source is None:
        data: Any = {}
    elif isinstance(source, EngineConfig):
        data = source.model_dump(mode="json")
    elif isinstance(source, dict):
        data = copy.deepcopy(source)
    else:
        path = Path(source)
        origin = f"{path}: "
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML ({' '.join(str(exc).split())})") from None
        if data is None:
            data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}expected a mapping at the top level, got {type(data).__name__}")
    if overrides:
        data = deep_merge(data, overrides)
    try:
        return EngineConfig.model_validate(data)
    except ValidationError as exc:
        lines = [_format_error(e) for e in exc.errors()]
        raise ConfigError(origin + "; ".join(lines)) from None


def deep_merge(base: dict, extra: dict) -> dict:
    """``extra`` on top of ``base``; nested dicts merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, val in extra.items():
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], val)
        else:
            out[key] = copy.deepcopy(val)
    return out


def config_to_dict(cfg: EngineConfig) -> dict:
    """Plain JSON/YAML-safe dict of the resolved config."""
    return cfg.model_dump(mode="json")


def dump_config(cfg: EngineConfig) -> str:
    """YAML text of the resolved config; ``load_config`` of it gives an equal config."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def save_config(cfg: EngineConfig, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML atomically (temp file + rename)."""
    from .atomic import atomic_write_bytes

    return atomic_write_bytes(Path(path), dump_config(cfg).encode())


def preset_dir() -> Path:
    """Folder of the bundled presets (``resources/configs``)."""
    return Path(__file__).resolve().parent.parent / "resources" / "configs"
