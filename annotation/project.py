"""A project on disk: the folder layout, its database and its configuration.

```
PROJECT/
  project.db    SQLite store (annotation.store)
  config.yaml   engine config (validated by im2im_engine) + a ``loop:`` section (validated here)
  models/       one folder per model version, written atomically by the engine worker
  exports/      what the user exported
  jobs/         job specs, their scratch data and logs
```
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from im2im_engine.atomic import atomic_write_text

from .store import Store, StoreError

TASKS = ("semantic", "instance", "regression", "denoise")
#: Tasks whose projects take images only (Noise2Void learns from the noisy images themselves).
TASKS_WITHOUT_LABELS = ("denoise",)
CONFIG_DIR = Path(__file__).resolve().parent.parent / "resources" / "configs"


class ProjectError(RuntimeError):
    """A user-facing problem with a project (message names the path and the problem)."""


class LoopSettings(BaseModel):
    """How the active-learning loop behaves. Lives under ``loop:`` in ``config.yaml``."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["least_confidence", "margin", "entropy", "bald", "batch_diversity", "random",
                      "variance"] = "entropy"
    random_share: float = Field(0.1, ge=0.0, le=1.0, description="share of each batch picked at random")
    batch_size: int = Field(5, ge=1, description="images proposed per round")
    retrain_every: int = Field(3, ge=1, description="fine-tune after this many newly corrected images")
    finetune_steps: int = Field(300, ge=1, description="steps per fine-tuning round (round 0: training.steps)")
    finetune_lr_scale: float = Field(0.3, gt=0.0, le=1.0,
                                     description="fine-tuning uses training.lr times this (keeps what was learnt)")
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="share of corrected images held out")
    accept_tolerance: float = Field(0.0, ge=0.0, description="accept a model this much worse on held-out done images")
    fallback_tolerance: float = Field(0.05, ge=0.0, description="the same, when an image left out of the round "
                                      "judges it (its label may be a pseudo label)")
    min_agreement: float = Field(0.5, ge=0.0, le=1.0, description="a model whose foreground Dice with the check "
                                 "labels is below this did not learn and is rejected")
    plateau_rounds: int = Field(3, ge=1, description="rounds without improvement before hinting to stop")
    plateau_delta: float = Field(0.005, ge=0.0)


class SlurmSettings(BaseModel):
    """How jobs are submitted when ``jobs.backend`` is ``slurm`` (see docs/cluster.md)."""

    model_config = ConfigDict(extra="forbid")

    partition: str | None = None
    time: str = Field("02:00:00", description="sbatch --time")
    gres: str | None = Field(None, description="e.g. gpu:1")
    cpus_per_task: int | None = Field(None, ge=1)
    mem: str | None = Field(None, description="e.g. 16G")
    python: str | None = Field(None, description="python on the compute node (default: this one)")
    extra_args: list[str] = Field(default_factory=list, description="more sbatch arguments")
    poll_seconds: float = Field(2.0, gt=0)


class JobSettings(BaseModel):
    """Where engine jobs run. Lives under ``jobs:`` in ``config.yaml``."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "slurm"] = "local"
    nproc: int = Field(1, ge=1, description="processes per job under torchrun (1: a plain worker)")
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)


class Person(BaseModel):
    """An author or maintainer as bioimage.io records them (``github_user`` makes a maintainer)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    github_user: str | None = None
    affiliation: str | None = None
    email: str | None = None
    orcid: str | None = None


class ExportSettings(BaseModel):
    """Who a model export names, under ``export:`` in ``config.yaml`` (bioimage.io asks for a maintainer
    with a GitHub name; without one its validator warns and the model zoo will not take the package)."""

    model_config = ConfigDict(extra="forbid")

    authors: list[Person] = Field(default_factory=list, description="default: the user name of the session")
    maintainers: list[Person] = Field(default_factory=list, description="default: the authors with a github_user")
    license: str = Field("BSD-3-Clause", description="SPDX identifier of the exported model's license")


#: Sections of config.yaml that belong to the app, not the engine.
APP_SECTIONS = ("loop", "jobs", "export")


