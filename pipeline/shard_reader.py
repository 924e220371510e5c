"""Reading WebDataset shards back (DESIGN §6): the dataset a trainer iterates.

    ds = ShardDataset([ShardSource("runs/vgg", weight=3), ShardSource("runs/speech")],
                      members=("json", "latent.npy"), resampled=True, shuffle_buffer=256, seed=0)
    ds.set_epoch(epoch)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)

The tar files are memory-mapped and parsed here (a small ustar/pax/GNU reader), not by
webdataset's pipeline: only the members asked for are decoded (`json` parsed, `.npy` arrays
viewing the mapped file without a copy — their bytes come from the page cache when first used —
loaded without pickle, `flac` only if asked); the other members are never touched. Samples are
the usual WebDataset groups: consecutive members whose name up to the first dot of the base name
is equal.

One pass (`resampled=False`): the kept samples of all sources, in an order that depends on
(seed, epoch) only (shards permuted unless `shuffle_shards=False`, samples in stored order), are
cut into `world_size` equal contiguous ranges of ⌊N / world_size⌋ samples — the last N mod
world_size samples of the epoch's order are DROPPED (a different few each epoch), so every rank
yields the same count and DDP cannot hang at the end of an epoch — and each rank's range is cut
into near-equal contiguous ranges per DataLoader worker. Splitting is by sample, not by shard, so
fewer shards than ranks × workers works, and every kept sample is seen exactly once per epoch.
Mixture weights do not apply to a pass (a pass reads every sample once), except that corpora
with weight 0 (or not listed, when `corpora` is given) are left out.

Resampled (`resampled=True`): an infinite stream per (seed, epoch, rank, worker). Each sample is
drawn from a source chosen by `weight`; inside a source, shards are drawn uniformly with
replacement and read in order (so every sample is read at the same rate); with `corpora`, a sample of corpus c is
kept with a probability chosen so that corpus c makes up w_c / Σw of that source's samples.

A shuffle buffer (`shuffle_buffer` > 0) reorders samples per worker, seeded from the same tuple.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import mmap
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .layout import RunLayout

try:  # 5x faster on the clip records (hundreds of token/sync times each)
    from orjson import loads as _orjson_loads

    def _json_loads(raw):
        return _orjson_loads(memoryview(raw))
except ImportError:  # pragma: no cover - orjson is a dependency; plain json gives the same dicts
    def _json_loads(raw):
        return json.loads(bytes(raw))

TAR_BLOCK = 512
ZERO_BLOCK = bytes(TAR_BLOCK)
READ_BUFFER = 1 << 20  # chunk size when hashing a shard
NPY_MAGIC = b"\x93NUMPY"
NPY_PEEK = 128  # np.save pads magic + header to a multiple of 64 bytes: usually 128
NPY_HEADER_CACHE_SIZE = 4096  # distinct .npy headers (dtype + shape) remembered per process
ALL_MEMBERS = None  # `members=ALL_MEMBERS`: read and decode every member of a sample
TRAINING_MEMBERS = ("json", "latent.npy", "clip.npy", "sync.npy", "tokens.npy")
# salts: the same (seed, epoch, ...) tuple seeds independent random streams per purpose
_SALT_ORDER, _SALT_RESAMPLE, _SALT_SHUFFLE = 1, 2, 3


class ShardChecksumError(RuntimeError):
    """A shard whose bytes differ from its index.json entry (corrupt or replaced)."""


class ShardFormatError(ValueError):
    """A shard that is not a readable tar, or a member that cannot be decoded."""


# -- index ----------------------------------------------------------------------------------------

def _read_index(run_dir: str | Path, split: str) -> tuple[Path, dict]:
    index_path = RunLayout(Path(run_dir)).shard_index(split)
    try:
        index = json.loads(index_path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{index_path}: no shard index (has the run finished its shard step?)") from None
    except json.JSONDecodeError as e:
        raise ShardFormatError(f"{index_path}: not valid JSON ({e})") from None
    if not isinstance(index.get("shards"), list):
        raise ShardFormatError(f"{index_path}: no 'shards' list")
    return index_path, index


def _shard_path(index_path: Path, name: str) -> Path:
    path = index_path.parent / name
    if Path(name).name != name or name in ("", ".", ".."):
        raise ShardFormatError(f"{index_path}: shard name {name!r} escapes the shard folder")
    return path


def _verify(path: Path, entry: dict, index_path: Path) -> None:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(READ_BUFFER):
            h.update(chunk)
            size += len(chunk)
    if size != entry["bytes"] or h.hexdigest() != entry["sha256"]:
        raise ShardChecksumError(f"{path}: checksum or size differs from {index_path}")


def shard_urls(run_dir: str | Path, split: str, verify: bool = False) -> list[str]:
    """Shard paths of a split from its index.json; with verify, sha256 and size are checked."""
    return [url for url, _ in shard_entries(run_dir, split, verify=verify)]


def shard_entries(run_dir: str | Path, split: str, verify: bool = False) -> list[tuple[str, int]]:
    """(path, nsamples) of every shard of a split, in index order."""
    index_path, index = _read_index(run_dir, split)
    out = []
    for s in index["shards"]:
        path = _shard_path(index_path, s["name"])
        if verify:
            _verify(path, s, index_path)
        out.append((str(path), int(s["nsamples"])))
    return out


# -- tar parsing ----------------------------------------------------------------------------------

def _number(field: bytes, path: str, offset: int) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for large sizes
        return int.from_bytes(field[1:], "big")
    text = field.rstrip(b"\0 ").lstrip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise ShardFormatError(f"{path}: bad tar header at byte {offset} (number field {field!r})") from None


def _pax_path(data: bytes) -> str | None:
    if b" path=" not in data:
        return None
    pos, name = 0, None
    while pos < len(data):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        key, _, value = data[space + 1:pos + length - 1].partition(b"=")
        if key == b"path":
            name = value.decode("utf-8")
        pos += length
    return name


def split_member_name(name: str) -> tuple[str | None, str | None]:
    """WebDataset's grouping rule: 'dir/key.latent.npy' -> ('dir/key', 'latent.npy')."""
    slash = name.rfind("/") + 1
    dot = name.find(".", slash)
    if dot <= slash:
        return None, None
    return name[:dot], name[dot + 1:]


