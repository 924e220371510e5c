"""Conditional flow matching on the linear path, and the Euler sampler with CFG (paper §3.4, §4).

x_t = (1 - t) x0 + t x1,  x0 ~ N(0, I) noise, x1 the data latent; target velocity x1 - x0.
Sampling integrates dx/dt = v(x, t) from t = 0 (noise) to t = 1 (data).
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from model.config import FlowConfig
from model.inputs import MODALITIES, Conditions


class VelocityModel(Protocol):
    """What flow matching needs from a network (MMDiT and AudioGenOmni provide it)."""

    def prepare(self, cond: Conditions): ...

    def velocity(self, x_t: Tensor, t: Tensor, prepared) -> Tensor: ...

    def __call__(self, x_t: Tensor, t: Tensor, cond: Conditions) -> Tensor: ...


def masked_mse(pred: Tensor, target: Tensor, latent_mask: Tensor) -> Tensor:
    """Mean squared error over real latent frames only (padding contributes nothing)."""
    # pred, target: [B, T, C]; latent_mask: [B, T]. Selection (not multiplication) keeps NaN/inf
    # in padded frames out of the loss and its gradient.
    keep = latent_mask[..., None]
    err = torch.where(keep, pred - target, torch.zeros((), dtype=pred.dtype, device=pred.device)).float()
    return err.pow(2).sum() / (keep.sum() * pred.shape[-1])


class FlowMatching:
    def __init__(self, cfg: FlowConfig | None = None):
        self.cfg = cfg or FlowConfig()

    # ---- training -----------------------------------------------------------------------

    def sample_timesteps(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """t in (0, 1): uniform, or logit-normal (sigmoid of a normal) which favours mid-path times."""
        if self.cfg.timestep_sampling == "uniform":
            return torch.rand(n, generator=generator, device=device)
        z = torch.randn(n, generator=generator, device=device)
        return torch.sigmoid(self.cfg.logit_normal_mean + self.cfg.logit_normal_std * z)

    def cfg_dropout(self, cond: Conditions, generator: torch.Generator | None = None) -> Conditions:
        """Drop all modalities of a sample with probability cfg_drop_all; otherwise drop each
        modality independently with probability cfg_dropout."""
        dropped = self.draw_modality_drops(cond.batch_size, generator).to(cond.latent_mask.device)
        for j, modality in enumerate(MODALITIES):
            cond = cond.drop([modality], dropped[:, j])
        return cond

    def draw_modality_drops(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """[n, len(MODALITIES)] bool: which modalities CFG dropout removes from each of n samples.

        A sample loses everything with probability cfg_drop_all, otherwise each modality
        independently with probability cfg_dropout. Fully unconditional share:
        cfg_drop_all + (1 − cfg_drop_all) · cfg_dropout³ (10.09% by default).
        """
        drop_all = torch.rand(n, 1, generator=generator) < self.cfg.cfg_drop_all
        return (torch.rand(n, len(MODALITIES), generator=generator) < self.cfg.cfg_dropout) | drop_all

    def interpolate(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        t = t[:, None, None].to(x1.dtype)
        return (1 - t) * x0 + t * x1

    def loss(
        self,
        model: VelocityModel,
        x1: Tensor,
        cond: Conditions,
        generator: torch.Generator | None = None,
        t: Tensor | None = None,
        x0: Tensor | None = None,
        dropout: bool = True,
    ) -> Tensor:
        """Flow-matching loss on real latent frames. x1: [B, T, C] data latents (zero at padding)."""
        B = x1.shape[0]
        if t is None:
            t = self.sample_timesteps(B, generator).to(x1.device)
        if x0 is None:
            x0 = torch.randn(x1.shape, generator=generator).to(x1.device, x1.dtype)
        if dropout:
            cond = self.cfg_dropout(cond, generator)
        x_t = self.interpolate(x0, x1, t)
        pred = model(x_t, t, cond)
        return masked_mse(pred, x1 - x0, cond.latent_mask)


class EulerSampler:
    """Euler integration with classifier-free guidance over whichever modalities `cond` carries.

    The unconditional branch drops every modality (video, caption, voice); start time and
    duration stay, since they define the clip. `cfg_scale=None` runs the conditional branch only.
    """

    def __init__(self, cfg: FlowConfig | None = None):
        self.cfg = cfg or FlowConfig()

    def guided_velocity(self, model: VelocityModel, x: Tensor, t: Tensor, prep_cond, prep_uncond, scale) -> Tensor:
        v_cond = model.velocity(x, t, prep_cond)
        if scale is None:
            return v_cond
        v_uncond = model.velocity(x, t, prep_uncond)
        return v_uncond + scale * (v_cond - v_uncond)

    @torch.no_grad()
    def sample(
        self,
        model: VelocityModel,
        cond: Conditions,
        latent_dim: int,
        generator: torch.Generator | None = None,
        num_steps: int | None = None,
        cfg_scale: float | None | str = "default",
        dtype: torch.dtype = torch.float32,
        t_start: float | None = None,
    ) -> Tensor:
        """Latents [B, T, C] (zero at padded frames) for the clips described by `cond`.

        Euler steps on the uniform grid t_start = t_0 < … < t_N = 1 (t_start: FlowConfig.t_start
        unless given), starting from pure noise at t_start.
        """
        steps = self.cfg.num_steps if num_steps is None else num_steps
        if steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {steps}")
        start = self.cfg.t_start if t_start is None else t_start
        if not 0 <= start < 1:
            raise ValueError(f"t_start must be in [0, 1), got {start}")
        scale = self.cfg.cfg_scale if cfg_scale == "default" else cfg_scale
        B, T = cond.latent_mask.shape
        device = cond.latent_mask.device
        keep = cond.latent_mask[..., None]
        zero = torch.zeros((), dtype=dtype, device=device)
        x = torch.where(keep, torch.randn((B, T, latent_dim), generator=generator, dtype=dtype).to(device), zero)
        prep_cond = model.prepare(cond)
        prep_uncond = None if scale is None else model.prepare(cond.unconditional())
        times = self.schedule(steps, start, device)
        for i in range(steps):
            t = times[i].expand(B)
            v = self.guided_velocity(model, x, t, prep_cond, prep_uncond, scale)
            x = x + (times[i + 1] - times[i]) * v.to(dtype)
        return torch.where(keep, x, zero)

    @staticmethod
    def schedule(steps: int, t_start: float = 0.0, device=None) -> Tensor:
        """[steps + 1] flow times of the Euler grid, from t_start to 1."""
        return torch.linspace(t_start, 1.0, steps + 1, device=device)
