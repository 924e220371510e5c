"""What the captioner is asked, as data (AudioGen-Omni §3.1: sound sources, acoustic
qualities, mood and how it changes), and the clip it is asked about.

A change of wording is a change of the captions: bump `PROMPT_VERSION`, which every
captioned record carries in its `caption_settings`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PROMPT_VERSION = "audio-caption-v1"

SYSTEM_PROMPT = (
    "You are an expert audio annotator. You describe what can be heard in a recording "
    "precisely and objectively, in plain English prose."
)

USER_PROMPT_AUDIO = (
    "Describe this audio clip in one short paragraph (at most four sentences). Name the sound "
    "sources and what they are doing, the acoustic qualities (loudness, pitch, timbre, distance, "
    "room or outdoor ambience), the mood, and how the sound and mood change over the clip. "
    "If there is speech or singing, say who is speaking or singing and in what manner, but do not "
    "transcribe the words. Describe only what is audible; do not mention the recording itself."
)

USER_PROMPT_AUDIO_VIDEO = (
    "The images are frames taken in order from the video that this audio clip belongs to. "
    + USER_PROMPT_AUDIO
    + " Use the frames only to identify the sound sources; do not describe what is only visible."
)

# Template fallback (no captioning model): captions built from corpus metadata.
TEMPLATE_LABEL = "The sound of {label}."
TEMPLATE_LABELS = "The sounds of {labels}."
TEMPLATE_VERSION = "template-v1"


@dataclass
class CaptionRequest:
    """One clip to caption: its 16 kHz mono audio (None when the clip has none) and the
    video frames picked for the captioner (uint8 RGB, [T, H, W, 3]; empty for audio-only)."""

    key: str
    audio: np.ndarray | None
    rate: int
    frames: list[np.ndarray] = field(default_factory=list)

    @property
    def has_frames(self) -> bool:
        return len(self.frames) > 0

    def user_prompt(self) -> str:
        return USER_PROMPT_AUDIO_VIDEO if self.has_frames else USER_PROMPT_AUDIO


def chat_messages(request: CaptionRequest) -> list[dict]:
    """Chat messages in the transformers multimodal format (content parts with a `type`);
    media parts are placeholders, the media itself travels next to the text."""
    content: list[dict] = []
    if request.audio is not None:
        content.append({"type": "audio"})
    content.extend({"type": "image"} for _ in request.frames)
    content.append({"type": "text", "text": request.user_prompt()})
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": content},
    ]
