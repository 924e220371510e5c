"""Training batches from feature shards: posterior sampling, normalisation, duration bucketing.

Interface changes against the brief: none. Additions: `Batch.conditions(caption=, caption_mask=)`
takes the caption encoder's states (the trainer runs the trainable T5; the loader only carries
the caption strings); `Batch.to(device)`; `TrainingData.dataset` (the ShardDataset);
`FeatureMismatchError`; `compute_latent_stats(..., split=)`.

    stats = compute_latent_stats([ShardSource("runs/vgg")], max_samples=2000)
    data = TrainingData([ShardSource("runs/vgg")], batch_frames=4096, max_batch=16,
                        latent_rate=44100 / 1024, latent_stats=stats, shuffle_buffer=256, seed=0)
    for batch in data:            # resampled: endless; resumable with data.state_dict()
        cond = batch.conditions(caption=states, caption_mask=mask)

Per sample (in the loader workers):
- `latent.npy` [T, 2C] = posterior mean ‖ std; x1 = ((mean + std·ε) − stat_mean) / stat_std with ε
  from a torch.Generator seeded from (seed, epoch, rank, worker, sample ordinal in the worker's
  stream) — the same batches and the same ε on every run with the same settings.
- refused (FeatureMismatchError, naming both): a sample whose json `features` names another
  encoder than `expected_features`, or whose feature width differs from that encoder's.
- skipped and counted (never an error): no latent (`skipped_no_latent`), empty latent
  (`skipped_empty_latent`), longer than max_duration_s (`skipped_too_long`), non-finite latent
  (`skipped_nonfinite`), more VoiceBPE ids than latent frames (`skipped_voice_too_long`).
  Tokens without per-token start times get times 0 (`voice_without_times`).

Duration bucketing: a sample goes to the bucket of its length (BUCKETS equal-width buckets of
latent frames up to max_duration_s); a bucket is emitted as a batch when it holds max_batch
samples or when the next sample would make B × T_max (the padded size, hence also Σ T) exceed
batch_frames. At the end of a pass (resampled=False) the partial buckets are emitted, shortest
first. The batch order depends on (seed, epoch, rank, world_size, num_workers) only.

Resuming: `state_dict()` holds the epoch and the batches already handed out in it;
`load_state_dict()` then makes the next iteration skip exactly those batches, so a resumed run
continues with the batches an uninterrupted run would have seen (same ε too). A pass
(resampled=False) with skipped samples can give ranks different batch counts; train with
resampled=True (epochs counted in steps) under DDP.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pipeline.shard_reader import TRAINING_MEMBERS, ShardDataset, as_sources

log = logging.getLogger(__name__)

BUCKETS = 10  # duration buckets over [0, max_duration_s] (1 s wide for 10 s clips)
STATS_MIN_STD = 1e-3  # floor of the per-channel latent std (a constant channel would divide by ~0)
DURATION_TOLERANCE_S = 1e-3  # json duration_s above max_duration_s by less than this still fits
FEATURE_MEMBERS = {"clip": "clip.npy", "sync": "sync.npy", "latent": "latent.npy"}
COUNTERS = ("samples", "batches", "skipped_no_latent", "skipped_empty_latent", "skipped_too_long",
            "skipped_nonfinite", "skipped_voice_too_long", "voice_without_times")
_SALT_EPS = 4


class FeatureMismatchError(ValueError):
    """A shard sample made with other encoders (or widths) than the trainer expects."""


# -- batch ----------------------------------------------------------------------------------------

@dataclass
class Batch:
    keys: list[str]
    corpora: list[str]
    x1: Tensor  # [B, T, C] normalised latent sample, zero at padding
    latent_mask: Tensor  # [B, T] bool
    start_s: Tensor  # [B]
    duration_s: Tensor  # [B]
    clip: Tensor | None  # [B, Tc, D]
    clip_mask: Tensor | None  # [B, Tc]
    sync: Tensor | None  # [B, Ts, Ds]
    sync_mask: Tensor | None  # [B, Ts]
    sync_times: Tensor | None  # [B, Ts] seconds from the clip start
    captions: list[str | None]
    voice_ids: Tensor | None  # [B, Lv] long, pad_id at padding (Lv = T: padded to the latent length)
    voice_mask: Tensor | None  # [B, Lv]
    voice_times: Tensor | None  # [B, Lv] token start times (s), 0 at padding
    has_video: Tensor  # [B] bool
    has_caption: Tensor  # [B] bool
    has_voice: Tensor  # [B] bool

    @property
    def batch_size(self) -> int:
        return self.x1.shape[0]

    def to(self, device) -> Batch:
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})

    def conditions(self, caption: Tensor | None = None, caption_mask: Tensor | None = None):
        """model.inputs.Conditions of this batch; `caption` [B, Lc, D] are the caption encoder's states."""
        from model.inputs import Conditions

        kw = {"latent_mask": self.latent_mask, "start_s": self.start_s, "duration_s": self.duration_s,
                  "clip": self.clip, "clip_mask": self.clip_mask, "sync": self.sync, "sync_mask": self.sync_mask,
                  "voice_ids": self.voice_ids, "voice_mask": self.voice_mask, "has_video": self.has_video,
                  "has_voice": self.has_voice}
        if caption is not None:
            mask = caption_mask if caption_mask is not None else torch.ones(caption.shape[:2], dtype=torch.bool,
                                                                             device=caption.device)
            kw.update(caption=caption, caption_mask=caption_mask,
                      has_caption=self.has_caption.to(mask.device) & mask.any(1))
        names = {f.name for f in fields(Conditions)}
        for extra in ("sync_times", "voice_times"):
            if extra in names:
                kw[extra] = getattr(self, extra)
        return Conditions(**kw)


