"""Captioner that talks to an OpenAI-compatible chat completions server (e.g. vLLM serving
Qwen2.5-Omni: `vllm serve Qwen/Qwen2.5-Omni-7B`), for captioning at scale.

Each clip is one `POST {base_url}/chat/completions` whose user message carries the audio
as an `input_audio` part (base64 WAV, 16 kHz mono PCM16) and the picked video frames as
`image_url` parts (base64 JPEG data URLs), then the prompt text. Requests of a batch run
concurrently. Errors are typed per clip: timeouts, connection errors, HTTP 429 and 5xx
are `TransientError` (retried by the stage), other HTTP errors and unreadable replies
`PermanentError`.
"""
from __future__ import annotations

import base64
import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests
import soundfile as sf

from ..errors import PermanentError, TransientError
from ..media.frames import encode_frame
from .prompts import SYSTEM_PROMPT, CaptionRequest

CHAT_COMPLETIONS_PATH = "/chat/completions"
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR_MIN = 500
ERROR_BODY_CHARS = 300


def wav_base64(samples: np.ndarray, rate: int) -> str:
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def jpeg_data_url(frame: np.ndarray) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(encode_frame(frame)).decode("ascii")


class OpenAICompatibleCaptioner:
    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = "OPENAI_API_KEY",
                 timeout_s: float = 120.0, connect_timeout_s: float = 10.0, max_new_tokens: int = 160,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int = 0, max_concurrency: int = 8,
                 revision: str | None = None):
        self.url = base_url.rstrip("/") + CHAT_COMPLETIONS_PATH
        self.model_name = model
        self.revision = revision
        self.api_key_env = api_key_env
        self.timeout = (connect_timeout_s, timeout_s)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.max_concurrency = max_concurrency
        self._session = requests.Session()

    def load(self) -> None:
        """Nothing to load; the key is read now so that a missing variable shows at setup."""
        self._headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if key:
                self._headers["Authorization"] = f"Bearer {key}"

    def model_id(self) -> str:
        return f"{self.model_name}@{self.revision or 'served'}"

    def settings(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "seed": self.seed, "server": self.url}

    def request_body(self, request: CaptionRequest) -> dict:
        content: list[dict] = []
        if request.audio is not None:
            content.append({"type": "input_audio",
                            "input_audio": {"data": wav_base64(request.audio, request.rate), "format": "wav"}})
        content.extend({"type": "image_url", "image_url": {"url": jpeg_data_url(f)}} for f in request.frames)
        content.append({"type": "text", "text": request.user_prompt()})
        return {
            "model": self.model_name,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}],
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
        }

    def caption_one(self, request: CaptionRequest) -> str:
        try:
            resp = self._session.post(self.url, json=self.request_body(request), headers=self._headers,
                                      timeout=self.timeout)
        except requests.Timeout as exc:
            raise TransientError("Timeout", f"{self.url}: {exc}") from None
        except requests.ConnectionError as exc:
            raise TransientError("ConnectionError", f"{self.url}: {exc}") from None
        if resp.status_code == HTTP_TOO_MANY_REQUESTS or resp.status_code >= HTTP_SERVER_ERROR_MIN:
            raise TransientError(f"HTTP{resp.status_code}", resp.text[:ERROR_BODY_CHARS])
        if resp.status_code != requests.codes.ok:
            raise PermanentError(f"HTTP{resp.status_code}", resp.text[:ERROR_BODY_CHARS])
        try:
            choice = resp.json()["choices"][0]
            text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise PermanentError("BadResponse", f"{self.url}: no choices[0].message.content ({exc!r}): "
                                                f"{resp.text[:ERROR_BODY_CHARS]}") from None
        if not isinstance(text, str):
            raise PermanentError("BadResponse", f"{self.url}: message content is {type(text).__name__}")
        return text

    def caption_batch(self, requests_: list[CaptionRequest]) -> list[str | BaseException]:
        def run(req: CaptionRequest) -> str | BaseException:
            try:
                return self.caption_one(req)
            except (TransientError, PermanentError) as exc:
                return exc

        workers = max(1, min(self.max_concurrency, len(requests_)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run, requests_))
