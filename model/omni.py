"""AudioGen-Omni = trainable caption encoder (T5) + MMDiT (which holds the lyrics encoder)."""
from __future__ import annotations

from dataclasses import replace

from torch import Tensor, nn

from model.config import MMDiTConfig
from model.inputs import Conditions
from model.mmdit import MMDiT, PreparedConditions
from model.text_encoder import T5TextEncoder, TextEncoderConfig


class AudioGenOmni(nn.Module):
    def __init__(self, network: MMDiT, text_encoder: T5TextEncoder):
        super().__init__()
        if text_encoder.dim != network.cfg.text_dim:
            raise ValueError(
                f"text encoder {text_encoder.cfg.name_or_path} is {text_encoder.dim}-d, "
                f"the network's text_dim is {network.cfg.text_dim}"
            )
        self.network = network
        self.text_encoder = text_encoder

    @classmethod
    def build(cls, network_cfg: MMDiTConfig, text_cfg: TextEncoderConfig) -> AudioGenOmni:
        return cls(MMDiT(network_cfg), T5TextEncoder(text_cfg))

    def with_captions(self, cond: Conditions, captions: list[str | None]) -> Conditions:
        """`cond` with caption states from the (trainable) text encoder; None means no caption."""
        if len(captions) != cond.batch_size:
            raise ValueError(f"{len(captions)} captions for a batch of {cond.batch_size}")
        hidden, mask, present = self.text_encoder(captions)
        return replace(cond, caption=hidden, caption_mask=mask, has_caption=present)

    def prepare(self, cond: Conditions) -> PreparedConditions:
        return self.network.prepare(cond)

    def velocity(self, x_t: Tensor, t: Tensor, prepared: PreparedConditions) -> Tensor:
        return self.network.velocity(x_t, t, prepared)

    def forward(self, x_t: Tensor, t: Tensor, cond: Conditions) -> Tensor:
        return self.network(x_t, t, cond)
