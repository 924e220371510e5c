"""Trainer checkpoints: atomic directories that hold everything a bit-exact resume or generation needs.

    OUT/checkpoints/step-0001000/
        model.safetensors        live weights of AudioGenOmni (MMDiT + T5 caption encoder)
        ema.safetensors          EMA of the trainable parameters {name: fp32 tensor}
        optimizer.pt             AdamW state          (torch.save of tensors/dicts: weights_only=True)
        scheduler.pt             InverseLR state
        rng.pt                   every RNG state, per process: {"world_size", "ranks": [...]}
        data.pt                  the loader position, per process: {"world_size", "ranks": [...]}
        text_encoder/            tokenizer + T5 config (+ weights) via save_pretrained
        meta.json                step, resolved config, network name + MMDiTConfig, text encoder and flow
                                 configs, encoder identities, latent statistics, and every file's
                                 size and sha256 — written last

A checkpoint is written into `step-NNNNNNN.tmp-<pid>/` and renamed; a directory is valid when its
meta.json parses and every file it lists has its size and sha256. `latest_checkpoint` returns the
newest valid one (an interrupted write or a damaged file is skipped).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model.encoders.registry import file_sha256
from pipeline.commit import fsync_dir

CHECKPOINT_DIR = "checkpoints"
STEP_DIR_RE = re.compile(r"^step-(\d{7,})$")
META = "meta.json"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the path and the problem."""


def step_dir_name(step: int) -> str:
    return f"step-{step:07d}"


