"""Captions from corpus metadata, for when no captioning model is configured or usable.

The record says where such a caption came from: `caption_model = "template:<corpus>"`.
Sources, in order: a caption the corpus gives (Panda-70M, AudioCaps, Clotho, WavCaps:
`caption`, else the first of `captions`), then the class label(s) (VGGSound `label`, or a
`labels` list in `extra`) through the templates in `prompts.py`, then, for speech and song
clips that have neither, a caption naming what the clip kind guarantees.
"""
from __future__ import annotations

import json

from ..errors import Filtered
from .prompts import TEMPLATE_LABEL, TEMPLATE_LABELS, TEMPLATE_VERSION

TEMPLATE_MODEL_PREFIX = "template:"
KIND_CAPTIONS = {"speech": "A person speaks.", "song": "A person sings with musical accompaniment."}


def _clean(text: str | None) -> str:
    return " ".join(str(text or "").split())


def _sentence(text: str) -> str:
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


class TemplateCaptioner:
    """Builds a caption for one record from its metadata, or raises `Filtered`."""

    version = TEMPLATE_VERSION

    def model_id(self, corpus: str | None) -> str:
        return f"{TEMPLATE_MODEL_PREFIX}{corpus or 'unknown'}"

    def caption(self, row: dict) -> str:
        given = _clean(row.get("caption"))
        if not given:
            given = next((_clean(c) for c in (row.get("captions") or []) if _clean(c)), "")
        if given:
            return _sentence(given)
        labels = self._labels(row)
        if len(labels) == 1:
            return _sentence(TEMPLATE_LABEL.format(label=labels[0]))
        if labels:
            joined = ", ".join(labels[:-1]) + " and " + labels[-1]
            return _sentence(TEMPLATE_LABELS.format(labels=joined))
        if row.get("kind") in KIND_CAPTIONS:
            return KIND_CAPTIONS[row["kind"]]
        raise Filtered("no_caption_metadata",
                       f"{row.get('corpus')}: no caption, captions or label to build a caption from")

    @staticmethod
    def _labels(row: dict) -> list[str]:
        labels = []
        label = _clean(row.get("label"))
        if label:
            labels.append(label)
        raw = row.get("extra")
        if raw:
            try:
                extra = json.loads(raw) if isinstance(raw, str) else dict(raw)
            except (ValueError, TypeError) as exc:
                raise Filtered("bad_extra_json", f"{row.get('key')}: extra is not a JSON object: {exc}") from None
            for item in extra.get("labels") or []:
                item = _clean(item)
                if item and item not in labels:
                    labels.append(item)
        return labels
