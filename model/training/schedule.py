"""InverseLR with exponential warm-up (the schedule of stable-audio-tools / k-diffusion, used by the paper).

    lr(s) = base_lr · (1 − warmup^(s+1)) · (1 + s / inv_gamma)^(−power),   floored at min_lr

`warmup` close to 1 ramps slowly (0.99 reaches 63 % of the base lr after 100 steps).
"""
from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LRScheduler


def inverse_lr_factor(step: int, inv_gamma: float, power: float, warmup: float) -> float:
    """Multiplier of the base lr at optimiser step `step` (0-based)."""
    ramp = 1.0 - warmup ** (step + 1)
    return ramp * (1.0 + step / inv_gamma) ** (-power)


class InverseLR(LRScheduler):
    def __init__(self, optimizer: torch.optim.Optimizer, inv_gamma: float = 1e6, power: float = 0.5,
                 warmup: float = 0.99, min_lr: float = 0.0, last_epoch: int = -1):
        if not 0 <= warmup < 1:
            raise ValueError(f"warmup must be in [0, 1), got {warmup}")
        self.inv_gamma, self.power, self.warmup, self.min_lr = inv_gamma, power, warmup, min_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = inverse_lr_factor(max(self.last_epoch, 0), self.inv_gamma, self.power, self.warmup)
        return [max(self.min_lr, base * factor) for base in self.base_lrs]
