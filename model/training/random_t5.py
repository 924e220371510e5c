"""A random-weight T5 encoder + word-level tokenizer, saved exactly as a hub checkpoint is
(`save_pretrained`), so the demo and the tests load it through the real T5 loading path."""
from __future__ import annotations

from pathlib import Path

# Common caption words; anything else becomes <unk>.
_WORDS = (
    "a an the and or of on in at with while to from by for is are was as it its this that "
    "dog dogs cat bird birds man woman men women child children people person crowd baby "
    "barks barking sings singing speaks speaking talks talking says laughs laughing cries crying "
    "plays playing music song guitar piano drum drums violin voice voices speech noise sound sounds "
    "rain water wind engine car cars train bus plane motor street traffic road city bell bells "
    "loudly softly quietly loud soft quiet fast slow high low background foreground distant near "
    "falls falling runs running walks walking roof door knock knocking footsteps applause clapping "
    "video clip scene outdoor indoor room small large bike bikes bunny rabbit phone birdsong chirping "
    "one two three then after before over under up down some many few other"
)
DEFAULT_WORDS = tuple(_WORDS.split(" "))


def build_random_t5(path: str | Path, *, words: list[str] | tuple[str, ...] = DEFAULT_WORDS, width: int = 32,
                    layers: int = 2, heads: int = 4, seed: int = 0, dropout: float = 0.1) -> Path:
    """Write tokenizer + random T5EncoderModel to `path` (created); returns `path`."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    if width % heads:
        raise ValueError(f"T5 width {width} is not divisible by {heads} heads")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in dict.fromkeys(x.lower() for x in words):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(path)
    config = T5Config(vocab_size=len(vocab), d_model=width, d_kv=width // heads, d_ff=2 * width,
                      num_layers=layers, num_heads=heads, relative_attention_num_buckets=8,
                      relative_attention_max_distance=16, decoder_start_token_id=0,
                      dropout_rate=dropout)
    fork = torch.random.fork_rng(devices=[])
    with fork:
        torch.manual_seed(seed)
        model = T5EncoderModel(config)
    model.save_pretrained(path)
    return path