class _TarFile:
    """One tar, memory-mapped: a member's bytes are not read until its array is used (page cache, no copy).

    Copy-on-write mapping: the arrays are writable and writes stay private. Shards are immutable
    once committed (atomic rename), so the mapping cannot shrink under a reader.
    """

    def __init__(self, path: str):
        self.path = path
        fd = os.open(path, os.O_RDONLY)
        try:
            self.size = os.fstat(fd).st_size
            self.mm = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY) if self.size else b""
            if self.size:
                self.mm.madvise(mmap.MADV_SEQUENTIAL)  # read ahead: members are used in file order
        finally:
            os.close(fd)


def iter_tar_samples(path: str, want: frozenset[str] | None, positions: Sequence[int] | None = None
                     ) -> Iterator[tuple[int, str, dict[str, np.ndarray]]]:
    """(position, key, {suffix: raw bytes as a uint8 array}) of the samples of one tar, in stored order.

    Only members whose suffix is in `want` (all when None) are returned, as arrays viewing the
    memory-mapped file (nothing is copied or read before use); the others are skipped.
    With `positions` (sorted ascending sample ordinals), only those samples are returned and
    reading stops after the last one.
    """
    wanted_pos = None if positions is None else iter(positions)
    next_pos = None if wanted_pos is None else next(wanted_pos, None)
    if wanted_pos is not None and next_pos is None:
        return
    pos, key, members = -1, None, {}
    tar = _TarFile(path)
    mm, file_size = tar.mm, tar.size  # (the loop below is the reader's hot path: kept inline)
    try:
        offset, long_name = 0, None
        while True:
            hdr = mm[offset:offset + TAR_BLOCK]
            if len(hdr) < TAR_BLOCK:
                if hdr:
                    raise ShardFormatError(f"{path}: truncated tar header at byte {offset}")
                break  # no end-of-archive blocks: tolerated, like tarfile
            if hdr == ZERO_BLOCK:
                break
            if hdr[257:262] != b"ustar":
                raise ShardFormatError(f"{path}: not a tar header at byte {offset}")
            try:
                size = int(hdr[124:136].rstrip(b"\0 "), 8)
            except ValueError:  # base-256, empty or garbage
                size = _number(hdr[124:136], path, offset)
            kind = hdr[156:157]
            data_at = offset + TAR_BLOCK
            offset = data_at + size + (-size % TAR_BLOCK)
            if offset > file_size:
                raise ShardFormatError(f"{path}: truncated tar member at byte {data_at}")
            if kind in (b"x", b"L"):
                data = mm[data_at:data_at + size]
                long_name = _pax_path(data) if kind == b"x" else data.split(b"\0", 1)[0].decode("utf-8")
                continue
            if kind not in (b"0", b"\0", b"7"):  # directories, links, global headers: not sample members
                long_name = None
                continue
            if long_name is not None:
                name, long_name = long_name, None
            else:
                name = hdr[:100].split(b"\0", 1)[0].decode("utf-8")
                if hdr[345]:
                    name = hdr[345:500].split(b"\0", 1)[0].decode("utf-8") + "/" + name
            slash = name.rfind("/") + 1  # WebDataset's grouping rule, as split_member_name
            dot = name.find(".", slash)
            if dot <= slash:
                continue
            prefix, suffix = name[:dot], name[dot + 1:]
            if prefix != key:  # a new sample starts
                if key is not None and (next_pos is None or pos == next_pos):
                    yield pos, key, members
                    if wanted_pos is not None:
                        next_pos = next(wanted_pos, None)
                        if next_pos is None:
                            return
                pos, key, members = pos + 1, prefix, {}
            if (next_pos is None or pos == next_pos) and (want is None or suffix in want):
                members[suffix] = np.frombuffer(mm, np.uint8, count=size, offset=data_at)
        if key is not None and (next_pos is None or pos == next_pos):
            yield pos, key, members
    finally:
        del tar, mm  # the mapping lives on while arrays view it


