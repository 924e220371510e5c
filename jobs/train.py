"""Training entry point: the same loop for one process, `accelerate launch` and a Ray cluster.

    python -m jobs.train datasets_cfg/train/demo.yaml [--set steps=100] [--resume]
    accelerate launch --multi_gpu --num_processes 2 -m jobs.train CONFIG   # DDP, one node (CPU-only: gloo)
    python -m jobs.train CONFIG --ray-workers 4 [--ray-address auto] [--ray-gpus]  # Ray Train TorchTrainer
    agomni train CONFIG ...                                                  # the CLI calls main()
"""
from __future__ import annotations

import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # reproducible MKL GEMMs (see model/training/trainer.py)

import argparse
import sys
from pathlib import Path

from model.training.config import TrainConfig, load_train_config
from model.training.trainer import TrainResult, train_loop

EXIT_CONFIG = 2


def train(cfg: TrainConfig, *, resume: bool = False) -> TrainResult:
    """Run the trainer in this process (rank and world size from the launcher's environment)."""
    return train_loop(cfg, resume=resume)


def _ray_worker(config: dict) -> None:
    """Ray Train's per-worker function: Ray has set RANK/WORLD_SIZE/MASTER_* and the process group."""
    cfg = TrainConfig.model_validate(config["cfg"])
    train_loop(cfg, resume=config["resume"])


def train_on_ray(cfg: TrainConfig, workers: int, *, resume: bool = False, address: str | None = None,
                 use_gpu: bool = False, cpus_per_worker: float = 1.0) -> Path:
    """Run `train_loop` on `workers` Ray Train workers (TorchTrainer, gloo on CPU / NCCL on GPU)."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    out = Path(cfg.out).expanduser().resolve()
    # workers may start in another directory: hand them absolute paths
    data = cfg.model_dump(mode="json")
    data["out"] = str(out)
    for s in data["data"]["sources"]:
        s["run"] = str(Path(s["run"]).expanduser().resolve())
    if cfg.text_encoder.name_or_path and Path(cfg.text_encoder.name_or_path).exists():
        data["text_encoder"]["name_or_path"] = str(Path(cfg.text_encoder.name_or_path).resolve())
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=True,
                 runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"cfg": data, "resume": resume},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker}),
        run_config=RunConfig(name="train", storage_path=str(out / "ray")),
    )
    trainer.fit()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jobs.train", description="Train AudioGen-Omni on preprocessed shards.")
    p.add_argument("config", type=Path, help="training config YAML (datasets_cfg/train/*.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set steps=100 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the newest valid checkpoint in OUT")
    p.add_argument("--out", type=Path, default=None, help="output directory (overrides the config's `out`)")
    p.add_argument("--ray-workers", type=int, default=0, help="run on N Ray Train workers instead")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local one)")
    p.add_argument("--ray-gpus", action="store_true", help="one GPU per Ray worker")
    return p


def main(argv: list[str] | None = None) -> int:
    from pipeline.errors import ConfigError

    args = build_parser().parse_args(argv)
    overrides = list(args.overrides) + ([f"out={args.out}"] if args.out is not None else [])
    try:
        cfg = load_train_config(args.config, overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.ray_workers:
        out = train_on_ray(cfg, args.ray_workers, resume=args.resume, address=args.ray_address,
                           use_gpu=args.ray_gpus)
        print(f"trained on {args.ray_workers} Ray workers: {out}")
        return 0
    from model.training.checkpoint import CheckpointError
    from model.training.data import FeatureMismatchError

    try:
        result = train(cfg, resume=args.resume)
    except (ConfigError, CheckpointError, FeatureMismatchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if result.out_dir is not None and _is_main():
        print(f"steps: {result.steps}  loss first/last (mean of 20): "
              f"{result.mean_loss(True):.4f} / {result.mean_loss(False):.4f}  "
              f"samples/s: {result.samples_per_s:.1f}  data wait: {result.data_wait_fraction:.1%}")
        print(f"checkpoint: {result.last_checkpoint}")
    return 0


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


if __name__ == "__main__":
    sys.exit(main())
