"""A fixed 10 000-id tokenizer that degrades gracefully on words it never saw.

Every word is represented by its own hashed id plus the hashed ids of its character trigrams (fastText-style,
with ``<`` and ``>`` marking word boundaries). Nothing is fitted, so there is no out-of-vocabulary token: an
unseen word still maps to stable ids, and shares trigram ids with words spelled alike. Ids 0..15 are reserved
(0 = padding). Hashing is CRC32, stable across processes and platforms (Python's ``hash`` is salted).
"""

from __future__ import annotations

import re
import zlib
from functools import lru_cache

VOCAB_SIZE = 10_000
PAD = 0
N_RESERVED = 16
MAX_IDS_PER_TEXT = 96

_WORD = re.compile(r"[a-z0-9]+")


def _bucket(s: str) -> int:
    return N_RESERVED + zlib.crc32(s.encode("utf-8")) % (VOCAB_SIZE - N_RESERVED)


@lru_cache(maxsize=200_000)
def word_ids(word: str) -> tuple[int, ...]:
    marked = f"<{word}>"
    grams = [marked[i : i + 3] for i in range(len(marked) - 2)] if len(marked) > 3 else []
    return (_bucket("w:" + word), *(_bucket("g:" + g) for g in grams[:12]))


def split_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def encode(text: str, mapping: dict[str, str] | None = None) -> list[int]:
    """Ids of a text (at most MAX_IDS_PER_TEXT; never empty). `mapping` renames words (training augmentation)."""
    ids: list[int] = []
    for w in split_words(text):
        if mapping is not None:
            w = mapping.get(w, w)
        ids.extend(word_ids(w))
        if len(ids) >= MAX_IDS_PER_TEXT:
            break
    return ids[:MAX_IDS_PER_TEXT] or [PAD]


def encode_words(text: str, mapping: dict[str, str] | None = None) -> list[int]:
    """The word-level ids only (one per word, no trigrams): what `seen in training` is judged on."""
    out = []
    for w in split_words(text)[:MAX_IDS_PER_TEXT]:
        if mapping is not None:
            w = mapping.get(w, w)
        out.append(word_ids(w)[0])
    return out or [PAD]
