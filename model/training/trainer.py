"""The training loop: flow matching on the shards, with Accelerate for devices, DDP and precision.

One `train_loop(cfg)` serves one process, `accelerate launch` (DDP over gloo on CPU, NCCL on GPU)
and Ray Train workers alike. Per optimiser step every process accumulates a fixed number of
micro-batches (config.py explains the arithmetic); gradients are synchronised on the last one.

Randomness that shapes the loss — the flow time t, the noise x0 and the CFG dropout flags — is
drawn per clip from a generator seeded by (seed, step, clip key), or (seed, epoch, clip key) when
the data are read in passes (`data.resampled: false`, each clip once per epoch). It therefore does
not depend on how clips are spread over processes or micro-batches, and a resumed run draws
exactly what an uninterrupted one does. The remaining state (weights, EMA, AdamW, schedule, every RNG, the loader
position) is in each checkpoint (checkpoint.py), so resuming at step k is bit-identical on CPU.
"""
from __future__ import annotations

import os

# Bit-exact CPU runs: MKL's default GEMM kernels may round differently with the buffers' memory
# alignment; "AUTO,STRICT" keeps the fast code path and makes results reproducible (read lazily
# by MKL, so it must be set before the first matrix product; a user's own setting wins).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import contextlib
import hashlib
import json
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from model.config import MMDiTConfig
from model.flow import EulerSampler, FlowMatching
from model.inputs import MODALITIES, Conditions
from model.training import checkpoint as ckpt
from model.training.config import TrainConfig
from model.training.ema import EMA
from model.training.schedule import InverseLR
from pipeline.errors import ConfigError

LOG_FILE = "log.jsonl"
RANK_LOG_DIR = "ranks"
TB_DIR = "tb"
SAMPLES_DIR = "samples"
RANDOM_T5_DIR = "text_encoder_init"
VAL_NOISE_OFFSET = 1_000_003  # keeps validation noise apart from training noise
_SEED_MASK = (1 << 63) - 1


@dataclass
class TrainResult:
    out_dir: Path
    last_checkpoint: Path | None
    losses: list[float] = field(default_factory=list)  # per optimiser step, from the start of the run
    steps: int = 0
    samples_per_s: float = 0.0
    data_wait_fraction: float = 0.0

    def mean_loss(self, first: bool, n: int = 20) -> float:
        xs = self.losses[:n] if first else self.losses[-n:]
        return float(np.mean(xs)) if xs else float("nan")


# ---- pieces ------------------------------------------------------------------------------------

def clip_seed(seed: int, when: str, key: str) -> int:
    digest = hashlib.sha256(f"{seed}/{when}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & _SEED_MASK


def network_config(cfg: TrainConfig, text_dim: int) -> MMDiTConfig:
    """The named network with input widths/rates from the encoder registry, text_dim from the caption
    encoder, then `network_overrides` (a nested section such as `lyrics` is merged, not replaced)."""
    from pydantic import BaseModel

    from model.config import NAMED_CONFIGS, config_for_encoders

    base = NAMED_CONFIGS[cfg.network]
    overrides: dict = {"text_dim": text_dim}
    for k, v in cfg.network_overrides.items():
        current = getattr(base, k, None)
        if isinstance(v, dict) and isinstance(current, BaseModel):
            v = {**current.model_dump(), **v}
        overrides[k] = v
    try:
        return config_for_encoders(cfg.network, cfg.resolved_encoders(), **overrides)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"network {cfg.network!r} with encoders {cfg.resolved_encoders()}: {exc}") from None


