"""End to end: the transformers backend on a tiny random-weight Qwen2.5-Omni, built from the
real architecture's configs, saved to disk in the hub layout of Qwen/Qwen2.5-Omni-7B (a full
`qwen2_5_omni` checkpoint whose thinker is loaded; tokenizer with chat template; one
preprocessor_config.json for the Whisper feature extractor and the Qwen2-VL image processor)
and loaded through the same code path and option keys as the real checkpoint.
Random weights give gibberish: the assertions are about plumbing, not content."""
import json

import numpy as np
import pytest

from pipeline.annotate.prompts import CaptionRequest
from pipeline.annotate.qwen_omni import QwenOmniCaptioner, audio_embedding_count, expand_placeholders
from pipeline.media.audio import RATE_ASR, encode_audio_blob
from pipeline.media.frames import encode_frame
from pipeline.record import new_record
from pipeline.stage import run_stage_on_rows
from pipeline.stages.caption import CaptionStage

torch = pytest.importorskip("torch")

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>",
           "<|IMAGE|>", "<|VIDEO|>", "<|vision_bos|>", "<|vision_eos|>"]
# The Qwen2.5-Omni chat format for system/user turns with audio and image parts.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.content is string %}{{ m.content }}"
    "{% else %}{% for c in m.content %}{% if c.type == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif c.type == 'image' %}<|vision_bos|><|IMAGE|><|vision_eos|>{% elif c.type == 'text' %}"
    "{{ c.text }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
MAX_NEW_TOKENS = 12


def build_tiny_omni(path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        Qwen2_5OmniConfig,
        Qwen2_5OmniForConditionalGeneration,
        Qwen2_5OmniThinkerConfig,
        Qwen2TokenizerFast,
        WhisperFeatureExtractor,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["a dog barks while rain falls on the roof and the mood turns calm"] * 20, trainer)
    tok = Qwen2TokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                             chat_template=CHAT_TEMPLATE)
    tok.save_pretrained(path)
    fe = WhisperFeatureExtractor(feature_size=128)
    ip = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
    (path / "preprocessor_config.json").write_text(json.dumps({**fe.to_dict(), **ip.to_dict()}, default=int))
    tid = tok.convert_tokens_to_ids
    thinker = Qwen2_5OmniThinkerConfig(
        audio_config=dict(d_model=16, encoder_attention_heads=2, encoder_ffn_dim=32, encoder_layers=1,
                          num_mel_bins=128, output_dim=32, n_window=100),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=32,
                           fullatt_block_indexes=[0], spatial_merge_size=2, patch_size=14, temporal_patch_size=2),
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}),
        audio_token_index=tid("<|AUDIO|>"), image_token_index=tid("<|IMAGE|>"), video_token_index=tid("<|VIDEO|>"),
        audio_start_token_id=tid("<|audio_bos|>"), audio_end_token_id=tid("<|audio_eos|>"),
        vision_start_token_id=tid("<|vision_bos|>"), vision_end_token_id=tid("<|vision_eos|>"),
        user_token_id=tid("<|im_start|>"))
    torch.manual_seed(0)
    full = Qwen2_5OmniForConditionalGeneration(
        Qwen2_5OmniConfig(thinker_config=thinker.to_dict(), enable_audio_output=False))
    full.save_pretrained(path)
    return full


@pytest.fixture(scope="module")
def tiny_omni(tmp_path_factory):
    path = tmp_path_factory.mktemp("Qwen2.5-Omni-tiny")
    full = build_tiny_omni(path)
    return path, full


@pytest.fixture(scope="module")
def captioner(tiny_omni):
    path, _ = tiny_omni
    c = QwenOmniCaptioner(str(path), device="cpu", max_new_tokens=MAX_NEW_TOKENS, local_files_only=True)
    c.load()
    return c


