"""The openai backend against a small chat-completions server on 127.0.0.1 (a thread)."""
import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from pipeline.annotate.openai_backend import OpenAICompatibleCaptioner
from pipeline.annotate.prompts import CaptionRequest
from pipeline.errors import PermanentError, TransientError
from pipeline.media.audio import RATE_ASR, encode_audio_blob
from pipeline.media.frames import encode_frame
from pipeline.record import new_record
from pipeline.stage import RetryPolicy, run_stage_on_rows
from pipeline.stages.caption import CaptionStage

CAPTION = "A steady rain falls on a tin roof while distant thunder rolls; the mood is calm, then tense."


class FakeServer:
    """Replies from a script: each entry is (status, body) or ("sleep", seconds)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.script: list = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                step = server.script.pop(0) if server.script else (200, None)
                if step[0] == "sleep":
                    time.sleep(step[1])
                    step = (200, None)
                status, reply = step
                if reply is None:
                    reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": CAPTION}}]}
                data = json.dumps(reply).encode() if not isinstance(reply, bytes) else reply
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server():
    with FakeServer() as s:
        yield s


def request(with_frames=True):
    audio = (0.1 * np.sin(np.arange(RATE_ASR) * 2 * np.pi * 440 / RATE_ASR)).astype(np.float32)
    frames = [np.full((32, 32, 3), 40 * i, dtype=np.uint8) for i in range(3)] if with_frames else []
    return CaptionRequest(key="k", audio=audio, rate=RATE_ASR, frames=frames)


def captioner(server, **kw):
    c = OpenAICompatibleCaptioner(server.url, "Qwen/Qwen2.5-Omni-7B", max_new_tokens=77, **kw)
    c.load()
    return c


def test_request_body_carries_audio_frames_prompt_and_limit(server, monkeypatch):
    monkeypatch.setenv("AGOMNI_TEST_KEY", "sk-test")
    c = captioner(server, api_key_env="AGOMNI_TEST_KEY")
    assert c.caption_batch([request()]) == [CAPTION]
    body = server.requests[0]
    assert body["model"] == "Qwen/Qwen2.5-Omni-7B" and body["max_tokens"] == 77
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    system, user = body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    kinds = [p["type"] for p in user["content"]]
    assert kinds == ["input_audio", "image_url", "image_url", "image_url", "text"]
    audio = user["content"][0]["input_audio"]
    assert audio["format"] == "wav"
    wav, rate = sf.read(io.BytesIO(base64.b64decode(audio["data"])))
    assert rate == RATE_ASR and len(wav) == RATE_ASR
    url = user["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.format == "JPEG" and img.size == (32, 32)
    assert "frames" in user["content"][-1]["text"]


def test_audio_only_request_has_no_images(server):
    captioner(server).caption_batch([request(with_frames=False)])
    kinds = [p["type"] for p in server.requests[0]["messages"][1]["content"]]
    assert kinds == ["input_audio", "text"]


@pytest.mark.parametrize("status,cls,transient", [(500, "HTTP500", True), (503, "HTTP503", True),
                                                  (429, "HTTP429", True), (400, "HTTP400", False),
                                                  (404, "HTTP404", False)])
def test_http_errors_are_typed(server, status, cls, transient):
    server.script = [(status, {"error": {"message": "boom"}})]
    [res] = captioner(server).caption_batch([request()])
    assert isinstance(res, TransientError if transient else PermanentError)
    assert res.error_class == cls and "boom" in res.message


def test_timeout_is_transient(server):
    server.script = [("sleep", 1.0)]
    [res] = captioner(server, timeout_s=0.2).caption_batch([request()])
    assert isinstance(res, TransientError) and res.error_class == "Timeout"


def test_connection_refused_is_transient():
    c = OpenAICompatibleCaptioner("http://127.0.0.1:9/v1", "m", connect_timeout_s=0.5)
    c.load()
    [res] = c.caption_batch([request()])
    assert isinstance(res, TransientError) and res.error_class == "ConnectionError"


def test_malformed_reply_is_permanent(server):
    server.script = [(200, {"choices": []}), (200, b"not json")]
    c = captioner(server)
    res = c.caption_batch([request()]) + c.caption_batch([request()])
    assert all(isinstance(r, PermanentError) and r.error_class == "BadResponse" for r in res)


def _row(sid):
    rec = new_record("vggsound", sid, "x.mp4", duration_s=1.0, has_video=True)
    rec["audio_16k"] = encode_audio_blob(np.zeros(RATE_ASR, dtype=np.float32), RATE_ASR)
    rec["clip_frames"] = [encode_frame(np.zeros((48, 48, 3), dtype=np.uint8))] * 8
    return rec


def test_stage_retries_5xx_then_writes_caption(server, tmp_path):
    server.script = [(502, {"error": "busy"}), (503, {"error": "busy"})]
    opts = {"backend": "openai", "server_url": server.url, "frames_per_clip": 2, "max_new_tokens": 50}
    outcomes, counts = run_stage_on_rows(CaptionStage, opts, [_row("a")], tmp_path, RetryPolicy(backoff_s=0.0))
    assert outcomes[0].status == "ok", outcomes[0]
    out = outcomes[0].rows[0]
    assert out["caption"] == CAPTION
    assert out["caption_model"] == "Qwen/Qwen2.5-Omni-7B@served"
    settings = json.loads(out["caption_settings"])
    assert settings["backend"] == "openai" and settings["max_new_tokens"] == 50 and settings["frames"] == 2
    assert counts["transient_retries"] == 2 and len(server.requests) == 3
    assert sum(p["type"] == "image_url" for p in server.requests[-1]["messages"][1]["content"]) == 2


def test_stage_gives_up_after_max_attempts(server, tmp_path):
    server.script = [(500, {"error": "down"})] * 3
    opts = {"backend": "openai", "server_url": server.url}
    outcomes, _ = run_stage_on_rows(CaptionStage, opts, [_row("a")], tmp_path,
                                    RetryPolicy(max_attempts=3, backoff_s=0.0))
    assert outcomes[0].status == "failed:caption:HTTP500"


def test_stage_filters_refusals(server, tmp_path):
    refusal = {"choices": [{"message": {"role": "assistant", "content": "I'm sorry, I cannot hear audio."}}]}
    server.script = [(200, refusal)]
    outcomes, counts = run_stage_on_rows(CaptionStage, {"backend": "openai", "server_url": server.url},
                                         [_row("a")], tmp_path)
    assert outcomes[0].status == "filtered:caption_refusal"
    assert counts["captions_filtered"] == 1
