"""Qwen2.5-Omni captioner through transformers: the thinker only, text out.

Loading: `model` is a hub id (default "Qwen/Qwen2.5-Omni-7B") or a local directory in
the hub layout. A full Qwen2.5-Omni checkpoint (`model_type: qwen2_5_omni`: thinker +
talker + token2wav) loads only its thinker (transformers strips the `thinker.` weight
prefix; talker weights are never materialised); a thinker-only checkpoint
(`model_type: qwen2_5_omni_thinker`) loads as is.

Inputs are built from the checkpoint's own parts — tokenizer (with its chat template),
Whisper feature extractor and Qwen2-VL image processor from `preprocessor_config.json`
— exactly as `Qwen2_5OmniProcessor` does for audio and images (one placeholder token per
audio/image embedding), without its video processor, which needs torchvision. Video clips
contribute frames as a sequence of images.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .prompts import CaptionRequest, chat_messages

log = logging.getLogger(__name__)

OMNI_MODEL_TYPE = "qwen2_5_omni"
THINKER_MODEL_TYPE = "qwen2_5_omni_thinker"
AUDIO_RATE = 16000
PROCESSOR_CHAT_TEMPLATE_FILE = "chat_template.json"
LOCAL_REVISION_HASH_CHARS = 12
DTYPES = ("auto", "float32", "bfloat16", "float16")


def audio_embedding_count(feature_frames):
    """Audio tokens the thinker's audio tower makes from `feature_frames` mel frames
    (two stride-2 reductions, as in transformers' Qwen2.5-Omni processor)."""
    after_conv = (feature_frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1


def expand_placeholders(text: str, token: str, counts: list[int], start: int) -> tuple[str, int]:
    """Replace each `token` in `text` by counts[i] copies of it (i from `start`); returns the
    text and the next index."""
    parts = text.split(token)
    out = [parts[0]]
    i = start
    for part in parts[1:]:
        if i >= len(counts):
            raise ValueError(f"more {token} placeholders in the prompt than media items ({len(counts)})")
        out.append(token * int(counts[i]))
        out.append(part)
        i += 1
    return "".join(out), i


class QwenOmniCaptioner:
    """Loads once (`load`), then `caption_batch` turns CaptionRequests into raw caption text."""

    def __init__(self, model: str, revision: str | None = None, device: str = "auto", dtype: str = "auto",
                 max_new_tokens: int = 160, do_sample: bool = False, temperature: float = 0.7,
                 top_p: float = 0.9, repetition_penalty: float = 1.05, local_files_only: bool = False,
                 seed: int = 0):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.model_name = model
        self.revision = revision
        self.device = device
        self.dtype = dtype
        self.max_new_tokens = max_new_tokens
        self.do_sample = do_sample
        self.temperature = temperature
        self.top_p = top_p
        self.repetition_penalty = repetition_penalty
        self.local_files_only = local_files_only
        self.seed = seed
        self.model = None
        self._resolved_revision: str | None = None

    # -- loading ------------------------------------------------------------------------------
    def _hub_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"local_files_only": self.local_files_only}
        if self.revision:
            kw["revision"] = self.revision
        return kw

    def load(self) -> None:
        import torch
        from transformers import (
            AutoConfig,
            AutoFeatureExtractor,
            AutoImageProcessor,
            AutoTokenizer,
            Qwen2_5OmniThinkerForConditionalGeneration,
        )

        kw = self._hub_kwargs()
        config = AutoConfig.from_pretrained(self.model_name, **kw)
        if config.model_type == OMNI_MODEL_TYPE:
            thinker_config = config.thinker_config
        elif config.model_type == THINKER_MODEL_TYPE:
            thinker_config = config
        else:
            raise ValueError(f"{self.model_name}: config.json model_type is {config.model_type!r}; "
                             f"expected {OMNI_MODEL_TYPE!r} or {THINKER_MODEL_TYPE!r}")
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = self.dtype if self.dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
        model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(
            self.model_name, config=thinker_config, dtype=getattr(torch, dtype), **kw)
        self.model = model.to(device).eval()
        self._device = device
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_name, **kw)
        self.feature_extractor = AutoFeatureExtractor.from_pretrained(self.model_name, **kw)
        self.image_processor = AutoImageProcessor.from_pretrained(self.model_name, **kw)
        self.chat_template = self.tokenizer.chat_template or self._processor_chat_template(kw)
        if not self.chat_template:
            raise ValueError(f"{self.model_name}: no chat template (tokenizer or {PROCESSOR_CHAT_TEMPLATE_FILE})")
        self.audio_token = self._special_token(thinker_config.audio_token_index)
        self.image_token = self._special_token(thinker_config.image_token_index)
        self._resolved_revision = self._revision_of(config)

    def _special_token(self, token_id: int) -> str:
        token = self.tokenizer.convert_ids_to_tokens(int(token_id))
        if token is None:
            raise ValueError(f"{self.model_name}: token id {token_id} from config.json is not in the tokenizer")
        return token

    def _processor_chat_template(self, kw: dict) -> str | None:
        from transformers.utils import cached_file

        path = cached_file(self.model_name, PROCESSOR_CHAT_TEMPLATE_FILE,
                           _raise_exceptions_for_missing_entries=False, **kw)
        if not path:
            return None
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))["chat_template"]
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{path}: not a processor chat template ({exc})") from None

    def _revision_of(self, config) -> str:
        commit = getattr(config, "_commit_hash", None)
        if commit:
            return commit
        local = Path(self.model_name)
        if local.is_dir():
            digest = hashlib.sha256((local / "config.json").read_bytes()).hexdigest()
            return self.revision or f"local-{digest[:LOCAL_REVISION_HASH_CHARS]}"
        return self.revision or "main"

    # -- identity -----------------------------------------------------------------------------
    def model_id(self) -> str:
        name = Path(self.model_name).name if Path(self.model_name).is_dir() else self.model_name
        return f"{name}@{self._resolved_revision or self.revision or 'main'}"

    def settings(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
                "temperature": self.temperature if self.do_sample else None,
                "top_p": self.top_p if self.do_sample else None,
                "repetition_penalty": self.repetition_penalty, "seed": self.seed if self.do_sample else None}

    # -- inference ----------------------------------------------------------------------------
    def build_inputs(self, requests: list[CaptionRequest]) -> dict:
        """Token ids with expanded media placeholders plus the audio features and image patches."""
        texts = [self.tokenizer.apply_chat_template(chat_messages(r), chat_template=self.chat_template,
                                                    add_generation_prompt=True, tokenize=False)
                 for r in requests]
        inputs: dict[str, Any] = {}
        audios = [r.audio.astype(np.float32) for r in requests if r.audio is not None]
        audio_counts: list[int] = []
        if audios:
            feats = self.feature_extractor(audios, sampling_rate=AUDIO_RATE, return_attention_mask=True,
                                           padding="max_length", return_tensors="pt")
            mask = feats["attention_mask"]
            audio_counts = [int(n) for n in audio_embedding_count(mask.sum(-1))]
            inputs["input_features"] = feats["input_features"]
            inputs["feature_attention_mask"] = mask
        images = [f for r in requests for f in r.frames]
        image_counts: list[int] = []
        if images:
            pix = self.image_processor(images=images, return_tensors="pt")
            merge = self.image_processor.merge_size
            image_counts = [int(g.prod()) // merge**2 for g in pix["image_grid_thw"]]
            inputs["pixel_values"] = pix["pixel_values"]
            inputs["image_grid_thw"] = pix["image_grid_thw"]
        a_i = i_i = 0
        expanded = []
        for text in texts:
            text, a_i = expand_placeholders(text, self.audio_token, audio_counts, a_i)
            text, i_i = expand_placeholders(text, self.image_token, image_counts, i_i)
            expanded.append(text)
        if a_i != len(audio_counts) or i_i != len(image_counts):
            raise ValueError("the chat template dropped media placeholders: "
                             f"{a_i}/{len(audio_counts)} audio, {i_i}/{len(image_counts)} images placed")
        enc = self.tokenizer(expanded, padding=True, padding_side="left", return_tensors="pt")
        inputs["input_ids"] = enc["input_ids"]
        inputs["attention_mask"] = enc["attention_mask"]
        return inputs

    def caption_batch(self, requests: list[CaptionRequest]) -> list[str]:
        import torch

        if self.model is None:
            raise RuntimeError("QwenOmniCaptioner.load() was not called")
        inputs = {k: v.to(self._device) for k, v in self.build_inputs(requests).items()}
        for k in ("input_features", "pixel_values"):
            if k in inputs:
                inputs[k] = inputs[k].to(self.model.dtype)
        gen: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
                               "repetition_penalty": self.repetition_penalty,
                               "pad_token_id": self.tokenizer.pad_token_id}
        if self.do_sample:
            gen.update(temperature=self.temperature, top_p=self.top_p)
            torch.manual_seed(self.seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **gen)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
