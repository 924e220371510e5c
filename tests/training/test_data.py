"""TrainingData: posterior sampling, bucketing, skips, encoder checks, resume."""
from __future__ import annotations

import itertools
import json
from collections import Counter

import numpy as np
import pytest
import torch

from model.inputs import Conditions
from model.training.data import Batch, FeatureMismatchError, LatentStats, TrainingData, compute_latent_stats
from pipeline.shard_reader import ShardDataset
from tests.training.shard_fixtures import LATENT_C, LATENT_RATE, make_sample, simple_run, write_run

DEMO = {"clip": "clip-tiny-random", "sync": "synchformer-tiny-random", "latent": "logmel-codec"}


def unit_stats(c=LATENT_C):
    return LatentStats(torch.zeros(c), torch.ones(c))


def data(run, **kw):
    args = {"batch_frames": 600, "max_batch": 4, "latent_rate": LATENT_RATE, "latent_stats": unit_stats(), "shuffle_buffer": 4,
                "seed": 0, "resampled": False, "expected_features": DEMO}
    args.update(kw)
    return TrainingData(str(run) if not isinstance(run, list) else run, **args)


def test_bucketing_respects_frames_and_batch_size_and_covers_a_pass(tmp_path):
    run = simple_run(tmp_path, [9, 7, 5])
    td = data(run, batch_frames=400, max_batch=3, max_duration_s=4.0)
    keys = []
    for b in td:
        T = b.latent_mask.shape[1]
        assert b.batch_size <= 3 and b.batch_size * T <= 400 and int(b.latent_mask.sum()) <= 400
        assert b.x1.shape == (b.batch_size, T, LATENT_C)
        assert bool((b.x1[~b.latent_mask] == 0).all())  # zero at padding
        lengths = b.latent_mask.sum(1)
        assert int(lengths.max() - lengths.min()) <= td.max_frames / 10 + 1  # one duration bucket
        keys += b.keys
    assert sorted(keys) == sorted(f"k{s}-{i:04d}" for s, n in enumerate([9, 7, 5]) for i in range(n))
    assert td.counters["samples"] == 21 and td.state_dict()["epoch"] == 1


def test_batch_frames_smaller_than_one_clip_is_refused(tmp_path):
    run = simple_run(tmp_path, [1])
    with pytest.raises(ValueError, match="batch_frames=100 cannot hold one clip"):
        data(run, batch_frames=100)


def test_samples_without_latent_or_too_long_are_skipped_and_counted(tmp_path):
    shards = [[make_sample("a-0"), make_sample("a-1", latent=False), make_sample("a-2", duration_s=12.0),
               make_sample("a-3", latent=False), make_sample("a-4", duration_s=3.0)]]
    run = write_run(tmp_path, "train", shards)
    td = data(run, batch_frames=1000)
    keys = [k for b in td for k in b.keys]
    assert sorted(keys) == ["a-0", "a-4"]
    assert td.counters["skipped_no_latent"] == 2 and td.counters["skipped_too_long"] == 1


def test_mismatching_encoder_is_refused_naming_both(tmp_path):
    shards = [[make_sample("a-0"), make_sample("a-1", encoders={"clip": ("dfn5b-h14-384", 64)})]]
    run = write_run(tmp_path, "train", shards)
    with pytest.raises(FeatureMismatchError, match=r"a-1: clip features were made by encoder 'dfn5b-h14-384'.*"
                                                   r"expects 'clip-tiny-random'"):
        list(data(run))
    wide = write_run(tmp_path / "w", "train", [[make_sample("b-0", clip_d=32)]])
    with pytest.raises(FeatureMismatchError, match=r"b-0: clip features are 32-d, encoder 'clip-tiny-random' gives 64-d"):
        list(data(wide))
    undeclared = make_sample("c-0", clip_d=32)
    meta = json.loads(undeclared["json"])
    del meta["features"]
    undeclared["json"] = json.dumps(meta).encode()
    bare = write_run(tmp_path / "u", "train", [[undeclared]])
    with pytest.raises(FeatureMismatchError, match=r"c-0: clip.npy has shape \(16, 32\), encoder 'clip-tiny-random' "
                                                   r"needs width 64"):
        list(data(bare))
    with pytest.raises(FeatureMismatchError, match="latent stats have 8 channels but latent encoder 'logmel-codec'"):
        data(run, latent_stats=unit_stats(8))


