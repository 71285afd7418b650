"""Texts as sparse bags for the comparisons one decision makes: content words and character n-grams.

Views of a text:
- **words**: lower-cased content words with a crude suffix strip (what a task is about);
- **chars**: case-sensitive character 2- to 4-grams inside each whitespace token, punctuation kept (identifiers,
  paths, ``CamelCase``, ``fix:`` prefixes — and, in people's own commit subjects, how they write).
- **plain**: lower-cased word tokens, nothing removed or stemmed (the plain TF-IDF reference of the lab's tables).
- **wordgrams**: lower-cased character 3- to 5-grams inside each word padded with spaces (scikit-learn's
  `char_wb`): word forms meet (parse / parser / parsing) without a stemmer, and case and punctuation do not count.
All are hashed into a fixed space, so nothing is fitted globally and nothing drifts; each decision builds its own
sparse matrices over the ids its texts use. Bags are cached per text: agents' histories recur across decisions.
Only the first MAX_FEATURE_CHARS characters of a text are read for words and MAX_CHAR_VIEW for characters, and a
decision's total is capped (DECISION_BUDGET), which bounds memory and time whatever the accepted input size.
"""

from __future__ import annotations

import re
import sys
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import sparse

_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    "a an the and or of for to in on at by with from into onto over under up down is are be been being this that "
    "these those it its as we our you your they their them all any some each per new add make fix do does "
    "via not no so than then when while after before about".split()
)
MAX_FEATURE_CHARS = 2_000
# Character n-grams of a text: its first 500 characters (a task's gist; about 1 500 n-grams).
MAX_CHAR_VIEW = 500
# Characters one decision compares in all, per view: past this, every text is cut shorter (bounded time and
# memory for the largest episode the format accepts; ordinary decisions stay far below it).
DECISION_BUDGET = 600_000
_HASH_BITS = 20
_CHAR_N = (2, 3, 4)
_WORDGRAM_N = (3, 4, 5)


def words(text: str) -> list[str]:
    """Lower-cased content words with a crude plural/verb-suffix strip so 'tests' meets 'test'."""
    return list(_words(text))


@lru_cache(maxsize=15_000)  # a decision reads a task's words for several estimators; histories recur
def _words(text: str) -> tuple[str, ...]:
    out = []
    for w in _WORD.findall(text.lower()):
        if w in STOPWORDS or len(w) < 2:
            continue
        for suffix in ("ing", "es", "s", "ed"):
            if len(w) > len(suffix) + 3 and w.endswith(suffix):
                w = w[: -len(suffix)]
                break
        out.append(w)
    return tuple(out)


# Style-blind text (`style_blind`): what is left of a text when the writer's habits are washed out. Leading
# prefixes, repeated: conventional-commit and area prefixes (`fix:`, `feat(x)!:`, `net/http:`) and bracket tags
# (`[docs]`); anywhere: ticket and PR marks (`#123`, `(#45)`, `GH-12`, `JIRA-1`) and gitmoji codes (`:bug:`).
_STYLE_PREFIX = re.compile(r"^\s*(?:\[[^\]]*\]|[\w./-]+(?:\([^)]*\))?!?:(?=\s|$))\s*")
# Ticket keys are upper case (`JIRA-1`), so marks are found before lower-casing: `utf-8` is not a ticket.
_STYLE_MARKS = re.compile(r"\(\s*#\d+\s*\)|#\d+\b|\b(?:[A-Z][A-Z0-9]+|[Gg][Hh])-\d+\b|:[a-z0-9_+-]+:")
_NOT_LETTER = re.compile(r"[\W\d_]+")
_PLAIN = re.compile(r"\w+")


def style_blind(text: str) -> str:
    """The words of a text in their order, without the style of whoever wrote it: lower case, no commit-type or
    bracket prefixes, no ticket or PR marks, no punctuation, no digits. Tasks on a board are written by whoever
    files them, so an estimator measured on people's own commit subjects must also be measured on this."""
    t = _STYLE_MARKS.sub(" ", text).lower()
    while True:
        stripped = _STYLE_PREFIX.sub("", t, count=1)
        if stripped == t:
            break
        t = stripped
    return " ".join(_NOT_LETTER.sub(" ", t).split())


