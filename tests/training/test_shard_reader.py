"""ShardDataset: DataLoader use, lazy members, splitting over ranks and workers, order, mixture."""
from __future__ import annotations

import itertools
import json
from collections import Counter

import numpy as np
import pytest
import webdataset as wds
from torch.utils.data import DataLoader

from pipeline.shard_reader import (
    ShardChecksumError,
    ShardDataset,
    ShardFormatError,
    ShardSource,
    iter_tar_samples,
    stream_shards,
)
from pipeline.shards import stream_shards as reexported_stream_shards
from tests.training.shard_fixtures import make_sample, simple_run, write_run


def keys_of(it):
    return [s["__key__"] for s in it]


def all_keys(run, split="train"):
    index = json.loads((run / "shards" / split / "index.json").read_text())
    out = []
    for s in index["shards"]:
        out += [k for _, k, _ in iter_tar_samples(str(run / "shards" / split / s["name"]), frozenset())]
    return out


@pytest.mark.parametrize("num_workers", [0, 2])
def test_dataloader_accepts_the_dataset(tmp_path, num_workers):
    run = simple_run(tmp_path, [4, 3, 5])
    ds = ShardDataset(str(run), members=("json", "latent.npy"))
    got = keys_of(DataLoader(ds, batch_size=None, num_workers=num_workers))
    assert sorted(got) == sorted(all_keys(run)) and len(got) == 12
    assert reexported_stream_shards is stream_shards


def test_decoded_members_match_webdataset(tmp_path):
    long_key = "corpus-" + "x" * 120 + "-000001500"  # > 100 characters: a pax header in the tar
    run = write_run(tmp_path, "train", [[make_sample(long_key, seed=1), make_sample("b-1", seed=2, video=False)]])
    url = str(run / "shards/train/train-00000.tar")
    ref = {s["__key__"]: s for s in wds.WebDataset([url], shardshuffle=False).decode()}
    got = {s["__key__"]: s for s in stream_shards(run, "train")}
    assert set(got) == set(ref) == {long_key, "b-1"}
    for key, s in got.items():
        assert {k for k in s if not k.startswith("__")} == {k for k in ref[key] if not k.startswith("__")}
        assert s["json"] == ref[key]["json"]
        for m in ("latent.npy", "clip.npy", "sync.npy", "tokens.npy"):
            if m in s:
                assert s[m].dtype == ref[key][m].dtype and np.array_equal(s[m], ref[key][m])
                assert s[m].flags.writeable


def test_only_asked_members_are_decoded(tmp_path):
    run = write_run(tmp_path, "train", [[make_sample("a-1", flac=b"this is not a flac file")]])
    (s,) = ShardDataset(str(run), members=("json", "latent.npy"))
    assert {k for k in s if not k.startswith("__")} == {"json", "latent.npy"}
    (s,) = ShardDataset(str(run), members=("tokens.npy",))
    assert {k for k in s if not k.startswith("__")} == {"tokens.npy"}
    with pytest.raises(ShardFormatError, match=r"train-00000\.tar:a-1\.flac: cannot decode FLAC"):
        list(ShardDataset(str(run), members=("json", "flac")))


def test_pickled_npy_and_garbage_tar_are_refused_naming_the_file(tmp_path):
    bad = make_sample("a-1")
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    bad["latent.npy"] = buf.getvalue()
    run = write_run(tmp_path / "r1", "train", [[bad]])
    with pytest.raises(ShardFormatError, match="a-1.latent.npy: .npy holds Python objects"):
        list(ShardDataset(str(run), members=("latent.npy",)))
    run2 = simple_run(tmp_path / "r2", [2])
    tar = run2 / "shards/train/train-00000.tar"
    data = bytearray(tar.read_bytes())
    data[200:300] = b"\x01" * 100  # corrupt the first header
    tar.write_bytes(bytes(data))
    with pytest.raises(ShardFormatError, match="train-00000.tar: not a tar header at byte 0"):
        list(ShardDataset(str(run2)))
    with pytest.raises(ShardChecksumError, match="train-00000.tar"):
        ShardDataset(str(run2), verify=True)


def rank_keys(run, rank, world, num_workers, **kw):
    ds = ShardDataset(str(run), members=("json",), rank=rank, world_size=world, **kw)
    return keys_of(DataLoader(ds, batch_size=None, num_workers=num_workers))


def test_fewer_shards_than_ranks_times_workers_every_sample_once(tmp_path):
    run = simple_run(tmp_path, [9, 2])  # 2 shards < 2 ranks x 2 workers; 11 samples
    per_rank = [rank_keys(run, r, 2, 2, shuffle_buffer=3, seed=5) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1]) == 5  # 11 // 2, one sample dropped this epoch
    seen = Counter(per_rank[0] + per_rank[1])
    assert max(seen.values()) == 1 and set(seen) <= set(all_keys(run))
    single = simple_run(tmp_path / "one", [3])  # one shard, 3 samples, 1 rank x 2 workers: split by sample
    assert sorted(rank_keys(single, 0, 1, 2)) == sorted(all_keys(single))


