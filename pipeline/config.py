"""Run config: YAML under datasets_cfg/, validated by pydantic before anything runs.

A bad config raises `ConfigError` naming the file, the field path and the problem,
e.g. `datasets_cfg/demo.yaml: stages[1].options.max_clip_s: Input should be greater than 0`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from .errors import ConfigError
from .registry import adapter_class, stage_class
from .stage import RetryPolicy

FROZEN_PLAN = "frozen_plan"  # validation context: a config read back from plan.json


def config_from_plan(plan: dict) -> RunConfig:
    """The run config frozen in plan.json (its media frames may be larger than an appended clip
    encoder's: see adopt_finished_media_frames)."""
    return RunConfig.model_validate(plan["config"], context={FROZEN_PLAN: True})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _validated(model: type[BaseModel], options: dict) -> dict:
    """Validate plugin options; errors keep their path under `options.` (pydantic drops it here)."""
    try:
        return model.model_validate(options).model_dump(mode="json")
    except ValidationError as exc:
        raise ValueError("; ".join(f"options.{_fmt_loc(e['loc'])}: {e['msg']}" for e in exc.errors())) from None


class Resources(Strict):
    num_cpus: float = Field(1.0, gt=0, description="CPUs per task (CPU stage) or per actor (model stage)")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per actor (model stages)")
    actors: int = Field(1, ge=1, description="fixed actor-pool size of a model stage (min = max)")


class CorpusSpec(Strict):
    adapter: str
    options: dict[str, Any] = Field(default_factory=dict)
    weight: float = Field(1.0, gt=0, description="share of this corpus in the training mixture")

    @model_validator(mode="after")
    def _check(self):
        self.options = _validated(adapter_class(self.adapter).Options, self.options)
        return self


class StageSpec(Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="after")
    def _check(self):
        self.options = _validated(stage_class(self.name).Options, self.options)
        return self


class ShardSpec(Strict):
    samples_per_shard: int = Field(64, ge=1)
    include_flac: bool = True
    include_frames: bool = Field(False, description="write decoded CLIP/sync frames as uint8 .npy members")


class RayOptions(Strict):
    address: str | None = Field(None, description="existing cluster; None starts Ray on this machine")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the embedded local Ray")
    max_tasks_in_flight: int = Field(0, ge=0, description="0: twice the cluster's CPUs")


class RunConfig(Strict):
    name: str = "run"
    partition_size: int = Field(256, ge=1, description="input rows per partition")
    corpora: list[CorpusSpec] = Field(..., min_length=1)
    stages: list[StageSpec] = Field(default_factory=list)
    shards: ShardSpec = Field(default_factory=ShardSpec)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    max_failure_rate: float = Field(0.5, ge=0, le=1, description="abort when failed/in of a stage exceeds this")
    min_rows_before_abort: int = Field(20, ge=1, description="rows a stage must see before the rate is judged")
    ray: RayOptions = Field(default_factory=RayOptions)
    _media_resolved: list[str] = PrivateAttr(default_factory=list)  # media frame options taken from encoders

    @model_validator(mode="after")
    def _unique_stages(self, info: ValidationInfo):
        names = [s.name for s in self.stages]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"stage listed twice: {sorted(dup)}")
        resolve_media_frames(self, frozen=bool(info.context and info.context.get(FROZEN_PLAN)))
        return self

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def canonical(self) -> dict:
        """What the config hash covers: everything that changes outputs (not where Ray runs)."""
        d = self.model_dump(mode="json")
        d.pop("ray", None)
        return d

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()


def _fmt_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _apply_override(data: dict, dotted: str, value: Any, source: str) -> None:
    """`stages.media.options.max_clip_s=5`: list items are addressed by index or by name/adapter."""
    parts = dotted.split(".")
    cur: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, list):
            idx = None
            if part.isdigit():
                idx = int(part)
            else:
                for j, item in enumerate(cur):
                    if isinstance(item, dict) and part in (item.get("name"), item.get("adapter")):
                        idx = j
                        break
            if idx is None or idx >= len(cur):
                raise ConfigError(f"{source}: --set {dotted}: no list item {part!r}")
            if last:
                cur[idx] = value
            else:
                cur = cur[idx]
        elif isinstance(cur, dict):
            if last:
                cur[part] = value
            else:
                cur = cur.setdefault(part, {})
        else:
            raise ConfigError(f"{source}: --set {dotted}: {'.'.join(parts[:i])} is not a mapping or list")


def _resolve_roots(data: dict, base: Path) -> None:
    for corpus in data.get("corpora") or []:
        opts = corpus.get("options") if isinstance(corpus, dict) else None
        if isinstance(opts, dict):
            for k in ("root",):
                v = opts.get(k)
                if isinstance(v, str) and v and "://" not in v and not Path(v).is_absolute():
                    opts[k] = str((base / v).resolve())


def parse_config(data: Any, source: str = "<config>", overrides: list[str] | None = None,
                 base_dir: Path | None = None) -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    apply_overrides(data, overrides, source)
    if base_dir is not None:
        _resolve_roots(data, base_dir)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_fmt_loc(e['loc']) or '<top>'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid config\n  " + "\n  ".join(lines)) from None
    except KeyError as exc:  # unknown adapter / stage name
        raise ConfigError(f"{source}: {exc.args[0]}") from None