# -- latent statistics ----------------------------------------------------------------------------

@dataclass
class LatentStats:
    mean: Tensor  # [C]
    std: Tensor  # [C]

    def to_dict(self) -> dict:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: dict) -> LatentStats:
        mean, std = torch.tensor(d["mean"], dtype=torch.float32), torch.tensor(d["std"], dtype=torch.float32)
        if mean.ndim != 1 or mean.shape != std.shape or not bool((std > 0).all()):
            raise ValueError(f"latent stats need equal-length 1-D mean and std > 0, got {d}")
        return cls(mean, std)

    @property
    def channels(self) -> int:
        return self.mean.shape[0]


def compute_latent_stats(dataset_or_sources, max_samples: int = 2000, split: str = "train") -> LatentStats:
    """Per-channel mean/std over the real frames of the posterior MEANS of up to `max_samples` clips.

    Deterministic: one pass over the sources (shards in the order of seed 0, epoch 0, so the clips
    come from many shards) on every rank alike, stopping after `max_samples` clips with a latent.
    """
    if isinstance(dataset_or_sources, TrainingData):
        sources = dataset_or_sources.dataset.sources
    elif isinstance(dataset_or_sources, ShardDataset):
        sources = dataset_or_sources.sources
    else:
        sources = as_sources(dataset_or_sources, split)
    ds = ShardDataset(sources, members=("latent.npy",), resampled=False, shuffle_buffer=0, seed=0, rank=0,
                      world_size=1)
    total = sumsq = None
    frames = clips = 0
    for sample in ds:
        lat = sample.get("latent.npy")
        if lat is None or lat.ndim != 2 or lat.shape[0] == 0:
            continue
        C = lat.shape[1] // 2
        mean = lat[:, :C].astype(np.float64)
        if not np.isfinite(mean).all():
            continue
        if total is None:
            total, sumsq = np.zeros(C), np.zeros(C)
        elif C != total.shape[0] or lat.shape[1] != 2 * C:
            raise FeatureMismatchError(f"{sample['__shard__']}:{sample['__key__']}: latent width {lat.shape[1]} "
                                       f"differs from the earlier clips' {2 * total.shape[0]}")
        total += mean.sum(0)
        sumsq += (mean * mean).sum(0)
        frames += mean.shape[0]
        clips += 1
        if clips >= max_samples:
            break
    if total is None:
        raise ValueError(f"no latents in {[s.run_dir for s in sources]}: cannot compute latent statistics")
    mu = total / frames
    var = np.maximum(sumsq / frames - mu * mu, 0.0)
    std = np.maximum(np.sqrt(var), STATS_MIN_STD)
    return LatentStats(torch.tensor(mu, dtype=torch.float32), torch.tensor(std, dtype=torch.float32))


