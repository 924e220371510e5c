"""Exponential moving average of the trainable parameters (what generation loads by default)."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class EMA:
    """shadow ← decay · shadow + (1 − decay) · param, in fp32, after every optimiser step.

    Before `start_step` the shadow copies the weights. Keys are the module's parameter names
    (tied parameters once), so `state_dict()` is a flat {name: tensor} dict for safetensors.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, start_step: int = 0):
        if not 0 <= decay <= 1:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay, self.start_step = decay, start_step
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        self.shadow: dict[str, Tensor] = {n: params[n].detach().float().clone() for n in self.names}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        params = dict(model.named_parameters())
        live = [params[n].detach().float() for n in self.names]
        shadow = [self.shadow[n] for n in self.names]
        if step < self.start_step:
            torch._foreach_copy_(shadow, live)
        else:
            torch._foreach_lerp_(shadow, live, 1.0 - self.decay)

    def state_dict(self) -> dict[str, Tensor]:
        return {n: t.contiguous() for n, t in self.shadow.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing = sorted(set(self.names) - set(state))
        extra = sorted(set(state) - set(self.names))
        if missing or extra:
            raise KeyError(f"EMA state does not match the model: missing {missing[:5]}, unexpected {extra[:5]}")
        for n in self.names:
            self.shadow[n].copy_(state[n].float())

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for n in self.names:
            params[n].copy_(self.shadow[n].to(params[n].dtype))