def test_posterior_sample_and_normalisation(tmp_path):
    run = simple_run(tmp_path, [6])
    stats = LatentStats(torch.full((LATENT_C,), 2.0), torch.full((LATENT_C,), 3.0))
    raw = {s["__key__"]: s["latent.npy"].astype(np.float32) for s in ShardDataset(str(run), members=("latent.npy",))}
    a = list(data(run, latent_stats=stats, seed=7))
    b = list(data(run, latent_stats=stats, seed=7))
    c = list(data(run, latent_stats=stats, seed=8))
    for ba, bb in zip(a, b):
        assert torch.equal(ba.x1, bb.x1)
    x_a = {k: bt.x1[i, :int(bt.latent_mask[i].sum())] for bt in a for i, k in enumerate(bt.keys)}
    x_c = {k: bt.x1[i, :int(bt.latent_mask[i].sum())] for bt in c for i, k in enumerate(bt.keys)}
    for key, lat in raw.items():
        mean, std = torch.from_numpy(lat[:, :LATENT_C]), torch.from_numpy(lat[:, LATENT_C:])
        eps = (x_a[key] * 3.0 + 2.0 - mean) / std  # the drawn noise, recovered
        assert abs(float(eps.mean())) < 0.3 and 0.7 < float(eps.std()) < 1.3
        assert not torch.allclose(x_a[key], x_c[key])


def test_compute_latent_stats_matches_numpy_and_is_deterministic(tmp_path):
    run = simple_run(tmp_path, [5, 4])
    means = np.concatenate([s["latent.npy"][:, :LATENT_C].astype(np.float64)
                            for s in ShardDataset(str(run), members=("latent.npy",))])
    stats = compute_latent_stats(str(run), max_samples=100)
    assert np.allclose(stats.mean.numpy(), means.mean(0), atol=1e-4)
    assert np.allclose(stats.std.numpy(), means.std(0), atol=1e-4)
    again = LatentStats.from_dict(compute_latent_stats(str(run), max_samples=100).to_dict())
    assert torch.equal(again.mean, stats.mean) and torch.equal(again.std, stats.std)
    few = compute_latent_stats(str(run), max_samples=3)
    assert not torch.allclose(few.mean, stats.mean)


def test_batch_conditions_masks_and_absent_modalities(tmp_path):
    shards = [[make_sample("a-0", duration_s=2.0), make_sample("a-1", duration_s=2.0, video=False, voice=False,
                                                             caption=None)]]
    run = write_run(tmp_path, "train", shards)
    (b,) = list(data(run, shuffle_buffer=0))
    assert isinstance(b, Batch) and b.keys == ["a-0", "a-1"]
    assert b.has_video.tolist() == [True, False] and b.has_voice.tolist() == [True, False]
    assert b.has_caption.tolist() == [True, False] and b.captions == ["a sound", None]
    assert b.voice_ids.shape == b.latent_mask.shape and b.voice_ids[1].eq(0).all()
    assert b.voice_times[0, :5].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert b.sync_times.shape == b.sync_mask.shape and float(b.sync_times[0, 1]) == pytest.approx(0.06)
    assert b.start_s.tolist() == [1.5, 1.5] and b.duration_s.tolist() == [2.0, 2.0]
    cond = b.conditions()
    assert isinstance(cond, Conditions) and cond.present("video").tolist() == [True, False]
    caption = torch.randn(2, 3, 16)
    cmask = torch.tensor([[True, True, False], [False, False, False]])
    assert b.conditions(caption, cmask).present("caption").tolist() == [True, False]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_gives_the_same_subsequent_batches(tmp_path, num_workers):
    run = simple_run(tmp_path, [6, 5, 7])
    kw = {"resampled": True, "num_workers": num_workers, "seed": 3}
    full = list(itertools.islice(data(run, **kw), 8))
    first = data(run, **kw)
    it = iter(first)
    head = [next(it) for _ in range(3)]
    state = first.state_dict()
    del it
    resumed = data(run, **kw)
    resumed.load_state_dict(state)
    tail = list(itertools.islice(resumed, 5))
    assert state["batches"] == 3
    for x, y in zip(full, head + tail):
        assert x.keys == y.keys and torch.equal(x.x1, y.x1) and torch.equal(x.latent_mask, y.latent_mask)
    assert resumed.state_dict()["batches"] == 8


def test_new_order_per_epoch_and_two_ranks_see_each_clip_once(tmp_path):
    run = simple_run(tmp_path, [6, 6, 6])
    td = data(run)
    e0 = [k for b in td for k in b.keys]
    e1 = [k for b in td for k in b.keys]  # the finished pass moved to epoch 1
    assert sorted(e0) == sorted(e1) and e0 != e1
    td.set_epoch(0)
    assert [k for b in td for k in b.keys] == e0
    ranks = [[k for b in data(run, rank=r, world_size=2, num_workers=2) for k in b.keys] for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 9
    assert Counter(ranks[0] + ranks[1]) == Counter(e0)