def _hash(s: str) -> int:
    return zlib.crc32(s.encode("utf-8", "surrogatepass")) & ((1 << _HASH_BITS) - 1)


@lru_cache(maxsize=200_000)
def _token_grams(token: str) -> tuple[int, ...]:
    padded = f" {token} "
    out = []
    for n in _CHAR_N:
        if len(padded) < n:
            break
        out.extend(_hash(f"{n}{padded[i : i + n]}") for i in range(len(padded) - n + 1))
    return tuple(out)


def word_bag(text: str) -> np.ndarray:
    """Hashed ids of the content words of a text (one per occurrence)."""
    return np.fromiter((_hash(w) for w in words(text)), dtype=np.int64)


def char_bag(text: str) -> np.ndarray:
    """Hashed ids of the character n-grams of a text (one per occurrence)."""
    ids: list[int] = []
    for token in text.split():
        ids.extend(_token_grams(token))
    return np.fromiter(ids, dtype=np.int64, count=len(ids))


def plain_bag(text: str) -> np.ndarray:
    """Hashed ids of every lower-cased word token (no stop words, no stemming: a textbook TF-IDF's view)."""
    return np.fromiter((_hash("w" + w) for w in _PLAIN.findall(text.lower())), dtype=np.int64)


@lru_cache(maxsize=200_000)
def _word_grams(word: str) -> tuple[int, ...]:
    padded = f" {word} "
    return tuple(
        _hash(f"g{padded[i : i + n]}") for n in _WORDGRAM_N if len(padded) >= n for i in range(len(padded) - n + 1)
    )


def wordgram_bag(text: str) -> np.ndarray:
    """Hashed ids of the lower-cased character 3- to 5-grams inside each word of a text (one per occurrence)."""
    ids: list[int] = []
    for w in _WORD.findall(text.lower()):
        ids.extend(_word_grams(w))
    return np.fromiter(ids, dtype=np.int64, count=len(ids))


# kind -> (bag, characters of a text it reads at most)
BAGS = {
    "words": (word_bag, MAX_FEATURE_CHARS),
    "chars": (char_bag, MAX_CHAR_VIEW),
    "plain": (plain_bag, MAX_FEATURE_CHARS),
    "wordgrams": (wordgram_bag, MAX_CHAR_VIEW),
}


# Up to this many ids in a decision's texts, a sort numbers them faster than a pass over the whole hashed space,
# whose 8 MB of scratch costs ~1-2 ms of page faults however few ids there are (measured: 28 000 ids, a 16 x 64
# decision's character n-grams, 0.5 ms against 1.2 ms; 120 000, 2.9 against 2.1).
_SORT_IDS_MAX = 65_536


class _DistinctIds:
    """(kind, text) -> (2, n) int32: the distinct ids of the text's bag in increasing order and how often each
    occurs. Kept per text, least recently used out first, up to `size` texts and `max_bytes` of arrays (agents'
    histories recur across decisions; the bags themselves are not kept); the texts a decision brings for the first
    time are counted together, in one sort."""

    def __init__(self, size: int, max_bytes: int):
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._held: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, kind: str, texts: Sequence[str]) -> list[np.ndarray]:
        with self._lock:
            found = [self._held.get((kind, t)) for t in texts]
            for t, f in zip(texts, found, strict=True):
                if f is not None:
                    self._held.move_to_end((kind, t))
        missing = list(dict.fromkeys(t for t, f in zip(texts, found, strict=True) if f is None))
        if not missing:
            return found  # type: ignore[return-value]
        bag = BAGS[kind][0]
        raw = [bag(t) for t in missing]
        lengths = np.fromiter((len(r) for r in raw), dtype=np.int64, count=len(raw))
        keys = np.repeat(np.arange(len(raw), dtype=np.int64), lengths) << _HASH_BITS | np.concatenate(raw)
        pairs, counts = np.unique(keys, return_counts=True)
        bounds = np.searchsorted(pairs >> _HASH_BITS, np.arange(len(raw) + 1))
        both = np.stack([pairs & ((1 << _HASH_BITS) - 1), counts]).astype(np.int32)
        # Copies, not views: a view would keep its whole batch's array alive after every other text of the batch
        # had left, and the byte count would not be what is held.
        made = {t: both[:, bounds[k] : bounds[k + 1]].copy() for k, t in enumerate(missing)}
        with self._lock:
            for t, ids in made.items():
                old = self._held.pop((kind, t), None)  # another decision counted it meanwhile
                self._bytes += _held_bytes(t, ids) - (_held_bytes(t, old) if old is not None else 0)
                self._held[(kind, t)] = ids
            while self._held and (len(self._held) > self._size or self._bytes > self._max_bytes):
                (_, t), ids = self._held.popitem(last=False)
                self._bytes -= _held_bytes(t, ids)
        return [f if f is not None else made[t] for t, f in zip(texts, found, strict=True)]


