"""Lyrics stage: FunASR Paraformer end to end on a tiny random-weight SeACo-Paraformer (the
`paraformer-zh` architecture: SANM encoder, CIF-v3 predictor with timestamps, SeACo bias
decoder), saved as a local model directory in the hub layout (config.yaml + model.pt +
tokens.json) and loaded by funasr.AutoModel through the same option keys as the real one."""
import copy
import json

import numpy as np
import pytest
import yaml

from pipeline.annotate.funasr_lyrics import model_ref, parse_result, strip_rich_tags, timed_units
from pipeline.media.audio import RATE_ASR, encode_audio_blob
from pipeline.record import new_record
from pipeline.registry import stage_class
from pipeline.stage import run_stage_on_rows
from pipeline.stages.lyrics import LyricsStage

HIDDEN = 16
CHARS = list("我们一起唱歌爱你天空月亮")
TOKENS = ["<blank>", "<s>", "</s>"] + CHARS + ["<unk>"]


def tiny_paraformer_config():
    sanm_decoder = {"attention_heads": 2, "linear_units": 32, "num_blocks": 1, "dropout_rate": 0.0,
                    "positional_dropout_rate": 0.0, "self_attention_dropout_rate": 0.0,
                    "src_attention_dropout_rate": 0.0, "kernel_size": 11, "sanm_shfit": 0}
    return {
        "model": "SeacoParaformer",
        "model_conf": {"ctc_weight": 0.0, "predictor_weight": 1.0, "predictor_bias": 1, "sampling_ratio": 0.75,
                       "inner_dim": HIDDEN, "bias_encoder_type": "lstm", "NO_BIAS": len(TOKENS) - 1},
        "encoder": "SANMEncoder",
        "encoder_conf": {"output_size": HIDDEN, "attention_heads": 2, "linear_units": 32, "num_blocks": 2,
                         "dropout_rate": 0.0, "positional_dropout_rate": 0.0, "attention_dropout_rate": 0.0,
                         "input_layer": "pe", "pos_enc_class": "SinusoidalPositionEncoder",
                         "normalize_before": True, "kernel_size": 11, "sanm_shfit": 0,
                         "selfattention_layer_type": "sanm"},
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": {**sanm_decoder, "att_layer_num": 1},
        "predictor": "CifPredictorV3",
        "predictor_conf": {"idim": HIDDEN, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45,
                           "smooth_factor2": 0.25, "noise_threshold2": 0.01, "upsample_times": 3,
                           "use_cif1_cnn": False, "upsample_type": "cnn_blstm"},
        "seaco_decoder": "ParaformerSANMDecoder",
        "seaco_decoder_conf": {**sanm_decoder, "use_output_layer": False, "wo_input_layer": True},
        "frontend": "WavFrontend",
        "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
                          "lfr_m": 7, "lfr_n": 6, "dither": 0.0},
        "specaug": None,
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
        "input_size": 560,
        "normalize": None,
    }