def _list_files(root: Path) -> dict[str, dict]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != META:
            rel = p.relative_to(root).as_posix()
            with open(p, "rb") as f:
                os.fsync(f.fileno())
            out[rel] = {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
    return out


# ---- writing -------------------------------------------------------------------------------

def begin_checkpoint(out_dir: str | Path, step: int, token: int | None = None) -> Path:
    """Create the temporary directory of checkpoint `step` (`token`: the writer's pid)."""
    root = Path(out_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{step_dir_name(step)}.tmp-{token if token is not None else os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def write_state_files(tmp: Path, *, model: torch.nn.Module, ema_state: dict, optimizer_state: dict,
                      scheduler_state: dict, rng_states: list, data_states: list) -> None:
    from safetensors.torch import save_file, save_model

    save_model(model, str(tmp / "model.safetensors"))
    save_file(ema_state, str(tmp / "ema.safetensors"))
    torch.save(optimizer_state, tmp / "optimizer.pt")
    torch.save(scheduler_state, tmp / "scheduler.pt")
    torch.save({"world_size": len(rng_states), "ranks": rng_states}, tmp / "rng.pt")
    torch.save({"world_size": len(data_states), "ranks": data_states}, tmp / "data.pt")
    text_encoder = getattr(model, "text_encoder", None)
    if text_encoder is not None:
        text_encoder.tokenizer.save_pretrained(tmp / "text_encoder")
        text_encoder.encoder.save_pretrained(tmp / "text_encoder")


def commit_checkpoint(tmp: Path, step: int, meta: dict) -> Path:
    """Write meta.json (with the file list) into `tmp`, fsync, and rename it to step-NNNNNNN."""
    meta = {**meta, "format": FORMAT_VERSION, "step": step, "files": _list_files(tmp)}
    with open(tmp / META, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    final = tmp.parent / step_dir_name(step)
    if final.exists():  # a re-run of the same step (resume after a crash that followed the rename)
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(tmp.parent)
    return final


def prune_checkpoints(out_dir: str | Path, keep: int | None) -> None:
    """Remove the oldest committed checkpoints beyond the newest `keep`, and stale temp dirs."""
    root = Path(out_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return
    for stale in root.glob("step-*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if keep is None:
        return
    steps = sorted(_committed(root), key=lambda p: p[0])
    for _, path in steps[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


# ---- reading -------------------------------------------------------------------------------

def _committed(root: Path) -> list[tuple[int, Path]]:
    out = []
    for p in root.iterdir() if root.is_dir() else []:
        m = STEP_DIR_RE.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return out


def read_meta(path: str | Path, verify: bool = True) -> dict:
    """meta.json of a checkpoint directory; with `verify`, every listed file's size and sha256."""
    path = Path(path)
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no {META} (not a checkpoint, or an interrupted write)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path / META}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("files"), dict) or "step" not in meta:
        raise CheckpointError(f"{path / META}: missing 'step' or 'files'")
    if verify:
        for rel, info in meta["files"].items():
            f = path / rel
            if not f.is_file():
                raise CheckpointError(f"{path}: {rel} is missing")
            if f.stat().st_size != info["bytes"]:
                raise CheckpointError(f"{path}: {rel} has {f.stat().st_size} bytes, meta.json says {info['bytes']}")
            if file_sha256(f) != info["sha256"]:
                raise CheckpointError(f"{path}: {rel} does not match its sha256 in meta.json")
    return meta


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest valid checkpoint under OUT/checkpoints (None when there is none)."""
    root = Path(out_dir) / CHECKPOINT_DIR
    for _, path in sorted(_committed(root), key=lambda p: -p[0]):
        try:
            read_meta(path, verify=True)
        except CheckpointError:
            continue
        return path
    return None


def resolve_checkpoint(path: str | Path) -> Path:
    """A step directory as given, or the newest valid one of a training OUT directory."""
    path = Path(path)
    if (path / META).is_file():
        return path
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is not None:
            return found
        raise CheckpointError(f"{path}: no valid checkpoint (neither a step directory nor an OUT with "
                              f"{CHECKPOINT_DIR}/step-NNNNNNN)")
    raise CheckpointError(f"{path}: checkpoint not found")


def load_torch(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def load_training_state(path: str | Path) -> dict:
    """Everything `write_state_files` wrote (tensors on CPU) plus meta."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_meta(path, verify=True)
    return {
        "meta": {**meta, "path": str(path)},
        "ema": load_file(str(path / "ema.safetensors")),
        "optimizer": load_torch(path / "optimizer.pt"),
        "scheduler": load_torch(path / "scheduler.pt"),
        "rng": load_torch(path / "rng.pt"),
        "data": load_torch(path / "data.pt"),
    }


# ---- inference -----------------------------------------------------------------------------

@dataclass
class InferenceBundle:
    model: torch.nn.Module  # AudioGenOmni in eval mode
    network_name: str
    network_cfg: Any  # MMDiTConfig
    text_cfg: Any  # TextEncoderConfig (pointing at the checkpoint's text_encoder/)
    flow_cfg: Any  # FlowConfig
    encoders: dict  # kind -> {"name", "id"}
    latent_stats: Any  # LatentStats
    step: int


def build_model_from_meta(path: Path, meta: dict):
    """An AudioGenOmni of the checkpoint's architecture, its T5 loaded from `path/text_encoder`."""
    from model.config import MMDiTConfig
    from model.mmdit import MMDiT
    from model.omni import AudioGenOmni
    from model.text_encoder import T5TextEncoder, TextEncoderConfig

    network_cfg = MMDiTConfig.model_validate(meta["network_cfg"])
    text = dict(meta.get("text_encoder") or {})
    text.update(name_or_path=str(path / "text_encoder"), local_files_only=True, revision=None)
    text_cfg = TextEncoderConfig.model_validate(text)
    return AudioGenOmni(MMDiT(network_cfg), T5TextEncoder(text_cfg)), network_cfg, text_cfg


def load_for_inference(path: str | Path, *, use_ema: bool = True, device="cpu") -> InferenceBundle:
    """Load a checkpoint (a step directory, or a training OUT directory → its newest valid one)."""
    from safetensors.torch import load_file, load_model

    from model.config import FlowConfig
    from model.training.data import LatentStats

    path = resolve_checkpoint(path)
    meta = read_meta(path, verify=True)
    for key in ("network", "network_cfg", "flow", "encoders", "latent_stats"):
        if key not in meta:
            raise CheckpointError(f"{path / META}: missing {key!r}")
    model, network_cfg, text_cfg = build_model_from_meta(path, meta)
    missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}/model.safetensors does not match network {meta['network']!r}: "
                              f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    if use_ema:
        ema = load_file(str(path / "ema.safetensors"))
        params = dict(model.named_parameters())
        absent = sorted(set(params) - set(ema))
        if absent:
            raise CheckpointError(f"{path}/ema.safetensors lacks {absent[:5]}")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(ema[name].to(p.dtype))
    model.to(device).eval()
    return InferenceBundle(
        model=model,
        network_name=meta["network"],
        network_cfg=network_cfg,
        text_cfg=text_cfg,
        flow_cfg=FlowConfig.model_validate(meta["flow"]),
        encoders={k: dict(v) for k, v in meta["encoders"].items()},
        latent_stats=LatentStats.from_dict(meta["latent_stats"]),
        step=int(meta["step"]),
    )