def text_encoder_width(name_or_path: str, revision=None, local_files_only=False) -> int:
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(name_or_path, revision=revision,
                                          local_files_only=local_files_only).d_model)


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: weight decay on weight matrices (not biases, norms or embedding tables); the T5
    caption encoder at lr × its multiplier."""
    embedding_params = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_text = name.startswith("text_encoder.")
        decay = p.ndim >= 2 and id(p) not in embedding_params  # no decay on biases, norms, embedding tables
        groups.setdefault((is_text, decay), []).append(p)
    out = []
    for (is_text, decay), params in sorted(groups.items()):
        mult = cfg.optim.text_encoder_lr_mult if is_text else 1.0
        out.append({"params": params, "lr": cfg.optim.lr * mult,
                    "weight_decay": cfg.optim.weight_decay if decay else 0.0,
                    "name": f"{'text_encoder' if is_text else 'network'}{'' if decay else '_no_decay'}"})
    return out


class FlowStep(nn.Module):
    """AudioGenOmni's training forward (captions through T5, CFG dropout, the MMDiT) as one module for DDP."""

    def __init__(self, omni: nn.Module):
        super().__init__()
        self.omni = omni

    def forward(self, x_t: Tensor, t: Tensor, cond: Conditions, captions: list, dropped: Tensor | None = None):
        cond = self.omni.with_captions(cond, captions)
        if dropped is not None:  # [B, len(MODALITIES)] bool: drop after the captions set has_caption
            for j, modality in enumerate(MODALITIES):
                cond = cond.drop([modality], dropped[:, j])
        return self.omni(x_t, t, cond)