@pytest.fixture(scope="module")
def tiny_paraformer(tmp_path_factory):
    torch = pytest.importorskip("torch")
    funasr_auto = pytest.importorskip("funasr.auto.auto_model")
    path = tmp_path_factory.mktemp("paraformer-zh-tiny")
    (path / "tokens.json").write_text(json.dumps(TOKENS, ensure_ascii=False), encoding="utf-8")
    cfg = tiny_paraformer_config()
    (path / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    build = copy.deepcopy(cfg)
    build["tokenizer_conf"]["token_list"] = str(path / "tokens.json")
    torch.manual_seed(0)
    model, _ = funasr_auto.AutoModel.build_model(**build, device="cpu")
    torch.save(model.state_dict(), path / "model.pt")
    return path


def _song(sid, seconds=2.0, **fields):
    rec = new_record("lrc_songs", sid, f"{sid}.flac", duration_s=seconds, kind=fields.pop("kind", "song"), **fields)
    rng = np.random.default_rng(1)
    rec["audio_16k"] = encode_audio_blob((0.1 * rng.standard_normal(int(seconds * RATE_ASR))).astype(np.float32),
                                         RATE_ASR)
    return rec


def test_registry_names_the_stage():
    assert stage_class("lyrics") is LyricsStage


@pytest.mark.slow
def test_stage_end_to_end_on_tiny_paraformer(tiny_paraformer, tmp_path):
    given_lines = [{"text": "la la", "start": 0.5, "end": 1.0}]
    rows = [
        _song("zh1", 2.0, language="zh"),
        _song("given", 2.0, lyrics="la la", lyrics_model="metadata:lrc_songs", lines=given_lines),
        _song("sfx", 1.0, kind="audio"),
        dict(_song("bad", 1.0, language="zh"), audio_16k=b"junk"),
    ]
    opts = {"model": str(tiny_paraformer), "vad_model": None, "punc_model": None, "multilingual_model": None,
            "default_language": "zh", "device": "cpu", "filter_empty": False}
    outcomes, counts = run_stage_on_rows(LyricsStage, opts, rows, tmp_path)
    zh, given, sfx, bad = outcomes
    assert zh.status == "ok", zh
    out = zh.rows[0]
    assert out["lyrics_model"].startswith("paraformer-zh-tiny") and "@local-" in out["lyrics_model"]
    assert out["language"] == "zh"
    assert out["lyrics"]  # seeded random weights emit characters; each must be a vocabulary character
    units = out["lyrics"].replace(" ", "")
    assert set(units) <= set(CHARS)
    assert len(out["words"]) == len(units)
    starts = [w["start"] for w in out["words"]]
    assert starts == sorted(starts) and 0 <= starts[0] and out["words"][-1]["end"] <= 2.0 + 1e-6
    assert out["lines"][0]["start"] == starts[0]
    assert given.rows == [{}] and sfx.rows == [{}]  # corpus lyrics and non-songs pass through untouched
    assert bad.status == "failed:lyrics:UndecodableAudio"
    assert counts["corpus_lyrics_kept"] == 1 and counts["chinese_model_runs"] == 1


def test_parse_vad_sentence_result_with_punctuation():
    res = {"text": "我们唱歌，爱你。",
           "sentence_info": [{"text": "我们唱歌，", "start": 500, "end": 1700,
                              "timestamp": [[500, 700], [700, 900], [1100, 1300], [1300, 1700]]},
                             {"text": "爱你。", "start": 2000, "end": 2600, "timestamp": [[2000, 2200], [2200, 2600]]}]}
    r = parse_result(res, "zh")
    assert r.text == "我们唱歌，爱你。" and r.timestamps_matched
    assert [l.text for l in r.lines] == ["我们唱歌，", "爱你。"] and r.lines[1].start == 2.0
    assert [w.text for w in r.words] == list("我们唱歌爱你") and r.words[-1].end == 2.6


def test_mismatched_stamps_are_reported_not_invented():
    words, ok = timed_units("hello big world", [[0, 100], [100, 200]])
    assert words == [] and not ok
    words, ok = timed_units("hello world", [[0, 100], [100, 250]])
    assert ok and [(w.text, w.start, w.end) for w in words] == [("hello", 0.0, 0.1), ("world", 0.1, 0.25)]


def test_sensevoice_tags_give_language():
    text, lang = strip_rich_tags("<|en|><|HAPPY|><|BGM|><|withitn|>Shine on me tonight.")
    assert text == "Shine on me tonight." and lang == "en"
    r = parse_result({"text": "<|ja|><|NEUTRAL|><|Speech|><|woitn|>きみ"}, None)
    assert r.language == "ja" and r.text == "きみ"


def test_model_ref_names_hub_models_and_local_dirs(tmp_path):
    assert model_ref("paraformer-zh", None) == "paraformer-zh@master"
    assert model_ref("iic/SenseVoiceSmall", "v2.0.4") == "iic/SenseVoiceSmall@v2.0.4"
    (tmp_path / "config.yaml").write_text("model: X\n")
    assert model_ref(str(tmp_path), None).startswith(f"{tmp_path.name}@local-")