# -- decoding -------------------------------------------------------------------------------------

_npy_headers: dict[bytes, tuple[np.dtype, tuple[int, ...], bool]] = {}


def _npy_header(header: bytes, where: str) -> tuple[np.dtype, tuple[int, ...], bool]:
    got = _npy_headers.get(header)
    if got is not None:
        return got
    try:
        d = ast.literal_eval(header.decode("latin1"))
        dtype = np.lib.format.descr_to_dtype(d["descr"])
        shape = tuple(int(n) for n in d["shape"])
        fortran = bool(d["fortran_order"])
    except Exception as e:  # noqa: BLE001 - any malformed header is a format error
        raise ShardFormatError(f"{where}: bad .npy header ({e})") from None
    if dtype.hasobject:
        raise ShardFormatError(f"{where}: .npy holds Python objects (pickles are not loaded)")
    if len(_npy_headers) >= NPY_HEADER_CACHE_SIZE:
        _npy_headers.clear()
    _npy_headers[header] = (dtype, shape, fortran)
    return dtype, shape, fortran


def load_npy(raw: np.ndarray | bytearray | bytes, where: str) -> np.ndarray:
    """An .npy member as an array viewing `raw` (no copy; writable when raw is)."""
    if not isinstance(raw, np.ndarray):
        raw = np.frombuffer(raw, np.uint8)
    pre = raw[:NPY_PEEK].tobytes()
    if pre[:6] != NPY_MAGIC or len(pre) < 12:
        raise ShardFormatError(f"{where}: not an .npy file")
    major = pre[6]
    if major == 1:
        start = 10 + int.from_bytes(pre[8:10], "little")
        header = pre[10:start] if start <= len(pre) else raw[10:start].tobytes()
    elif major in (2, 3):
        start = 12 + int.from_bytes(pre[8:12], "little")
        header = pre[12:start] if start <= len(pre) else raw[12:start].tobytes()
    else:
        raise ShardFormatError(f"{where}: unknown .npy version {major}")
    dtype, shape, fortran = _npy_header(header, where)
    count = math.prod(shape)
    if len(raw) - start < count * dtype.itemsize:
        raise ShardFormatError(f"{where}: .npy data truncated ({len(raw) - start} bytes for shape {shape})")
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=start)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def decode_member(suffix: str, raw: np.ndarray | bytes, where: str):
    if suffix == "json":
        try:
            return _json_loads(raw)
        except ValueError as e:  # json.JSONDecodeError, orjson.JSONDecodeError, UnicodeDecodeError
            raise ShardFormatError(f"{where}: bad JSON ({e})") from None
    if suffix.endswith(".npy"):
        return load_npy(raw, where)
    if suffix == "flac":
        from .media.audio import decode_audio_blob

        try:
            return decode_audio_blob(bytes(raw))
        except Exception as e:  # noqa: BLE001 - soundfile raises several types
            raise ShardFormatError(f"{where}: cannot decode FLAC ({e})") from None
    if suffix in ("txt", "text"):
        return bytes(raw).decode("utf-8")
    return bytes(raw)