def draw_clip_randomness(keys, frames: Tensor, T: int, C: int, seed: int, when: str, flow: FlowMatching,
                         dropout: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Per clip: t [B], x0 [B, T, C] (zero at padding), dropped [B, len(MODALITIES)] bool."""
    B = len(keys)
    t = torch.empty(B)
    x0 = torch.zeros(B, T, C)
    dropped = torch.zeros(B, len(MODALITIES), dtype=torch.bool)
    for i, key in enumerate(keys):
        g = torch.Generator().manual_seed(clip_seed(seed, when, key))
        t[i] = flow.sample_timesteps(1, g)[0]
        n = int(frames[i])
        x0[i, :n] = torch.randn(n, C, generator=g)
        if dropout:
            dropped[i] = flow.draw_modality_drops(1, g)[0]  # per-modality drops and the "drop all" share
    return t, x0, dropped


def per_clip_loss(pred: Tensor, target: Tensor, latent_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Squared error summed over each clip's real frames [B], and the real element counts [B]."""
    w = latent_mask[..., None].to(torch.float32)
    sq = ((pred.float() - target.float()).pow(2) * w).sum((1, 2))
    return sq, w.sum((1, 2)) * pred.shape[-1]


def step_module_vocab(module: nn.Module) -> int | None:
    omni = getattr(module, "module", module)
    omni = getattr(omni, "omni", omni)
    net = getattr(omni, "network", None)
    return net.cfg.lyrics.vocab_size if net is not None else None


def flow_losses(step_module: nn.Module, batch, flow: FlowMatching, seed: int, when: str, device,
                dropout: bool = True, t_fixed: float | None = None):
    """(loss, per-clip mean losses [B], t [B]) of one micro-batch; `when` keys the per-clip draws."""
    vocab = step_module_vocab(step_module)
    if batch.voice_ids is not None and vocab is not None and int(batch.voice_ids.max()) >= vocab:
        bad = [k for k, ids in zip(batch.keys, batch.voice_ids) if int(ids.max()) >= vocab]
        raise ValueError(f"clips {bad[:3]} carry VoiceBPE ids up to {int(batch.voice_ids.max())}, but the network's "
                         f"lyrics encoder has vocab_size={vocab} (set network_overrides.lyrics.vocab_size)")
    x1 = batch.x1.to(device)
    mask = batch.latent_mask.to(device)
    B, T, C = x1.shape
    t, x0, dropped = draw_clip_randomness(batch.keys, batch.latent_mask.sum(1), T, C, seed, when, flow, dropout)
    if t_fixed is not None:
        t = torch.full((B,), float(t_fixed))
    cond = batch.conditions().to(device)
    t, x0 = t.to(device), x0.to(device=device, dtype=x1.dtype)
    x_t = flow.interpolate(x0, x1, t)
    pred = step_module(x_t, t, cond, list(batch.captions), dropped.to(device) if dropout else None)
    sq, n = per_clip_loss(pred, x1 - x0, mask)
    loss = sq.sum() / n.sum()
    return loss, (sq / n).detach(), t.detach()


def capture_rng() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    np_state = np.random.get_state()
    state["numpy"] = {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                      "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def params_hash(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _resolve(path: str) -> Path:
    return Path(path).expanduser().resolve()


# ---- data --------------------------------------------------------------------------------------

def _sources(cfg: TrainConfig, split: str | None = None):
    from pipeline.shard_reader import ShardSource

    return [ShardSource(run_dir=str(_resolve(s.run)), split=split or s.split, weight=s.weight,
                        corpora=dict(s.corpora) if s.corpora else None) for s in cfg.data.sources]


def expected_features(cfg: TrainConfig) -> dict[str, str]:
    """{kind: registry name} the loader checks every sample's recorded encoder and widths against."""
    return dict(cfg.resolved_encoders())


def make_training_data(cfg: TrainConfig, net: MMDiTConfig, stats, *, split: str | None, resampled: bool,
                       rank: int, world_size: int, seed: int, num_workers: int | None = None):
    from model.training.data import TrainingData

    return TrainingData(
        _sources(cfg, split), batch_frames=cfg.batch.batch_frames, max_batch=cfg.batch.max_batch,
        max_duration_s=cfg.batch.max_duration_s, latent_rate=net.latent_rate, latent_stats=stats,
        shuffle_buffer=cfg.data.shuffle_buffer, seed=seed, resampled=resampled,
        num_workers=cfg.data.num_workers if num_workers is None else num_workers, rank=rank,
        world_size=world_size, voice_pad_id=net.lyrics.pad_id, expected_features=expected_features(cfg),
    )


def recorded_encoders(cfg: TrainConfig, max_samples: int = 64) -> dict:
    """{kind: {"name", "id"}}: the encoder identities the shards record (json `features`), read from the
    first clips of the training sources; "id" is None for a kind no clip read carries."""
    from model.training.data import FeatureMismatchError
    from pipeline.shard_reader import ShardDataset

    names = cfg.resolved_encoders()
    ids: dict[str, str] = {}
    ds = ShardDataset(_sources(cfg), members=("json",), resampled=False, shuffle_buffer=0, seed=0, rank=0,
                      world_size=1)
    for i, sample in enumerate(ds):
        feats = (sample.get("json") or {}).get("features") or {}
        for kind, rec in feats.items():
            if kind not in names or not isinstance(rec, dict):
                continue
            if rec.get("encoder") not in (None, names[kind]):
                raise FeatureMismatchError(
                    f"{sample.get('__shard__')}:{sample.get('__key__')}: {kind} features were made by encoder "
                    f"{rec.get('encoder')!r} (id {rec.get('id')!r}), but network {cfg.network!r} is configured "
                    f"for {names[kind]!r} (encoders.{kind})")
            if rec.get("id"):
                ids.setdefault(kind, str(rec["id"]))
        if len(ids) == len(names) or i + 1 >= max_samples:
            break
    return {kind: {"name": name, "id": ids.get(kind)} for kind, name in names.items()}


# ---- the loop ----------------------------------------------------------------------------------

class _Logger:
    """log.jsonl (rank 0), per-rank debug logs, TensorBoard scalars/audio (rank 0)."""

    def __init__(self, out: Path, cfg: TrainConfig, rank: int, is_main: bool, start_step: int):
        self.out, self.is_main, self.rank = out, is_main, rank
        self.log_path = out / LOG_FILE
        self.rank_path = out / RANK_LOG_DIR / f"rank-{rank}.jsonl" if cfg.debug_rank_log else None
        if is_main:
            _truncate_log(self.log_path, start_step)
        if self.rank_path is not None:
            self.rank_path.parent.mkdir(parents=True, exist_ok=True)
            _truncate_log(self.rank_path, start_step)
        self.tb = None
        if is_main and cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / TB_DIR), purge_step=start_step + 1 if start_step else None)

    def step(self, record: dict) -> None:
        if self.is_main:
            _append_jsonl(self.log_path, record)

    def rank_record(self, record: dict) -> None:
        if self.rank_path is not None:
            _append_jsonl(self.rank_path, record)

    def scalars(self, values: dict, step: int) -> None:
        if self.tb is not None:
            for k, v in values.items():
                if v is not None and math.isfinite(v):
                    self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def _truncate_log(path: Path, keep_through_step: int) -> None:
    """Keep the records of steps ≤ `keep_through_step` (a resumed run re-logs what followed)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if int(rec.get("step", 0)) <= keep_through_step:
            kept.append(line)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(x + "\n" for x in kept), encoding="utf-8")
    os.replace(tmp, path)


def read_losses(out_dir: str | Path) -> list[float]:
    path = Path(out_dir) / LOG_FILE
    if not path.exists():
        return []
    recs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [r["loss"] for r in sorted(recs, key=lambda r: r["step"])]


def _make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if use_cuda else "no"
    return Accelerator(cpu=not use_cuda, mixed_precision=mp,
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def _prepare_text_encoder(cfg: TrainConfig, out: Path, accelerator):
    """The caption encoder config to build (a random tiny T5 is written once under OUT)."""
    text_cfg = cfg.text_encoder
    if cfg.random_text_encoder is not None:
        from model.training.random_t5 import build_random_t5

        path = out / RANDOM_T5_DIR
        if accelerator.is_main_process and not (path / "config.json").is_file():
            r = cfg.random_text_encoder
            build_random_t5(path.with_suffix(".tmp"), width=r.width, layers=r.layers, heads=r.heads, seed=r.seed,
                            dropout=r.dropout)
            os.replace(path.with_suffix(".tmp"), path)
        accelerator.wait_for_everyone()
        text_cfg = text_cfg.model_copy(update={"name_or_path": str(path), "local_files_only": True})
    return text_cfg


def train_loop(cfg: TrainConfig, *, resume: bool = False) -> TrainResult:
    """Train `cfg.steps` optimiser steps (from the newest valid checkpoint with `resume`)."""
    from transformers.utils import logging as hf_logging

    from model.omni import AudioGenOmni
    from model.training.data import LatentStats, compute_latent_stats

    hf_logging.disable_progress_bar()
    accelerator = _make_accelerator(cfg)
    rank, world = accelerator.process_index, accelerator.num_processes
    device = accelerator.device
    is_main = accelerator.is_main_process
    out = _resolve(cfg.out)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    if device.type == "cpu" and cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    if cfg.deterministic and device.type == "cuda":  # CPU kernels are deterministic (with MKL_CBWR above)
        torch.use_deterministic_algorithms(True, warn_only=True)
    accum = cfg.batch.accumulation(world)

    # -- resume point
    start_step, state = 0, None
    found = ckpt.latest_checkpoint(out)
    if found is not None and not resume:
        raise ckpt.CheckpointError(f"{out} already holds checkpoints (newest {found.name}): pass --resume to "
                                   f"continue that run, or choose another `out`")
    if resume and found is not None:  # --resume without a checkpoint starts from step 0
        state = ckpt.load_training_state(found)
        start_step = int(state["meta"]["step"])
        saved_world = state["rng"]["world_size"]
        if saved_world != world:
            raise ckpt.CheckpointError(f"{found}: written by {saved_world} processes, resuming with {world}")

    encoders = recorded_encoders(cfg)  # fails fast on shards made with other encoders

    # -- model
    text_cfg = _prepare_text_encoder(cfg, out, accelerator)
    text_dim = text_encoder_width(text_cfg.name_or_path, text_cfg.revision, text_cfg.local_files_only)
    net_cfg = network_config(cfg, text_dim)
    if state is not None and state["meta"].get("network_cfg") != net_cfg.model_dump(mode="json"):
        raise ckpt.CheckpointError(f"{out}: the checkpoint's network config differs from this config's")
    torch.manual_seed(cfg.seed)
    omni = AudioGenOmni.build(net_cfg, text_cfg)
    if state is not None:
        from safetensors.torch import load_model

        load_model(omni, str(Path(state["meta"]["path"]) / "model.safetensors"), strict=True)
    omni.to(device)
    omni.train()
    ema = EMA(omni, cfg.ema.decay, cfg.ema.start_step)
    optimizer = torch.optim.AdamW(param_groups(omni, cfg), lr=cfg.optim.lr, betas=cfg.optim.betas,
                                  eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay)
    scheduler = InverseLR(optimizer, cfg.schedule.inv_gamma, cfg.schedule.power, cfg.schedule.warmup,
                          cfg.schedule.min_lr)
    flow = FlowMatching(cfg.flow)

    # -- data
    if state is not None:
        stats = LatentStats.from_dict(state["meta"]["latent_stats"])
    else:
        stats = compute_latent_stats(_sources(cfg), max_samples=cfg.data.latent_stats_samples)
    train_data = make_training_data(cfg, net_cfg, stats, split=None, resampled=cfg.data.resampled, rank=rank,
                                    world_size=world, seed=cfg.seed)

    if state is not None:
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        train_data.load_state_dict(state["data"]["ranks"][rank])
        restore_rng(state["rng"]["ranks"][rank])
    else:
        # distinct streams per process for what is not keyed per clip (T5 dropout)
        torch.manual_seed(cfg.seed + 7919 * (rank + 1))
        random.seed(cfg.seed + rank)
        np.random.seed((cfg.seed + rank) % (1 << 32))

    step_module = accelerator.prepare_model(FlowStep(omni))
    trainable = [p for p in omni.parameters() if p.requires_grad]
    logger = _Logger(out, cfg, rank, is_main, start_step)
    meta_base = {
        "config": cfg.canonical(), "network": cfg.network, "network_cfg": net_cfg.model_dump(mode="json"),
        "text_encoder": text_cfg.model_dump(mode="json"), "flow": cfg.flow.model_dump(mode="json"),
        "encoders": encoders, "latent_stats": stats.to_dict(), "world_size": world,
        "effective_batch": cfg.batch.effective_batch, "accumulation": accum,
    }
    val = _Validator(cfg, net_cfg, stats, flow, out, is_main) if cfg.data.val_split else None

    progress = None
    if is_main and cfg.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=cfg.steps, initial=start_step, unit="step", dynamic_ncols=True)

    last_ckpt = ckpt.latest_checkpoint(out) if state is not None else None
    tbin_sum = np.zeros(cfg.t_bins)
    tbin_n = np.zeros(cfg.t_bins)
    run_samples, run_wait, run_time = 0, 0.0, 0.0
    step = start_step
    data_iter = iter(train_data)
    while step < cfg.steps:
        t_step = time.perf_counter()
        wait = 0.0
        losses, keys, n_frames, clips, epochs = [], [], 0, [], []
        for micro in range(accum):
            t_wait = time.perf_counter()
            try:
                batch = next(data_iter)
            except StopIteration:  # end of a pass (data.resampled: false): the next epoch
                data_iter = iter(train_data)
                batch = next(data_iter)
            wait += time.perf_counter() - t_wait
            epoch = int(getattr(train_data, "epoch", 0))
            epochs.append(epoch)
            when = f"step{step}" if cfg.data.resampled else f"epoch{epoch}"
            sync = micro == accum - 1
            ctx = contextlib.nullcontext() if sync else accelerator.no_sync(step_module)
            with ctx:
                with accelerator.autocast():
                    loss, per_clip, t = flow_losses(step_module, batch, flow, cfg.seed, when, device)
                accelerator.backward(loss / accum)
            losses.append(loss.detach())
            keys.extend(batch.keys)
            n_frames += int(batch.latent_mask.sum())
            bins = torch.clamp((t.cpu() * cfg.t_bins).long(), max=cfg.t_bins - 1).numpy()
            np.add.at(tbin_sum, bins, per_clip.float().cpu().numpy())
            np.add.at(tbin_n, bins, 1)
            if cfg.debug_rank_log:
                clips.extend([k, epoch, float(v), int(f)] for k, v, f in
                             zip(batch.keys, per_clip.float().cpu().tolist(), batch.latent_mask.sum(1).tolist()))
        if cfg.optim.grad_clip is not None:
            grad_norm = accelerator.clip_grad_norm_(trainable, cfg.optim.grad_clip)
        else:
            grads = [p.grad.detach().float().norm() for p in trainable if p.grad is not None]
            grad_norm = torch.stack(grads).norm() if grads else torch.zeros(())
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update(omni, step)
        step += 1

        step_loss = accelerator.reduce(torch.stack(losses).mean().float(), reduction="mean").item()
        counts = accelerator.reduce(torch.tensor([len(keys), n_frames], dtype=torch.float64, device=device),
                                    reduction="sum").tolist()
        elapsed = time.perf_counter() - t_step
        run_samples += counts[0]
        run_wait += wait
        run_time += elapsed
        record = {"step": step, "loss": step_loss, "lr": lr, "grad_norm": float(grad_norm),
                  "samples": int(counts[0]), "frames": int(counts[1]), "data_wait_s": round(wait, 6),
                  "step_s": round(elapsed, 6)}
        logger.step(record)
        if cfg.debug_rank_log:
            logger.rank_record({"step": step, "rank": rank, "keys": keys, "epochs": epochs, "loss": step_loss,
                                "clips": clips,  # [key, epoch, loss, latent frames] per clip
                                "params": params_hash(omni)})
        if step % cfg.log_every == 0 or step == cfg.steps:
            scalars = {"train/loss": step_loss, "train/lr": lr, "train/grad_norm": float(grad_norm),
                       "perf/samples_per_s": counts[0] / max(elapsed, 1e-9),
                       "perf/data_wait_fraction": wait / max(elapsed, 1e-9)}
            for b in range(cfg.t_bins):
                if tbin_n[b]:
                    scalars[f"train/loss_t{b / cfg.t_bins:.2f}-{(b + 1) / cfg.t_bins:.2f}"] = tbin_sum[b] / tbin_n[b]
            if device.type == "cuda":
                scalars["perf/gpu_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            logger.scalars(scalars, step)
            tbin_sum[:] = 0
            tbin_n[:] = 0
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{step_loss:.4f}", wait=f"{run_wait / max(run_time, 1e-9):.1%}")
        if val is not None and cfg.eval_every and step % cfg.eval_every == 0:
            with torch.random.fork_rng(devices=[]):
                val.evaluate(omni, device, step, logger)
        if val is not None and cfg.sample_every and step % cfg.sample_every == 0 and cfg.samples.count:
            with torch.random.fork_rng(devices=[]):
                val.sample(omni, ema, device, step, logger, encoders)
        if step % cfg.checkpoint_every == 0 or (step == cfg.steps and cfg.save_final):
            last_ckpt = _save(accelerator, out, step, omni, ema, optimizer, scheduler, train_data, meta_base)
            if is_main:
                ckpt.prune_checkpoints(out, cfg.keep_checkpoints)
    if progress is not None:
        progress.close()
    logger.close()
    accelerator.wait_for_everyone()
    return TrainResult(out_dir=out, last_checkpoint=last_ckpt, losses=read_losses(out), steps=step,
                       samples_per_s=run_samples / max(run_time, 1e-9),
                       data_wait_fraction=run_wait / max(run_time, 1e-9))


def _save(accelerator, out: Path, step: int, omni, ema, optimizer, scheduler, data, meta_base) -> Path:
    from accelerate.utils import gather_object

    rng = gather_object([capture_rng()])
    data_states = gather_object([data.state_dict()])
    final = out / ckpt.CHECKPOINT_DIR / ckpt.step_dir_name(step)
    if accelerator.is_main_process:
        tmp = ckpt.begin_checkpoint(out, step)
        ckpt.write_state_files(tmp, model=omni, ema_state=ema.state_dict(), optimizer_state=optimizer.state_dict(),
                               scheduler_state=scheduler.state_dict(), rng_states=rng, data_states=data_states)
        final = ckpt.commit_checkpoint(tmp, step, meta_base)
    accelerator.wait_for_everyone()
    return final


class _Validator:
    """Validation loss on the val split at a fixed t grid with fixed noise; audio samples (rank 0)."""

    def __init__(self, cfg: TrainConfig, net: MMDiTConfig, stats, flow: FlowMatching, out: Path, is_main: bool):
        self.cfg, self.net, self.stats, self.flow, self.out, self.is_main = cfg, net, stats, flow, out, is_main
        self._batches = None
        self._codec = None

    def batches(self) -> list:
        """The first `val_batches` batches of the validation split (none, with a warning, if it is absent)."""
        if self._batches is None:
            self._batches = []
            try:
                data = make_training_data(self.cfg, self.net, self.stats, split=self.cfg.data.val_split,
                                          resampled=False, rank=0, world_size=1, seed=self.cfg.seed, num_workers=0)
                for b in data:
                    self._batches.append(b)
                    if len(self._batches) >= self.cfg.data.val_batches:
                        break
            except FileNotFoundError as exc:
                warnings.warn(f"no validation loss or samples: {exc}", stacklevel=2)
        return self._batches

    @torch.no_grad()
    def evaluate(self, omni, device, step: int, logger: _Logger) -> dict | None:
        if not self.is_main or not self.batches():
            return None
        was = omni.training
        omni.eval()
        step_module = FlowStep(omni)
        per_t = {}
        for t in self.cfg.val_t_grid:
            sq_sum, n_sum = 0.0, 0.0
            for b in self.batches():
                loss, _, _ = flow_losses(step_module, b, self.flow, self.cfg.seed + VAL_NOISE_OFFSET, "val",
                                                device, dropout=False, t_fixed=t)
                n = float(b.latent_mask.sum()) * b.x1.shape[-1]
                sq_sum += float(loss) * n
                n_sum += n
            per_t[t] = sq_sum / max(n_sum, 1.0)
        omni.train(was)
        values = {f"val/loss_t{t:.2f}": v for t, v in per_t.items()}
        values["val/loss"] = float(np.mean(list(per_t.values()))) if per_t else float("nan")
        logger.scalars(values, step)
        _append_jsonl(self.out / "val.jsonl", {"step": step, **values})
        return values

    @torch.no_grad()
    def sample(self, omni, ema: EMA, device, step: int, logger: _Logger, encoders: dict) -> list[Path]:
        if not self.is_main or not self.batches():
            return []
        import soundfile as sf

        from model.encoders.registry import AUDIO_SAMPLE_RATE, load_encoder

        batch = self.batches()[0]
        n = min(self.cfg.samples.count, len(batch.keys))
        if self._codec is None:
            self._codec = load_encoder(encoders["latent"]["name"], self.cfg.samples.latent_weights, device="cpu")
        backup = {k: p.detach().clone() for k, p in omni.named_parameters()}
        was = omni.training
        ema.copy_to(omni)
        omni.eval()
        try:
            idx = list(range(n))
            cond = batch.conditions()
            cond = Conditions(**{f: (v[idx] if isinstance(v, Tensor) else v) for f, v in vars(cond).items()})
            cond = omni.with_captions(cond.to(device), [batch.captions[i] for i in idx])
            g = torch.Generator().manual_seed(self.cfg.samples.seed)
            x = EulerSampler(self.flow.cfg).sample(omni, cond, self.net.latent_dim, generator=g,
                                                   num_steps=self.cfg.samples.num_steps,
                                                   cfg_scale=self.cfg.samples.cfg_scale).float().cpu()
        finally:
            with torch.no_grad():
                for k, p in omni.named_parameters():
                    p.copy_(backup[k])
            omni.train(was)
        mean = torch.as_tensor(np.asarray(self.stats.mean), dtype=torch.float32)
        std = torch.as_tensor(np.asarray(self.stats.std), dtype=torch.float32)
        x = x * std + mean
        out_dir = self.out / SAMPLES_DIR / f"step-{step:07d}"
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(n):
            frames = int(batch.latent_mask[i].sum())
            wav = torch.as_tensor(self._codec.decode(x[i:i + 1, :frames])).float().reshape(-1)
            wav = wav.clamp(-1, 1).numpy()
            path = out_dir / f"{i:02d}-{_safe(batch.keys[i])}.wav"
            sf.write(str(path), wav, AUDIO_SAMPLE_RATE)
            paths.append(path)
            if logger.tb is not None:
                logger.tb.add_audio(f"samples/{i:02d}", wav[None], step, sample_rate=AUDIO_SAMPLE_RATE)
        return paths


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(key))[:80]
