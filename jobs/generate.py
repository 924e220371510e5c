"""`agomni generate`: files from a checkpoint, one request or a CSV of them.

    from jobs.generate import generate_files
    r = generate_files("runs/train/ckpt.pt", video="clip.mp4", caption="rain", out_dir="out/")
    r.wav_path, r.mp4_path, r.json_path

Batch mode runs the requests through the pipeline's run machinery (plan, partitions, atomic
commits, resume, rejects, `agomni status`) with the `generate` model stage in a Ray actor pool:

    python -m jobs.generate CHECKPOINT --csv requests.csv --out RUN     # also as a Ray job
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from model.generation.errors import GenerationError

ENCODER_KINDS = ("clip", "sync", "latent")
# --vocoder-weights is accepted as another name of the latent codec's weights (the codec decodes to audio).
WEIGHT_ALIASES = {"clip": "clip", "sync": "sync", "synchformer": "sync", "latent": "latent", "vae": "latent",
                  "vocoder": "latent"}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class GenerateResult:
    wav_path: Path
    mp4_path: Path | None
    json_path: Path
    duration_s: float
    sample_rate: int
    metadata: dict = field(default_factory=dict)


def encoder_weights_from(yaml_path: str | Path | None = None, **paths: str | None) -> dict[str, str]:
    """Encoder weights by kind from a YAML mapping (kind: path) and/or keyword paths (which win)."""
    out: dict[str, str] = {}
    if yaml_path is not None:
        p = Path(yaml_path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise GenerationError("missing_file", f"{p}: encoder weights YAML not found") from None
        except yaml.YAMLError as exc:
            raise GenerationError("bad_weights", f"{p}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise GenerationError("bad_weights", f"{p}: expected a mapping kind → weights path "
                                                 f"({', '.join(ENCODER_KINDS)})")
        for k, v in data.items():
            if str(k) not in WEIGHT_ALIASES:
                raise GenerationError("bad_weights", f"{p}: unknown encoder kind {k!r}; known: "
                                                     f"{', '.join(sorted(WEIGHT_ALIASES))}")
            path = Path(str(v))
            out[WEIGHT_ALIASES[str(k)]] = str(path if path.is_absolute() else (p.parent / path))
    for k, v in paths.items():
        if v:
            out[WEIGHT_ALIASES[k]] = str(v)
    return out


def output_name(video, explicit: str | None = None) -> str:
    name = explicit or (Path(video).stem if video else "generated")
    return _UNSAFE_NAME.sub("_", name) or "generated"


def generate_files(checkpoint, *, video=None, caption=None, transcript=None, lyrics=None, language=None,
                   duration=None, seed: int = 0, steps: int = 25, cfg: float | None = 4.5, out_dir,
                   encoder_weights: dict | None = None, name: str | None = None, device: str = "cpu",
                   use_ema: bool = True, compile: bool = False, expect_network: str | None = None,
                   generator=None) -> GenerateResult:
    """Generate one clip and write `<name>.wav` (+ `<name>.mp4` with a video) + `<name>.json`
    into out_dir, all or nothing. `generator` reuses an already loaded `Generator`."""
    from model.generation import GenerationRequest, Generator
    from model.generation.output import write_outputs

    gen = generator or Generator.load(checkpoint, encoder_weights=encoder_weights, device=device, use_ema=use_ema,
                                      compile=compile, cuda_graphs=compile and str(device).startswith("cuda"),
                                      expect_network=expect_network)
    req = GenerationRequest(video=video, caption=caption, transcript=transcript, lyrics=lyrics, language=language,
                            duration=duration, seed=seed)
    res = gen.generate([req], steps=steps, cfg=cfg)[0]
    paths = write_outputs(Path(out_dir), output_name(video, name), res.wave, res.sample_rate, res.metadata,
                          Path(video) if video else None, res.duration_s)
    return GenerateResult(paths["wav"], paths.get("mp4"), paths["json"], res.duration_s, res.sample_rate,
                          res.metadata)


def batch_config(checkpoint, csv_path, *, steps: int = 25, cfg: float | None = 4.5,
                 encoder_weights: dict | None = None, partition_size: int = 16, actors: int = 1,
                 num_gpus: float = 0.0, num_cpus: float = 1.0, batch_seconds: float = 40.0,
                 device: str = "auto", use_ema: bool = True, ray_cpus: int | None = None, compile: bool = False,
                 expect_network: str | None = None):
    """The run config of a batch-generation run: the requests CSV → the generate stage."""
    from pipeline.config import parse_config

    csv_path = Path(csv_path).resolve()
    data = {
        "name": "generate",
        "partition_size": partition_size,
        "corpora": [{"adapter": "requests", "options": {"root": str(csv_path.parent), "csv": csv_path.name}}],
        "stages": [{
            "name": "generate",
            "options": {"checkpoint": str(Path(checkpoint).resolve()), "steps": steps, "cfg": cfg,
                        "encoder_weights": {k: str(Path(v).resolve()) for k, v in (encoder_weights or {}).items()},
                        "batch_seconds": batch_seconds, "device": device, "use_ema": use_ema,
                        "compile": compile, "expect_network": expect_network},
            "resources": {"actors": actors, "num_gpus": num_gpus, "num_cpus": num_cpus},
        }],
        "max_failure_rate": 1.0,  # bad requests are rejected with their reason, the others still run
    }
    if ray_cpus is not None:
        data["ray"] = {"num_cpus": ray_cpus}
    return parse_config(data, source=str(csv_path))


def run_batch(checkpoint, csv_path, out, *, address: str | None = None, new_run: bool = False,
              retry_failed: bool = False, progress=None, **options):
    from pipeline.runner import run

    cfg = batch_config(checkpoint, csv_path, **options)
    return run(cfg, out, address=address, retry_failed=retry_failed, new_run=new_run, progress=progress)


if __name__ == "__main__":  # `ray job submit -- python -m jobs.generate CHECKPOINT --csv R.csv --out RUN`
    from jobs.cli import app

    sys.exit(app(["generate", *sys.argv[1:]], standalone_mode=True))