def apply_overrides(data: dict, overrides: list[str] | None, source: str) -> None:
    """`--set key.path=value` overrides (values parsed as YAML) applied to a config mapping in place."""
    for ov in overrides or []:
        if "=" not in ov:
            raise ConfigError(f"{source}: --set {ov!r}: expected key=value")
        k, v = ov.split("=", 1)
        _apply_override(data, k.strip(), yaml.safe_load(v), source)


def read_yaml(path: Path, what: str = "config file") -> Any:
    """A YAML file's data (safe_load); a missing, non-UTF-8 or invalid file is a ConfigError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    path = Path(path)
    return parse_config(read_yaml(path), str(path), overrides, base_dir=path.parent)


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(d, list) and d and all(isinstance(x, dict) for x in d):
        out = {}
        for i, v in enumerate(d):
            name = v.get("name") or v.get("adapter") or str(i)
            out.update(flatten(v, f"{prefix}.{name}" if prefix else str(name)))
        return out
    return {prefix: d}


def changed_fields(old: dict, new: dict) -> list[str]:
    a, b = flatten(old), flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


# -- cross-stage: the frames the media stage makes come from the feature encoders ----------------

MEDIA_FRAME_FIELDS = {  # media option → (feature stage, FeatureSpec field, name in messages)
    "clip_size": ("clip", "frame_size", "px frames"),
    "clip_fps": ("clip", "frame_fps", "fps frames"),
    "sync_size": ("sync", "frame_size", "px frames"),
    "sync_fps": ("sync", "frame_fps", "fps frames"),
}
FRAME_COLUMNS = {"clip": "clip_frames", "sync": "sync_frames", "latent": "audio_44k"}


def _media_defaults() -> dict[str, float]:
    from .stages.media import DEFAULT_CLIP_FPS, DEFAULT_CLIP_SIZE, DEFAULT_SYNC_FPS, DEFAULT_SYNC_SIZE

    return {"clip_size": DEFAULT_CLIP_SIZE, "clip_fps": DEFAULT_CLIP_FPS, "sync_size": DEFAULT_SYNC_SIZE,
            "sync_fps": DEFAULT_SYNC_FPS}


def _encoder_value(cfg: RunConfig, stage: str, attr: str):
    from model.encoders.registry import feature_spec

    names = [s.name for s in cfg.stages]
    if stage not in names:
        return None, None
    enc = cfg.stage(stage).options.get("encoder")
    return enc, getattr(feature_spec(enc), attr)


def resolve_media_frames(cfg: RunConfig, frozen: bool = False) -> None:
    """Fill the media stage's frame sizes/rates from the clip/sync encoders (one source of truth)
    and refuse an explicit value or a stage order that does not fit, naming both sides.
    `frozen`: a plan's config, whose CLIP frames may be larger than its encoder's (appended stage)."""
    names = [s.name for s in cfg.stages]
    for kind, column in FRAME_COLUMNS.items():
        if kind in names:
            if "media" not in names or names.index("media") > names.index(kind):
                raise ValueError(f"stages.{kind} reads `{column}` from the media stage: list `media` before `{kind}`")
            if kind != "latent" and not cfg.stage("media").options.get("decode_frames", True):
                raise ValueError(f"stages.{kind} needs video frames but stages.media.options.decode_frames=false")
    if "media" not in names:
        return
    opts = cfg.stage("media").options
    resolved = []
    for field, (stage, attr, unit) in MEDIA_FRAME_FIELDS.items():
        enc, want = _encoder_value(cfg, stage, attr)
        have = opts.get(field)
        if have is None:
            opts[field] = want if want is not None else _media_defaults()[field]
            resolved.append(field)
        elif frozen and field == "clip_size" and want is not None and have > want:
            continue
        elif want is not None and float(have) != float(want):
            raise ValueError(f"stages.media.options.{field}={have:g} but stages.{stage} encoder {enc} takes "
                             f"{want:g} {unit}; drop the option (it defaults to the encoder's) or pick another encoder")
    cfg._media_resolved = resolved


def adopt_finished_media_frames(cfg: RunConfig, old_config: dict) -> None:
    """Appending a clip/sync stage to a finished run: keep the frames its media stage made when
    the new encoder can use them (larger CLIP frames are resized by the encoder's own
    preprocessing); refuse smaller frames or another frame rate, naming both."""
    names = [s.name for s in cfg.stages]
    old_media = next((s for s in old_config.get("stages", []) if s.get("name") == "media"), None)
    if "media" not in names or old_media is None:
        return
    opts, old_opts = cfg.stage("media").options, old_media.get("options", {})
    problems = []
    for field, (stage, attr, unit) in MEDIA_FRAME_FIELDS.items():
        new, old = opts.get(field), old_opts.get(field)
        if old is None or new is None or float(new) == float(old):
            continue
        if field not in cfg._media_resolved:
            continue  # an explicit change: refused by the rerun check as a changed option
        enc, _ = _encoder_value(cfg, stage, attr)
        if field == "clip_size" and old > new:
            opts[field] = old  # the encoder resizes + crops the larger frames
            continue
        problems.append(f"the finished run's stages.media.options.{field}={old:g} but stages.{stage} encoder "
                        f"{enc} takes {new:g} {unit}")
    if problems:
        raise ConfigError("cannot append to this run: " + "; ".join(problems)
                          + ". Use a new --out, or --new-run to decode again.")