# -- sources and the dataset ----------------------------------------------------------------------

@dataclass(frozen=True)
class ShardSource:
    """One run's split, with its share of the mixture."""

    run_dir: str
    split: str = "train"
    weight: float = 1.0
    corpora: dict[str, float] | None = None  # per-corpus shares inside the run (None: all corpora as stored)

    def __post_init__(self):
        if not self.weight > 0:
            raise ValueError(f"ShardSource {self.run_dir}: weight must be > 0, got {self.weight}")
        for name, w in (self.corpora or {}).items():
            if not w >= 0:
                raise ValueError(f"ShardSource {self.run_dir}: corpora.{name} weight must be >= 0, got {w}")
        if self.corpora is not None and not any(w > 0 for w in self.corpora.values()):
            raise ValueError(f"ShardSource {self.run_dir}: corpora gives no corpus a weight > 0")


def as_sources(sources, split: str = "train") -> list[ShardSource]:
    """ShardSource list from a run dir, ShardSources, or config objects with run/split/weight/corpora."""
    if isinstance(sources, (str, Path)):
        return [ShardSource(str(sources), split)]
    out = []
    for s in sources:
        if isinstance(s, ShardSource):
            out.append(s)
        elif isinstance(s, (str, Path)):
            out.append(ShardSource(str(s), split))
        else:
            run = getattr(s, "run_dir", None) or s.run
            out.append(ShardSource(str(run), getattr(s, "split", split), float(getattr(s, "weight", 1.0)),
                                   dict(s.corpora) if getattr(s, "corpora", None) else None))
    if not out:
        raise ValueError("no shard sources given")
    return out


@dataclass
class _Shard:
    source: int
    url: str
    nsamples: int
    kept: list[int] | None  # positions of the samples read (None: all)
    corpus: list[str | None] | None  # corpus per position (only when the source has corpus weights)

    @property
    def count(self) -> int:
        return self.nsamples if self.kept is None else len(self.kept)


def scan_corpora(url: str) -> list[str | None]:
    """Corpus of every sample of a shard, from its json members (the arrays are seeked over)."""
    out = []
    for _, key, m in iter_tar_samples(url, frozenset({"json"})):
        corpus = decode_member("json", m["json"], f"{url}:{key}.json").get("corpus") if "json" in m else None
        out.append(corpus)
    return out


def _seed(*parts: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(p) for p in parts])


def dist_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """rank/world_size as given, else from torch.distributed when initialised, else 0/1."""
    if rank is None or world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank = torch.distributed.get_rank() if rank is None else rank
            world_size = torch.distributed.get_world_size() if world_size is None else world_size
        else:
            rank = 0 if rank is None else rank
            world_size = 1 if world_size is None else world_size
    if not (world_size >= 1 and 0 <= rank < world_size):
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    return rank, world_size


