"""Word-level text features shared by the non-learned estimators: tokens and TF-IDF cosine similarity."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    "a an the and or of for to in on at by with from into onto over under up down is are be been being this that "
    "these those it its as we our you your they their them all any some each per new add make fix do does "
    "via not no so than then when while after before about".split()
)


def words(text: str) -> list[str]:
    """Lower-cased content words with a crude plural/verb-suffix strip so 'tests' meets 'test'."""
    out = []
    for w in _WORD.findall(text.lower()):
        if w in STOPWORDS or len(w) < 2:
            continue
        for suffix in ("ing", "es", "s", "ed"):
            if len(w) > len(suffix) + 3 and w.endswith(suffix):
                w = w[: -len(suffix)]
                break
        out.append(w)
    return out


class TfIdf:
    """TF-IDF vectors over the documents one decision sees; fitted per decision, nothing global to drift."""

    def __init__(self, documents: Iterable[Sequence[str]]):
        docs = [set(d) for d in documents]
        df: Counter[str] = Counter()
        for d in docs:
            df.update(d)
        n = max(len(docs), 1)
        self.vocab = {w: i for i, w in enumerate(sorted(df))}
        self.idf = np.array([math.log((1 + n) / (1 + df[w])) + 1.0 for w in sorted(df)], dtype=np.float64)

    def matrix(self, documents: Sequence[Sequence[str]]) -> np.ndarray:
        m = np.zeros((len(documents), len(self.vocab)), dtype=np.float64)
        for row, doc in enumerate(documents):
            for w, c in Counter(doc).items():
                j = self.vocab.get(w)
                if j is not None:
                    m[row, j] = c * self.idf[j]
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return m / norms