def _held_bytes(text: str, ids: np.ndarray) -> int:
    """What an entry really holds: the array with its header, the text in the key, and ~160 bytes of key tuple
    and ordered-dict node. On 16 x 64 simulated decisions this is 2.1x the arrays' data, which is all the budget
    counted before; tracemalloc saw the cache's module grow 5.8 MB where this counted 5.2 MB (the rest: `_words`)."""
    return sys.getsizeof(ids) + sys.getsizeof(text) + 160


# Texts of all kinds, in at most 32 MB all counted: a 16 x 64 decision over 100 past tasks an agent holds about
# 1 700 texts of each kind (~0.7 KB each as counted: ~4 MB), so the texts of several recent decisions stay while a server that sees new
# texts all day stays flat (`ansf bench --suite memory`).
_DISTINCT = _DistinctIds(40_000, 32 << 20)


class SparseTexts:
    """One decision's texts as a sparse count matrix over the ids they use, and its TF-IDF rows."""

    def __init__(self, texts: Sequence[str], kind: str = "words"):
        cap = BAGS[kind][1]
        cap = max(100, min(cap, DECISION_BUDGET // max(len(texts), 1)))
        bags = _DISTINCT.of(kind, [t[:cap] for t in texts])
        n_rows = len(bags)
        lengths = np.fromiter((b.shape[1] for b in bags), dtype=np.int64, count=n_rows)
        flat, counts = np.concatenate(bags, axis=1) if bags else np.zeros((2, 0), dtype=np.int32)
        # The ids this decision uses, numbered densely in increasing order, so each text's ids stay in order and
        # the rows are canonical CSR as they come. Many ids: one pass over the hashed space (a sort of millions of
        # ids is not linear); fewer: a sort.
        if flat.size <= _SORT_IDS_MAX:
            used, cols = np.unique(flat, return_inverse=True)
        else:
            present = np.zeros(1 << _HASH_BITS, dtype=bool)
            present[flat] = True
            used = np.flatnonzero(present)
            column = np.empty(1 << _HASH_BITS, dtype=np.int64)
            column[used] = np.arange(used.size)
            cols = column[flat]
        n_vocab = int(used.size)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        self.counts = sparse.csr_matrix((counts.astype(np.float64), cols, indptr), shape=(n_rows, n_vocab))
        self.counts.has_canonical_format = True
        total = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self.lengths = total[indptr[1:]] - total[indptr[:-1]]
        n = max(n_rows, 1)
        df = np.bincount(self.counts.indices, minlength=n_vocab)
        self.idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
        # Sublinear TF (a word said twice is not twice the topic) times IDF, rows scaled to unit length; on the
        # CSR arrays directly, which is several times faster than scipy's broadcasting products.
        row = np.repeat(np.arange(n_rows), np.diff(self.counts.indptr))
        data = (1.0 + np.log(self.counts.data)) * self.idf[self.counts.indices]
        norms = np.sqrt(np.bincount(row, weights=data * data, minlength=n_rows))
        norms[norms == 0] = 1.0
        data *= (1.0 / norms)[row]
        self.tfidf = sparse.csr_matrix(
            (data, self.counts.indices.copy(), self.counts.indptr.copy()), shape=self.counts.shape
        )