class ShardDataset(IterableDataset):
    """Samples of one or more runs' shards, as dicts {"__key__", "__source__", member: decoded}.

    Also "__shard__" (path) and "__pos__" (sample ordinal in that shard). See the module docstring
    for how samples are split over ranks and workers and for the resampled mixture.
    """

    def __init__(self, sources: list[ShardSource] | str, split: str = "train", *,
                 members: tuple[str, ...] | None = TRAINING_MEMBERS, resampled: bool = False,
                 shuffle_buffer: int = 0, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None, verify: bool = False, drop_last_uneven: bool = True,
                 shuffle_shards: bool = True):
        super().__init__()
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        if not drop_last_uneven:
            raise ValueError("drop_last_uneven=False is not supported: ranks with unequal sample counts hang DDP")
        self.sources = as_sources(sources, split)
        self.members = None if members is None else frozenset(members)
        self.resampled = resampled
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.shuffle_shards = shuffle_shards
        self.rank, self.world_size = dist_rank_world(rank, world_size)
        self.epoch = 0
        self.shards: list[_Shard] = []
        self.acceptance: list[dict[str, float] | None] = []  # per source: corpus -> keep probability
        for si, src in enumerate(self.sources):
            entries = shard_entries(src.run_dir, src.split, verify=verify)
            shards = [_Shard(si, url, n, None, None) for url, n in entries]
            self.acceptance.append(self._corpus_plan(src, shards) if src.corpora is not None else None)
            if sum(s.count for s in shards) == 0:
                raise ValueError(f"{src.run_dir} split {src.split!r}: no samples to read"
                                 + (f" for corpora {src.corpora}" if src.corpora else ""))
            self.shards.extend(shards)

    @staticmethod
    def _corpus_plan(src: ShardSource, shards: list[_Shard]) -> dict[str, float]:
        counts: dict[str | None, int] = {}
        for s in shards:
            s.corpus = scan_corpora(s.url)
            if len(s.corpus) != s.nsamples:
                raise ShardFormatError(f"{s.url}: {len(s.corpus)} samples but index.json says {s.nsamples}")
            for c in s.corpus:
                counts[c] = counts.get(c, 0) + 1
        wanted = {c: w for c, w in src.corpora.items() if w > 0}
        missing = sorted(c for c in wanted if c not in counts)
        if missing:
            present = ", ".join(sorted(str(c) for c in counts))
            raise ValueError(f"{src.run_dir} split {src.split!r}: corpora {missing} not in the shards "
                             f"(present: {present})")
        total_w, total_n = sum(wanted.values()), sum(counts[c] for c in wanted)
        ratio = {c: (w / total_w) / (counts[c] / total_n) for c, w in wanted.items()}
        top = max(ratio.values())
        for s in shards:
            s.kept = [i for i, c in enumerate(s.corpus) if c in wanted]
        return {c: r / top for c, r in ratio.items()}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    # -- one pass --------------------------------------------------------------------------------
    def epoch_order(self, epoch: int | None = None) -> list[int]:
        """Shard indices in the order of one pass (the same for every rank)."""
        epoch = self.epoch if epoch is None else epoch
        order = list(range(len(self.shards)))
        if self.shuffle_shards:
            rng = np.random.default_rng(_seed(self.seed, epoch, _SALT_ORDER))
            order = [int(i) for i in rng.permutation(len(order))]
        return order

    def samples_per_rank(self) -> int:
        """Samples every rank yields in one pass (resampled=False)."""
        return sum(s.count for s in self.shards) // self.world_size

    def _worker_segments(self, worker: int, num_workers: int) -> list[tuple[_Shard, int, int]]:
        per_rank = self.samples_per_rank()
        if per_rank == 0:
            raise ValueError(f"{sum(s.count for s in self.shards)} samples cannot be split over "
                             f"{self.world_size} ranks (fewer samples than ranks)")
        base, extra = divmod(per_rank, num_workers)
        lo = self.rank * per_rank + worker * base + min(worker, extra)
        hi = lo + base + (1 if worker < extra else 0)
        segments, start = [], 0
        for i in self.epoch_order():
            shard = self.shards[i]
            end = start + shard.count
            a, b = max(lo, start), min(hi, end)
            if a < b:
                segments.append((shard, a - start, b - start))
            start = end
            if start >= hi:
                break
        return segments

    def _one_pass(self, worker: int, num_workers: int) -> Iterator[dict]:
        for shard, a, b in self._worker_segments(worker, num_workers):
            positions = range(a, b) if shard.kept is None else shard.kept[a:b]
            yield from self._read(shard, positions)

    # -- resampled -------------------------------------------------------------------------------
    def _source_stream(self, si: int, rng: np.random.Generator) -> Iterator[dict]:
        # shards drawn uniformly and read whole: every sample is read at the same rate whatever its shard's size
        shards = [s for s in self.shards if s.source == si and s.count]
        accept = self.acceptance[si]
        while True:
            shard = shards[int(rng.integers(len(shards)))]
            positions = range(shard.nsamples) if shard.kept is None else shard.kept
            if accept is not None:
                draws = rng.random(len(positions))
                positions = [q for q, u in zip(positions, draws) if u < accept[shard.corpus[q]]]
            yield from self._read(shard, positions)

    def _resampled(self, worker: int, num_workers: int) -> Iterator[dict]:
        rng = np.random.default_rng(_seed(self.seed, self.epoch, self.rank, self.world_size, worker,
                                          num_workers, _SALT_RESAMPLE))
        streams = [self._source_stream(si, rng) for si in range(len(self.sources))]
        if len(streams) == 1:
            yield from streams[0]
            return
        w = np.array([s.weight for s in self.sources], dtype=np.float64)
        w /= w.sum()
        while True:
            yield next(streams[int(rng.choice(len(streams), p=w))])

    # -- common ----------------------------------------------------------------------------------
    def _read(self, shard: _Shard, positions: Iterable[int]) -> Iterator[dict]:
        run_dir = self.sources[shard.source].run_dir
        positions = list(positions)
        if not positions:
            return
        n = 0
        for pos, key, raw in iter_tar_samples(shard.url, self.members, positions):
            sample = {"__key__": key, "__source__": run_dir, "__shard__": shard.url, "__pos__": pos}
            for suffix, buf in raw.items():
                sample[suffix] = decode_member(suffix, buf, f"{shard.url}:{key}.{suffix}")
            n += 1
            yield sample
        if n < len(positions):  # the rank split relies on the index's counts
            raise ShardFormatError(f"{shard.url}: has fewer samples than its index.json entry ({shard.nsamples}); "
                                   f"sample {positions[n]} is missing")

    def _shuffled(self, it: Iterator[dict], worker: int, num_workers: int) -> Iterator[dict]:
        rng = np.random.default_rng(_seed(self.seed, self.epoch, self.rank, self.world_size, worker,
                                          num_workers, _SALT_SHUFFLE))
        buf: list[dict] = []
        for sample in it:
            buf.append(sample)
            if len(buf) >= self.shuffle_buffer:
                j = int(rng.integers(len(buf)))
                buf[j], buf[-1] = buf[-1], buf[j]
                yield buf.pop()
        for j in rng.permutation(len(buf)):
            yield buf[int(j)]

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        it = self._resampled(worker, num_workers) if self.resampled else self._one_pass(worker, num_workers)
        if self.shuffle_buffer > 1:
            it = self._shuffled(it, worker, num_workers)
        return it


def stream_shards(run_dir: str | Path, split: str, *, resampled: bool = False, shuffle: int = 0,
                  verify: bool = False, seed: int = 0) -> Iterator[dict]:
    """Every member of every sample of a split, decoded (flac → (samples, rate)), stored order.

    Split by rank (torch.distributed) and worker like ShardDataset; `resampled=True` draws shards
    with replacement forever.
    """
    return iter(ShardDataset(str(run_dir), split, members=ALL_MEMBERS, resampled=resampled,
                             shuffle_buffer=shuffle, verify=verify, seed=seed, shuffle_shards=False))