# -- per-sample preparation (runs in the loader workers) -----------------------------------------

def _seed_int(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0])


def _tensor(arr: np.ndarray | None) -> Tensor | None:
    if arr is None or arr.ndim < 1 or arr.shape[0] == 0:
        return None
    return torch.from_numpy(np.asarray(arr, dtype=np.float32))


@dataclass
class _Item:
    key: str
    corpus: str
    x1: Tensor  # [T, C]
    start_s: float
    duration_s: float
    clip: Tensor | None
    sync: Tensor | None
    sync_times: Tensor | None
    caption: str | None
    voice_ids: Tensor | None
    voice_times: Tensor | None

    @property
    def frames(self) -> int:
        return self.x1.shape[0]


class _Prepare:
    """Sample dict -> _Item, or the name of the counter of why it is skipped."""

    def __init__(self, stats: LatentStats, max_frames: int, max_duration_s: float, latent_rate: float,
                 expected: dict[str, str] | None):
        self.stat_mean, self.stat_std = stats.mean.float(), stats.std.float()
        self.C = stats.channels
        self.max_frames, self.max_duration_s, self.latent_rate = max_frames, max_duration_s, latent_rate
        self.expected = dict(expected or {})
        self.specs = {}
        if self.expected:
            from model.encoders.registry import feature_spec

            for kind, name in self.expected.items():
                if kind not in FEATURE_MEMBERS:
                    raise ValueError(f"expected_features: unknown kind {kind!r} (known: {', '.join(FEATURE_MEMBERS)})")
                spec = feature_spec(name)
                if spec.kind != kind:
                    raise ValueError(f"expected_features.{kind}: encoder {name!r} is a {spec.kind} encoder")
                self.specs[kind] = spec
            if "latent" in self.specs and self.specs["latent"].dim != self.C:
                raise FeatureMismatchError(f"latent stats have {self.C} channels but latent encoder "
                                           f"{self.expected['latent']!r} gives {self.specs['latent'].dim}")

    def check_features(self, sample: dict, meta: dict, where: str) -> None:
        declared_all = meta.get("features") or {}
        for kind, name in self.expected.items():
            declared = declared_all.get(kind) or {}
            got = declared.get("encoder")
            if got is not None and got != name:
                raise FeatureMismatchError(f"{where}: {kind} features were made by encoder {got!r} "
                                           f"(id {declared.get('id')!r}), but the trainer expects {name!r}")
            spec = self.specs[kind]
            if declared.get("dim") is not None and int(declared["dim"]) != spec.dim:
                raise FeatureMismatchError(f"{where}: {kind} features are {declared['dim']}-d, "
                                           f"encoder {name!r} gives {spec.dim}-d")
            arr = sample.get(FEATURE_MEMBERS[kind])
            if arr is not None:
                width = arr.shape[-1] if arr.ndim == 2 else None
                want = 2 * spec.dim if kind == "latent" else spec.dim
                if width != want:
                    raise FeatureMismatchError(f"{where}: {FEATURE_MEMBERS[kind]} has shape {arr.shape}, "
                                               f"encoder {name!r} needs width {want}")

    def __call__(self, sample: dict, g: torch.Generator, counters: dict) -> _Item | str:
        key = sample["__key__"]
        where = f"{sample.get('__shard__', sample.get('__source__'))}:{key}"
        meta = sample.get("json") or {}
        self.check_features(sample, meta, where)
        lat = sample.get("latent.npy")
        if lat is None:
            return "skipped_no_latent"
        if lat.ndim != 2 or lat.shape[1] != 2 * self.C:
            raise FeatureMismatchError(f"{where}: latent.npy has shape {lat.shape}, the latent stats need "
                                       f"[T, {2 * self.C}] (mean ‖ std of {self.C} channels)")
        T = lat.shape[0]
        if T == 0:
            return "skipped_empty_latent"
        duration = float(meta.get("duration_s") or T / self.latent_rate)
        if T > self.max_frames or duration > self.max_duration_s + DURATION_TOLERANCE_S:
            return "skipped_too_long"
        post = torch.from_numpy(np.asarray(lat, dtype=np.float32))
        if not bool(torch.isfinite(post).all()):
            return "skipped_nonfinite"
        eps = torch.randn(T, self.C, generator=g)
        x1 = (post[:, :self.C] + post[:, self.C:] * eps - self.stat_mean) / self.stat_std
        tokens = sample.get("tokens.npy")
        voice_ids = voice_times = None
        if tokens is not None and tokens.size:
            if tokens.ndim != 1:
                raise ValueError(f"{where}: tokens.npy must be 1-D, got shape {tokens.shape}")
            if tokens.shape[0] > T:
                return "skipped_voice_too_long"
            voice_ids = torch.from_numpy(tokens.astype(np.int64))
            starts = meta.get("token_starts")
            if starts is not None and len(starts) == tokens.shape[0]:
                voice_times = torch.tensor([float(s or 0.0) for s in starts], dtype=torch.float32)
            else:
                counters["voice_without_times"] += 1
                voice_times = torch.full((tokens.shape[0],), float("nan"))  # no alignment: the paper layout
        sync = _tensor(sample.get("sync.npy"))
        sync_times = None
        if sync is not None:
            times = meta.get("sync_times")
            if times is not None and len(times) == sync.shape[0]:
                sync_times = torch.tensor(times, dtype=torch.float32)
            else:
                sync_times = _default_sync_times(sync.shape[0], self.expected.get("sync"))
        caption = meta.get("caption")
        return _Item(key=key, corpus=str(meta.get("corpus") or ""), x1=x1, start_s=float(meta.get("start_s") or 0.0),
                     duration_s=duration,
                     clip=_tensor(sample.get("clip.npy")), sync=sync, sync_times=sync_times,
                     caption=caption if isinstance(caption, str) and caption.strip() else None,
                     voice_ids=voice_ids, voice_times=voice_times)