def _format_validation(source: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        parts.append(f"{key}: {err['msg']}")
    return f"{source}: " + "; ".join(parts)


def preset_path(task: str, three_d: bool) -> Path:
    name = {"semantic": "semantic", "instance": "instance", "regression": "denoise", "denoise": "denoise_n2v"}[task]
    path = CONFIG_DIR / f"{name}_{'3d' if three_d else '2d'}.yaml"
    if not path.exists():
        raise ProjectError(f"{path}: no bundled preset for a {'3D' if three_d else '2D'} {task} task; pass --config")
    return path


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ProjectError(f"{path}: file does not exist") from None
    except yaml.YAMLError as exc:
        raise ProjectError(f"{path}: invalid YAML ({exc})".replace("\n", " ")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def validate_engine_config(data: dict, source: str) -> Any:
    """Validate with the engine's own schema so errors name the key and the allowed values."""
    from im2im_engine.config import ConfigError, load_config

    try:
        return load_config(data)
    except ConfigError as exc:
        raise ProjectError(f"{source}: {exc}") from None


def check_config(config: dict, source: str) -> None:
    """Validate the engine part with the engine's schema, ``loop`` and ``jobs`` with their models here."""
    validate_engine_config({k: v for k, v in config.items() if k not in APP_SECTIONS}, source)
    for key, model in (("loop", LoopSettings), ("jobs", JobSettings), ("export", ExportSettings)):
        try:
            model(**(config.get(key) or {}))
        except ValidationError as exc:
            raise ProjectError(_format_validation(f"{source} ({key})", exc)) from None


class Project:
    """An open project. Create with :meth:`create`, open with :meth:`open`; close when done."""

    DB = "project.db"
    CONFIG = "config.yaml"

    def __init__(self, root: Path, store: Store):
        self.root = root
        self.store = store
        self._config: dict | None = None

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, root: str | os.PathLike, task: str, config: dict) -> Project:
        """Make the folder layout and an empty database. Refuses to overwrite an existing project."""
        root = Path(root).resolve()
        if task not in TASKS:
            raise ProjectError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if (root / cls.DB).exists():
            raise ProjectError(f"{root}: a project already exists here; open it or choose another folder")
        check_config(config, str(root / cls.CONFIG))  # before anything is created
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"{root}: cannot create the project folder ({exc.strerror})") from None
        if not os.access(root, os.W_OK):
            raise ProjectError(f"{root}: project folder is not writable")
        for sub in ("models", "exports", "jobs"):
            (root / sub).mkdir(exist_ok=True)
        store = Store(root / cls.DB, create=True)
        project = cls(root, store)
        project.save_config(config)
        store.set_meta("task", task)
        store.set_meta("created_with", "im2im-active")
        return project

    @classmethod
    def open(cls, root: str | os.PathLike) -> Project:
        root = Path(root).resolve()
        if not root.exists():
            raise ProjectError(f"{root}: folder does not exist")
        if not (root / cls.DB).exists():
            raise ProjectError(f"{root}: not an im2im-active project (no {cls.DB})")
        try:
            store = Store(root / cls.DB)
        except StoreError as exc:
            raise ProjectError(str(exc)) from None
        return cls(root, store)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ layout
    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def task(self) -> str:
        return self.store.get_meta("task", "semantic")

    # ------------------------------------------------------------ configuration
    @property
    def config(self) -> dict:
        """The whole ``config.yaml`` (engine keys + ``loop``), read once per project object."""
        if self._config is None:
            self._config = read_yaml(self.root / self.CONFIG)
        return self._config

    def engine_config_dict(self) -> dict:
        return {k: v for k, v in self.config.items() if k not in APP_SECTIONS}

    def engine_config(self) -> Any:
        return validate_engine_config(self.engine_config_dict(), str(self.root / self.CONFIG))

    @property
    def loop(self) -> LoopSettings:
        try:
            return LoopSettings(**(self.config.get("loop") or {}))
        except ValidationError as exc:
            raise ProjectError(_format_validation(f"{self.root / self.CONFIG} (loop)", exc)) from None

    @property
    def jobs(self) -> JobSettings:
        try:
            return JobSettings(**(self.config.get("jobs") or {}))
        except ValidationError as exc:
            raise ProjectError(_format_validation(f"{self.root / self.CONFIG} (jobs)", exc)) from None

    @property
    def export_settings(self) -> ExportSettings:
        try:
            return ExportSettings(**(self.config.get("export") or {}))
        except ValidationError as exc:
            raise ProjectError(_format_validation(f"{self.root / self.CONFIG} (export)", exc)) from None

    def save_config(self, config: dict) -> None:
        """Validate then write atomically; a bad config never replaces a good one."""
        check_config(config, str(self.root / self.CONFIG))
        atomic_write_text(self.root / self.CONFIG, yaml.safe_dump(config, sort_keys=False))
        self._config = config


def build_config(task: str, three_d: bool, n_channels: int, user_config: str | os.PathLike | None,
                 spatial_shapes: list[tuple[int, ...]] | None = None) -> tuple[dict, list[str]]:
    """The project's config: the user's YAML or the bundled preset, fitted to the data's channel count and
    to the image sizes (see :func:`fit_windows`). Returns the config and one line per change made."""
    source = Path(user_config) if user_config else preset_path(task, three_d)
    config = read_yaml(source)
    data = config.setdefault("data", {})
    if not user_config:
        data["in_channels"] = n_channels
    config.setdefault("loop", {})
    check_config(config, str(source))  # errors name the file the user wrote
    from .fitting import fit_windows

    notes = fit_windows(config, spatial_shapes or [])
    if notes:
        check_config(config, str(source))
    return config, notes


def remove_partial(path: Path) -> None:
    """Remove a half-made project folder after a failed ``init`` that created it."""
    shutil.rmtree(path, ignore_errors=True)
