"""Caption encoder: a T5 / Flan-T5 encoder loaded through transformers and trained with the model.

Loaded by hub id (e.g. `google/flan-t5-base`) or a local directory holding `save_pretrained`
output (model and tokenizer). Nothing is frozen: its parameters take part in the loss.
"""
from __future__ import annotations

from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn


class TextEncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name_or_path: str = Field("google/flan-t5-base", description="hub id or local directory")
    revision: str | None = Field(None, description="hub revision (commit) to pin")
    max_length: int = Field(128, ge=1, description="caption tokens kept (longer captions are truncated)")
    local_files_only: bool = Field(False, description="never reach the hub (offline machines)")


class T5TextEncoder(nn.Module):
    """Captions (str, or None for 'no caption') -> hidden states [B, L, D], mask [B, L], present [B]."""

    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        from transformers import AutoTokenizer, T5EncoderModel

        self.cfg = cfg
        local = Path(cfg.name_or_path)
        if local.exists() and not (local / "config.json").is_file():
            raise FileNotFoundError(f"{local}: not a saved transformers model (no config.json)")
        kwargs = {"revision": cfg.revision, "local_files_only": cfg.local_files_only}
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.name_or_path, **kwargs)
        self.encoder = T5EncoderModel.from_pretrained(cfg.name_or_path, **kwargs)
        self.encoder.train()
        self.encoder.requires_grad_(True)

    @property
    def dim(self) -> int:
        return self.encoder.config.d_model

    def forward(self, captions: list[str | None]) -> tuple[Tensor, Tensor, Tensor]:
        present = torch.tensor([c is not None and c.strip() != "" for c in captions], dtype=torch.bool)
        texts = [c if c is not None else "" for c in captions]
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.cfg.max_length, return_tensors="pt"
        )
        device = next(self.encoder.parameters()).device
        ids, mask = tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # [B, L, D]
        mask = mask.bool()
        present = present.to(device) & mask.any(1)
        return hidden, mask, present
