"""The stage runner end to end on local Ray, with small test stages over WAV tones."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.config import parse_config
from pipeline.errors import RunAborted, RunRefused
from pipeline.layout import RunLayout
from pipeline.runner import run
from pipeline.shards import ShardChecksumError, shard_urls, stream_shards
from tests.runner_fixtures import TEST_STAGES, make_tone_corpus, tone_config

pytestmark = [pytest.mark.ray]
PROBE = f"{TEST_STAGES}:ProbeStage"
MODEL = f"{TEST_STAGES}:LoudnessModelStage"


def shard_bytes(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted((run_dir / "shards").rglob("*.tar"))}


def all_markers(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run_dir / "stages").rglob("part-*.done.json"))]


@pytest.fixture
def corpus(tmp_path):
    return make_tone_corpus(tmp_path / "corpus", n=10, missing=(2,), empty=(5,))


def test_run_end_to_end_counts_rejects_and_shards(ray_local, corpus, tmp_path):
    out = tmp_path / "run"
    res = run(parse_config(tone_config(corpus)), out)
    for m in all_markers(out):  # every row ends in exactly one terminal state
        assert m["in"] == m["ok"] + m["filtered"] + m["failed"], m
    probe = res.stats["stages"][PROBE]
    assert (probe["in"], probe["ok"], probe["filtered"], probe["failed"]) == (10, 8, 1, 1)
    assert probe["rejects_by_reason"] == {"failed:probe:missing_file": 1, "filtered:too_small": 1}
    rej = pq.read_table(RunLayout(out).rejects(PROBE, 0)).to_pylist()
    assert rej[0]["status"] == "failed:probe:missing_file" and "tone_002.wav" in rej[0]["message"]
    index = json.loads((out / "shards/train/index.json").read_text())
    assert index["nsamples"] == 6 and [s["nsamples"] for s in index["shards"]] == [2, 2, 2]
    samples = list(stream_shards(out, "train", verify=True))
    assert len(samples) == 6 and len({s["__key__"] for s in samples}) == 6
    s0 = samples[0]
    assert s0["json"]["caption"].startswith("tone number") and s0["flac"][1] == 44100
    assert "." not in s0["__key__"]
    assert json.loads((out / "stats.json").read_text())["stages"][MODEL]["ok"] == 8


def test_rerun_skips_committed_work_and_is_byte_identical(ray_local, corpus, tmp_path):
    cfg = parse_config(tone_config(corpus))
    a, b = tmp_path / "a", tmp_path / "b"
    run(cfg, a)
    first = shard_bytes(a)
    res = run(cfg, a)
    assert res.skipped_partitions == 2 * 4 and shard_bytes(a) == first
    run(cfg, b)  # a second, independent run gives the same bytes
    assert shard_bytes(b) == first


def test_changed_config_is_refused_naming_fields_then_new_run_keeps_old(ray_local, corpus, tmp_path):
    out = tmp_path / "run"
    run(parse_config(tone_config(corpus)), out)
    changed = parse_config(tone_config(corpus, partition_size=4))
    with pytest.raises(RunRefused, match="partition_size"):
        run(changed, out)
    changed2 = parse_config(tone_config(corpus))
    changed2.stages[0].options["min_bytes"] = 5
    with pytest.raises(RunRefused, match=r"options\.min_bytes"):
        run(changed2, out)
    (corpus / "clips.csv").write_text((corpus / "clips.csv").read_text() + "media/tone_009.wav,audio,train,x\n")
    with pytest.raises(RunRefused, match="input metadata changed for corpora: local"):
        run(parse_config(tone_config(corpus)), out)
    run(changed, out, new_run=True)
    assert (out / "previous/000/plan.json").exists()
    assert json.loads((out / "plan.json").read_text())["partition_size"] == 4


def test_retry_failed_redoes_only_failed_rows(ray_local, corpus, tmp_path):
    out = tmp_path / "run"
    cfg = parse_config(tone_config(corpus))
    run(cfg, out)
    layout = RunLayout(out)
    before = {p: json.loads(layout.marker(PROBE, p).read_text()) for p in range(4)}
    (corpus / "media/tone_002.wav").write_bytes((corpus / "media/tone_001.wav").read_bytes())
    res = run(cfg, out, retry_failed=True)
    after = {p: json.loads(layout.marker(PROBE, p).read_text()) for p in range(4)}
    assert after[0]["retried_failed"] and after[0]["counters"] == {"files_read": 1}  # only the failed row
    assert after[0]["ok"] == 3 and after[0]["in"] == 3
    assert all(after[p] == before[p] for p in (1, 2, 3))  # other partitions untouched
    assert after[1]["reasons"] == {"filtered:too_small": 1}  # filtered rows stay filtered
    assert res.stats["stages"][PROBE]["failed"] == 0
    keys = [k for s in res.shard_markers for k in [s["nsamples"]]]
    assert sum(keys) == 9
    assert res.stats["stages"][MODEL]["ok"] == 9


def test_failure_rate_over_threshold_aborts_and_keeps_commits(ray_local, tmp_path):
    corpus = make_tone_corpus(tmp_path / "c", n=9, missing=(0, 1, 3, 4, 6, 7))
    cfg = parse_config(tone_config(corpus, max_failure_rate=0.3, min_rows_before_abort=3, model_stage=False))
    with pytest.raises(RunAborted, match=r"failed:probe:missing_file"):
        run(cfg, tmp_path / "run")
    assert list((tmp_path / "run/stages").rglob("part-00000.done.json"))


def test_model_stage_is_an_actor_pool_with_one_load_per_actor(ray_local, corpus, tmp_path):
    pid_file = tmp_path / "setups.txt"
    cfg = tone_config(corpus)
    cfg["stages"][1]["options"]["pid_file"] = str(pid_file)
    cfg["stages"][1]["resources"]["actors"] = 1
    run(parse_config(cfg), tmp_path / "run")
    assert len(pid_file.read_text().split()) == 1  # 4 partitions, one model load


def test_out_of_memory_in_an_actor_halves_the_batch(ray_local, corpus, tmp_path):
    cfg = tone_config(corpus)
    cfg["stages"][1]["options"].update(oom_above_items=1, batch_seconds=100)
    res = run(parse_config(cfg), tmp_path / "run")
    st = res.stats["stages"][MODEL]
    assert st["ok"] == 8 and st["failed"] == 0 and st["counters"]["oom_halvings"] >= 1
    assert st["counters"]["batches"] == 8  # the halved size sticks: one clip per batch from then on


def test_tampered_shard_is_caught_by_checksum(ray_local, corpus, tmp_path):
    out = tmp_path / "run"
    run(parse_config(tone_config(corpus, model_stage=False)), out)
    tar = Path(shard_urls(out, "train")[0])
    data = bytearray(tar.read_bytes())
    data[600] ^= 0xFF
    tar.write_bytes(bytes(data))
    with pytest.raises(ShardChecksumError, match=tar.name):
        shard_urls(out, "train", verify=True)


def test_stage_asking_for_gpus_the_cluster_lacks_fails_fast(ray_local, corpus, tmp_path):
    from pipeline.errors import ConfigError

    cfg = tone_config(corpus)
    cfg["stages"][1]["resources"]["num_gpus"] = 1
    with pytest.raises(ConfigError, match=r"stages\[1\].*1.0 GPU per actor but the Ray cluster has 0"):
        run(parse_config(cfg), tmp_path / "run")