def test_equal_counts_per_rank_and_exact_cover(tmp_path):
    run = simple_run(tmp_path, [5, 3, 7, 1, 4])  # 20 samples
    for world in (2, 3):
        per_rank = [rank_keys(run, r, world, 0, seed=1) for r in range(world)]
        assert {len(k) for k in per_rank} == {20 // world}
        seen = Counter(itertools.chain(*per_rank))
        assert max(seen.values()) == 1 and len(seen) == (20 // world) * world
    ds = ShardDataset(str(run), rank=0, world_size=2)
    assert ds.samples_per_rank() == 10


def test_new_order_per_epoch_same_for_same_seed_and_epoch(tmp_path):
    run = simple_run(tmp_path, [6, 6, 6, 6])

    def order(seed, epoch):
        ds = ShardDataset(str(run), members=("json",), shuffle_buffer=5, seed=seed)
        ds.set_epoch(epoch)
        return keys_of(ds)

    e0, e1 = order(0, 0), order(0, 1)
    assert sorted(e0) == sorted(e1) == sorted(all_keys(run))
    assert e0 != e1 and order(0, 1) == e1 and order(0, 0) == e0 and order(1, 0) != e0


def test_resampled_is_reproducible_and_endless(tmp_path):
    run = simple_run(tmp_path, [3, 4, 2])

    def first(n, seed, num_workers=0, epoch=0):
        ds = ShardDataset(str(run), members=("json",), resampled=True, shuffle_buffer=4, seed=seed)
        ds.set_epoch(epoch)
        return keys_of(itertools.islice(DataLoader(ds, batch_size=None, num_workers=num_workers), n))

    a = first(60, 3)
    assert len(a) == 60 and a == first(60, 3) and a != first(60, 4) and a != first(60, 3, epoch=1)
    assert first(30, 3, num_workers=2) == first(30, 3, num_workers=2)


def test_mixture_weights_between_runs_and_corpora(tmp_path):
    a = simple_run(tmp_path / "a", [5, 5], prefix="a")
    b = simple_run(tmp_path / "b", [8], prefix="b")
    ds = ShardDataset([ShardSource(str(a), weight=3.0), ShardSource(str(b), weight=1.0)], members=(),
                      resampled=True, seed=0)
    sources = Counter(s["__source__"] for s in itertools.islice(ds, 2000))
    assert abs(sources[str(a)] / 2000 - 0.75) < 0.05

    # one run, corpus "big" has 4x the samples of "small": equal weights give equal shares
    shards = [[make_sample(f"big-{i}", "big", seed=i) for i in range(16)],
              [make_sample(f"small-{i}", "small", seed=i) for i in range(4)] +
              [make_sample(f"none-{i}", "gone", seed=i) for i in range(4)]]
    c = write_run(tmp_path / "c", "train", shards)
    ds = ShardDataset([ShardSource(str(c), corpora={"big": 1.0, "small": 1.0, "gone": 0.0})], members=("json",),
                      resampled=True, seed=1)
    corpora = Counter(s["json"]["corpus"] for s in itertools.islice(ds, 2000))
    assert corpora["gone"] == 0 and abs(corpora["small"] / 2000 - 0.5) < 0.06
    one_pass = keys_of(ShardDataset([ShardSource(str(c), corpora={"big": 1.0, "small": 2.0})], members=()))
    assert sorted(one_pass) == sorted([f"big-{i}" for i in range(16)] + [f"small-{i}" for i in range(4)])
    with pytest.raises(ValueError, match=r"corpora \['nope'\] not in the shards"):
        ShardDataset([ShardSource(str(c), corpora={"nope": 1.0})])


def test_missing_index_and_bad_rank_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no shard index"):
        ShardDataset(str(tmp_path))
    run = simple_run(tmp_path / "r", [1])
    with pytest.raises(ValueError, match="rank 2 is not in"):
        ShardDataset(str(run), rank=2, world_size=2)
    with pytest.raises(ValueError, match="fewer samples than ranks"):
        list(ShardDataset(str(run), rank=0, world_size=2))


def test_shard_shorter_than_its_index_entry_is_an_error(tmp_path):
    run = simple_run(tmp_path, [3, 2])
    index_path = run / "shards/train/index.json"
    index = json.loads(index_path.read_text())
    index["shards"][1]["nsamples"] = 4
    index_path.write_text(json.dumps(index))
    with pytest.raises(ShardFormatError, match=r"train-00001.tar: has fewer samples than its index.json entry \(4\)"):
        list(ShardDataset(str(run), shuffle_shards=False))