def _default_sync_times(n_tokens: int, encoder: str | None) -> Tensor:
    from model.encoders.registry import feature_spec, sync_token_times

    spec = feature_spec(encoder or "synchformer")
    n_windows = -(-n_tokens // spec.tokens_per_window)
    return torch.as_tensor(np.asarray(sync_token_times(n_windows, spec)).reshape(-1)[:n_tokens],
                           dtype=torch.float32)


def _alloc(shape: tuple[int, ...], dtype: torch.dtype, fill) -> Tensor:
    """A filled tensor; in a loader worker, in shared memory (as DataLoader's default_collate does),
    so handing it to the trainer process costs no further copy."""
    if get_worker_info() is None:
        return torch.full(shape, fill, dtype=dtype)
    proto = torch.empty(0, dtype=dtype)
    storage = proto._typed_storage()._new_shared(math.prod(shape), device="cpu")
    return proto.new(storage).resize_(*shape).fill_(fill)


def _pad(seqs: list[Tensor | None], width: int | None = None, fill=0.0, dtype=None) -> tuple[Tensor, Tensor] | None:
    present = [s for s in seqs if s is not None]
    if not present:
        return None
    width = width or max(s.shape[0] for s in present)
    ref = present[0]
    out = _alloc((len(seqs), width, *ref.shape[1:]), dtype or ref.dtype, fill)
    mask = _alloc((len(seqs), width), torch.bool, False)
    for i, s in enumerate(seqs):
        if s is not None:
            out[i, :s.shape[0]] = s
            mask[i, :s.shape[0]] = True
    return out, mask


def collate(items: list[_Item], pad_id: int = 0) -> Batch:
    B = len(items)
    x1, latent_mask = _pad([it.x1 for it in items])
    T = x1.shape[1]
    clip = _pad([it.clip for it in items])
    sync = _pad([it.sync for it in items])
    sync_times = _pad([it.sync_times for it in items], width=sync[0].shape[1]) if sync is not None else None
    voice = _pad([it.voice_ids for it in items], width=T, fill=pad_id, dtype=torch.long)
    voice_times = _pad([it.voice_times for it in items], width=T) if voice is not None else None
    return Batch(
        keys=[it.key for it in items], corpora=[it.corpus for it in items], x1=x1, latent_mask=latent_mask,
        start_s=torch.tensor([it.start_s for it in items], dtype=torch.float32),
        duration_s=torch.tensor([it.duration_s for it in items], dtype=torch.float32),
        clip=clip[0] if clip else None, clip_mask=clip[1] if clip else None,
        sync=sync[0] if sync else None, sync_mask=sync[1] if sync else None,
        sync_times=sync_times[0] if sync_times else None,
        captions=[it.caption for it in items],
        voice_ids=voice[0] if voice else None, voice_mask=voice[1] if voice else None,
        voice_times=voice_times[0] if voice_times else None,
        has_video=clip[1].any(1) if clip else torch.zeros(B, dtype=torch.bool),
        has_caption=torch.tensor([it.caption is not None for it in items], dtype=torch.bool),
        has_voice=voice[1].any(1) if voice else torch.zeros(B, dtype=torch.bool),
    )


class _Buckets:
    """Duration buckets: emit a batch when full (max_batch) or when B × T_max would pass batch_frames."""

    def __init__(self, max_frames: int, batch_frames: int, max_batch: int):
        self.width = max(1, math.ceil(max_frames / BUCKETS))
        self.batch_frames, self.max_batch = batch_frames, max_batch
        self.buckets: dict[int, list[_Item]] = {}

    def add(self, item: _Item) -> list[list[_Item]]:
        """Add one item; returns the batches it completes (zero, one or two)."""
        b = (item.frames - 1) // self.width
        bucket = self.buckets.setdefault(b, [])
        out = []
        longest = max([item.frames] + [it.frames for it in bucket])
        if bucket and (len(bucket) + 1) * longest > self.batch_frames:
            out.append(bucket)
            bucket = self.buckets[b] = []
        bucket.append(item)
        if len(bucket) >= self.max_batch:
            out.append(bucket)
            self.buckets[b] = []
        return out

    def flush(self) -> Iterator[list[_Item]]:
        for b in sorted(self.buckets):
            if self.buckets[b]:
                yield self.buckets[b]
        self.buckets = {}


class _BatchStream(IterableDataset):
    """Worker side: ShardDataset samples -> prepared items -> bucketed Batches, with counter deltas."""

    def __init__(self, dataset: ShardDataset, prepare: _Prepare, buckets: tuple[int, int, int], seed: int,
                 epoch: int, pad_id: int):
        super().__init__()
        self.dataset, self.prepare, self.bucket_args = dataset, prepare, buckets
        self.seed, self.epoch, self.pad_id = seed, epoch, pad_id

    def __iter__(self) -> Iterator[tuple[Batch | None, dict]]:
        info = get_worker_info()
        worker, nworkers = (info.id, info.num_workers) if info is not None else (0, 1)
        ds = self.dataset
        buckets = _Buckets(*self.bucket_args)
        counters = dict.fromkeys(COUNTERS, 0)
        g = torch.Generator()
        for n, sample in enumerate(ds):
            g.manual_seed(_seed_int(self.seed, self.epoch, ds.rank, ds.world_size, worker, nworkers, n, _SALT_EPS))
            item = self.prepare(sample, g, counters)
            if isinstance(item, str):
                counters[item] += 1
                continue
            counters["samples"] += 1
            for full in buckets.add(item):
                counters["batches"] += 1
                yield collate(full, self.pad_id), counters
                counters = dict.fromkeys(COUNTERS, 0)
        for rest in buckets.flush():
            counters["batches"] += 1
            yield collate(rest, self.pad_id), counters
            counters = dict.fromkeys(COUNTERS, 0)
        if any(counters.values()):
            yield None, counters


def _identity(x):
    return x


class TrainingData:
    """What the trainer iterates: Batches from a ShardDataset through a DataLoader."""

    def __init__(self, sources, *, batch_frames: int, max_batch: int, max_duration_s: float = 10.0,
                 latent_rate: float, latent_stats: LatentStats, shuffle_buffer: int, seed: int,
                 resampled: bool = True, num_workers: int = 0, rank=None, world_size=None, voice_pad_id: int = 0,
                 expected_features: dict[str, str] | None = None, split: str = "train"):
        from model.config import frames_for_duration

        if max_batch < 1 or num_workers < 0:
            raise ValueError(f"max_batch must be >= 1 and num_workers >= 0, got {max_batch}, {num_workers}")
        self.max_frames = frames_for_duration(max_duration_s, latent_rate)
        if batch_frames < self.max_frames:
            raise ValueError(f"batch_frames={batch_frames} cannot hold one clip of max_duration_s={max_duration_s} "
                             f"({self.max_frames} latent frames)")
        self.dataset = ShardDataset(as_sources(sources, split), members=TRAINING_MEMBERS, resampled=resampled,
                                    shuffle_buffer=shuffle_buffer, seed=seed, rank=rank, world_size=world_size)
        self.prepare = _Prepare(latent_stats, self.max_frames, max_duration_s, latent_rate, expected_features)
        self.batch_frames, self.max_batch, self.num_workers = batch_frames, max_batch, num_workers
        self.seed, self.pad_id = seed, voice_pad_id
        self.epoch = 0
        self._batches = 0  # batches handed out in this epoch (what a resumed run skips)
        self.counters = dict.fromkeys(COUNTERS, 0)

    @property
    def rank(self) -> int:
        return self.dataset.rank

    @property
    def world_size(self) -> int:
        return self.dataset.world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._batches = int(epoch), 0

    def _stream(self) -> Iterator[tuple[Batch | None, dict]]:
        self.dataset.set_epoch(self.epoch)
        stream = _BatchStream(self.dataset, self.prepare, (self.max_frames, self.batch_frames, self.max_batch),
                              self.seed, self.epoch, self.pad_id)
        if self.num_workers == 0:
            return iter(stream)
        return iter(DataLoader(stream, batch_size=None, num_workers=self.num_workers, collate_fn=_identity))

    def __iter__(self) -> Iterator[Batch]:
        skip, seen = self._batches, 0
        for batch, delta in self._stream():
            if batch is not None and seen < skip:  # handed out before the checkpoint: counted there
                seen += 1
                continue
            for k, v in delta.items():
                self.counters[k] = self.counters.get(k, 0) + v
            if batch is not None:
                self._batches += 1
                yield batch
        self.epoch, self._batches = self.epoch + 1, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batches": self._batches, "counters": dict(self.counters), "seed": self.seed,
                "rank": self.rank, "world_size": self.world_size, "num_workers": self.num_workers}

    def load_state_dict(self, d: dict) -> None:
        for name in ("seed", "world_size", "num_workers"):
            if name in d and d[name] != getattr(self, name):
                log.warning("data state was saved with %s=%s, now %s: the batches will differ from an "
                            "uninterrupted run", name, d[name], getattr(self, name))
        self.epoch, self._batches = int(d["epoch"]), int(d["batches"])
        self.counters = dict.fromkeys(COUNTERS, 0) | dict(d.get("counters", {}))
