"""Euler sampling for inference: classifier-free guidance as ONE batch of 2B, optional bf16,
`torch.compile` of the velocity function (CUDA graphs on GPU).

Same maths as `model.flow.EulerSampler` (t from 0 to 1, `v_u + s (v_c − v_u)`), but the
conditional and unconditional branches run as one network call on the concatenated batch
(`[cond ; uncond]`), and conditions are prepared once per request batch, not per step.
Noise is drawn per sample from its own generator, so a request gives the same noise alone
or inside a batch.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from model.inputs import Conditions


def concat_conditions(parts: list[Conditions]) -> Conditions:
    """Batch-concatenate conditions of equal padded shapes (cond and its unconditional twin)."""
    out = {}
    for f in fields(Conditions):
        values = [getattr(p, f.name) for p in parts]
        if all(v is None for v in values):
            out[f.name] = None
        elif any(v is None for v in values):
            raise ValueError(f"cannot concatenate conditions: {f.name} is None in some parts only")
        else:
            out[f.name] = torch.cat(values, dim=0)
    return Conditions(**out)


def guided_conditions(cond: Conditions) -> Conditions:
    """[cond ; cond.unconditional()]: both CFG branches in one batch (the flags are explicit)."""
    flags = {f"has_{m}": cond.present(m) for m in ("video", "caption", "voice")}
    explicit = replace(cond, **flags)
    return concat_conditions([explicit, explicit.unconditional()])


@dataclass
class SamplerOptions:
    steps: int = 25
    cfg_scale: float | None = 4.5  # None: conditional branch only
    dtype: torch.dtype = torch.float32  # network compute dtype (bf16 autocast on GPU)
    compile: bool = False  # torch.compile the velocity function
    cuda_graphs: bool = False  # compile mode "reduce-overhead" (CUDA graphs; needs static shapes)


class GuidedEuler:
    """Euler + CFG over a model with `prepare(cond)` and `velocity(x, t, prepared)`."""

    def __init__(self, model, options: SamplerOptions):
        if options.steps < 1:
            raise ValueError(f"steps must be >= 1, got {options.steps}")
        self.model = model
        self.options = options
        self._velocity = model.velocity
        if options.compile:
            mode = "reduce-overhead" if options.cuda_graphs else "max-autotune-no-cudagraphs"
            self._velocity = torch.compile(model.velocity, mode=mode, dynamic=False)

    def initial_noise(self, latent_mask: Tensor, latent_dim: int, generators: list[torch.Generator]) -> Tensor:
        """x0 [B, T, C]: sample i from generators[i] over its own real frames, zero at padding."""
        B, T = latent_mask.shape
        x = torch.zeros(B, T, latent_dim)
        for i, g in enumerate(generators):
            n = int(latent_mask[i].sum())
            x[i, :n] = torch.randn(n, latent_dim, generator=g)
        return x.to(latent_mask.device)

    def _autocast(self, device: torch.device):
        if self.options.dtype == torch.float32:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=self.options.dtype)

    @torch.no_grad()
    def sample(self, cond: Conditions, x0: Tensor) -> Tensor:
        """Latents [B, T, C] (zero at padding) from noise x0 [B, T, C] under conditions `cond`."""
        o = self.options
        B = x0.shape[0]
        device = x0.device
        keep = cond.latent_mask[..., None].to(x0.dtype)
        guided = o.cfg_scale is not None
        with self._autocast(device):
            prepared = self.model.prepare(guided_conditions(cond) if guided else cond)
        times = torch.linspace(0.0, 1.0, o.steps + 1, device=device)
        x = x0 * keep
        for i in range(o.steps):
            t = times[i].expand(2 * B if guided else B)
            x_in = torch.cat([x, x], 0) if guided else x
            with self._autocast(device):
                v = self._velocity(x_in, t, prepared).float()
            if guided:
                v_cond, v_uncond = v[:B], v[B:]
                v = v_uncond + o.cfg_scale * (v_cond - v_uncond)
            x = x + (times[i + 1] - times[i]) * v
        return x * keep