def _audio(seconds, freq=440.0):
    t = np.arange(int(seconds * RATE_ASR)) / RATE_ASR
    return (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _frames(n, size=384):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_loads_only_the_thinker_with_the_saved_weights(tiny_omni, captioner):
    _, full = tiny_omni
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    assert isinstance(captioner.model, Qwen2_5OmniThinkerForConditionalGeneration)
    saved, loaded = full.thinker.state_dict(), captioner.model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    name, revision = captioner.model_id().split("@")
    assert name.startswith("Qwen2.5-Omni-tiny") and revision.startswith("local-")


def test_inputs_have_one_placeholder_per_media_embedding(captioner):
    reqs = [CaptionRequest("a", _audio(3.0), RATE_ASR, _frames(2)), CaptionRequest("b", _audio(5.0), RATE_ASR)]
    inputs = captioner.build_inputs(reqs)
    cfg = captioner.model.config
    audio_tokens = (inputs["input_ids"] == cfg.audio_token_index).sum(-1).tolist()
    assert audio_tokens == [int(audio_embedding_count(300)), int(audio_embedding_count(500))]  # 100 mel frames/s
    image_tokens = (inputs["input_ids"] == cfg.image_token_index).sum().item()
    merge = captioner.image_processor.merge_size
    assert image_tokens == int(inputs["image_grid_thw"].prod(-1).sum()) // merge**2
    assert inputs["image_grid_thw"].shape[0] == 2
    assert (inputs["attention_mask"][:, -1] == 1).all()  # left padding for generation


def test_caption_batch_returns_bounded_text(captioner):
    reqs = [CaptionRequest("a", _audio(2.0), RATE_ASR, _frames(2)), CaptionRequest("b", _audio(1.0), RATE_ASR)]
    texts = captioner.caption_batch(reqs)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    tok = captioner.tokenizer
    longest_token = max(len(tok.decode([i])) for i in range(len(tok)))
    for t in texts:  # at most MAX_NEW_TOKENS tokens came out
        assert len(t) <= MAX_NEW_TOKENS * longest_token


def test_expand_placeholders_counts_and_errors():
    assert expand_placeholders("x<A>y<A>", "<A>", [2, 1], 0) == ("x<A><A>y<A>", 2)
    with pytest.raises(ValueError, match="placeholders"):
        expand_placeholders("<A><A>", "<A>", [1], 0)


def _row(sid, seconds, video):
    rec = new_record("vggsound", sid, f"{sid}.mp4", duration_s=seconds, has_video=video, has_audio=True,
                     label="dog barking")
    rec["audio_16k"] = encode_audio_blob(_audio(seconds), RATE_ASR)
    rec["clip_frames"] = [encode_frame(f) for f in _frames(int(seconds * 8))] if video else []
    return rec


def test_stage_end_to_end_on_the_saved_checkpoint(tiny_omni, tmp_path):
    path, _ = tiny_omni
    rows = [_row("v1", 1.0, True), _row("a1", 1.5, False), _row("v2", 2.0, True)]
    rows.append(dict(_row("bad", 1.0, False), audio_16k=b"not flac"))
    opts = {"backend": "transformers", "model": str(path), "device": "cpu", "local_files_only": True,
            "max_new_tokens": MAX_NEW_TOKENS, "frames_per_clip": 2, "batch_seconds": 3.0,
            "fallback_to_template": False, "filters": {"min_chars": 1}}
    outcomes, counts = run_stage_on_rows(CaptionStage, opts, rows, tmp_path)
    assert [o.key for o in outcomes] == [r["key"] for r in rows]
    assert outcomes[3].status == "failed:caption:UndecodableAudio"
    known = {"ok", "filtered:caption_empty", "filtered:caption_too_short", "filtered:caption_refusal",
             "filtered:caption_repetitive"}
    assert {o.status for o in outcomes[:3]} <= known
    assert counts["model_captions"] + counts["captions_filtered"] == 3
    for o in outcomes[:3]:
        if o.ok:
            out = o.rows[0]
            assert 0 < len(out["caption"]) <= MAX_NEW_TOKENS * 16
            assert out["caption_model"].startswith("Qwen2.5-Omni-tiny") and "@local-" in out["caption_model"]
            s = json.loads(out["caption_settings"])
            assert s["backend"] == "transformers" and s["max_new_tokens"] == MAX_NEW_TOKENS
            assert s["prompt_version"] and s["frames"] in (0, 2)
    ok_video = [o for o, r in zip(outcomes, rows) if o.ok and r["has_video"]]
    assert counts["frames_fed"] == 2 * len(ok_video)
