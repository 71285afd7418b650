"""Word embeddings trained on the training corpus: what a task is about, beyond the words it shares with the past.

TF-IDF cosines only see a task and an agent's past work as alike when they share words; on a board, tasks are
written by whoever files them, so the words differ even when the work is the same ("crash on empty config" vs
"handle missing settings file"). The vectors here are PPMI + truncated SVD over co-occurrences of content words
in the commit subjects of the TRAINING repositories, style-blind (`lab/embed.py` builds them, reproducibly:
`python -m ansf_mcp.lab.embed --mirror DIR`). A text's vector is the SIF-weighted mean of its words' vectors
(frequent words weigh less), on `text.style_blind` text, so how a writer styles a subject does not move it.

Shipped as `checkpoints/embeddings.safetensors` (float16 vectors, float32 word weights) with a JSON card (the
vocabulary in row order, its sha256, how it was built); loading refuses a file whose checksum differs. Nothing is
downloaded at run time.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import sparse

from ansf_mcp.coordinator.episode import ModelUnavailable
from ansf_mcp.coordinator.text import style_blind, words

FORMAT = "ansf-embeddings/1"
DEFAULT_PATH = Path(__file__).resolve().parent / "checkpoints" / "embeddings.safetensors"
# Characters of a text read (a task's gist; the word views read more, but a vector averages anyway).
MAX_CHARS = 1_000

_lock = threading.Lock()
_loaded: dict[str, Embeddings] = {}


def tokens(text: str) -> list[str]:
    """The words a vector is made of: content words of the style-blind text (stemmed as `text.words` does)."""
    return words(style_blind(text[:MAX_CHARS]))


def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


@dataclass(eq=False)
class Embeddings:
    vectors: np.ndarray  # (vocabulary, dim) float32, rows of unit length
    weight: np.ndarray  # (vocabulary,) SIF weight a / (a + p(word))
    index: dict[str, int]
    sha256: str
    card: dict

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __post_init__(self) -> None:
        # Per text, the rows and weights of its known words: agents' histories recur across decisions.
        self._ids = lru_cache(maxsize=100_000)(self._text_ids)

    def _text_ids(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        ids = np.fromiter((self.index[w] for w in tokens(text) if w in self.index), dtype=np.int64)
        return ids, self.weight[ids]

    def matrix(self, texts: list[str]) -> np.ndarray:
        """(texts, dim): each text's SIF-weighted mean word vector, unit length (zeros for a text with no known
        word), in one pass over all the texts' words."""
        pairs = [self._ids(t) for t in texts]
        lengths = np.fromiter((len(p[0]) for p in pairs), dtype=np.int64, count=len(pairs))
        if lengths.sum() == 0:
            return np.zeros((len(texts), self.dim))
        ids = np.concatenate([p[0] for p in pairs])
        w = np.concatenate([p[1] for p in pairs])
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        mix = sparse.csr_matrix((w, ids, indptr), shape=(len(texts), self.vectors.shape[0]))
        out = np.asarray(mix @ self.vectors, dtype=np.float64)
        norms = np.linalg.norm(out, axis=1)
        norms[norms == 0] = 1.0
        return out / norms[:, None]


def load(path: Path = DEFAULT_PATH) -> Embeddings:
    """The embeddings in `path`, verified by the checksum in their card; loaded once per process and path."""
    key = str(path)
    with _lock:
        held = _loaded.get(key)
        if held is not None:
            return held
        emb = _read(Path(path))
        _loaded[key] = emb
        return emb


def _read(path: Path) -> Embeddings:
    from ansf_mcp.coordinator.ckpt import sha256

    meta = card_path(path)
    if not path.is_file() or not meta.is_file():
        raise ModelUnavailable(f"word embeddings {path.name} or their card {meta.name} are missing from {path.parent}")
    try:
        card = json.loads(meta.read_text())
        vocab = list(card["vocabulary"])
        expected = str(card["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailable(f"word embeddings card {meta.name} is unreadable: {exc}") from exc
    digest = sha256(path)
    if digest != expected:
        raise ModelUnavailable(f"word embeddings {path.name} fail their checksum (sha256 {digest[:12]}…)")
    try:
        from safetensors.numpy import load_file

        stored = load_file(str(path))
        vectors = stored["vectors"].astype(np.float32)
        weight = stored["weight"].astype(np.float64)
    except Exception as exc:  # safetensors raises several types on garbage
        raise ModelUnavailable(f"word embeddings {path.name} are not readable: {exc}") from exc
    if vectors.shape[0] != len(vocab) or weight.shape != (len(vocab),):
        raise ModelUnavailable(f"word embeddings {path.name} do not match their card's vocabulary")
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0] = 1.0
    return Embeddings(vectors / norms[:, None], weight, {w: i for i, w in enumerate(vocab)}, digest, card)


def recency_weights(n: int, half_life: float) -> np.ndarray:
    """Weights of an agent's n past items, oldest first: 1 for the newest, 1/2 `half_life` items earlier."""
    return 0.5 ** (np.arange(n - 1, -1, -1) / half_life)


def pair_cosines(emb: Embeddings, cmp, half_life: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(agents, tasks) x 3 for one decision's comparisons (`comparisons.Comparisons`): the cosine of each task's
    vector with the normalised sum of the agent's past successes' vectors, with its single best-matching past
    task, and the recency-weighted mean cosine with its past tasks (newest weigh most); 0 without a history."""
    episode = cmp.episode
    n_a, n_t = cmp.n_agents, cmp.n_tasks
    hist = [h.task for a, n in zip(episode.agents, cmp.hist_len, strict=True) for h in a.history[len(a.history) - n:]]
    tasks = emb.matrix([t.description for t in episode.tasks])
    items = emb.matrix(hist)
    # einsum, not `@`: with `@`, 16x64 decisions measured 2-4x slower on a 2-core machine, most likely because
    # a dense product this size wakes OpenBLAS's thread pool, whose spinning threads compete with the network;
    # einsum's own loops cost ~0.6 ms here and start no thread.
    sims = np.einsum("id,td->it", items, tasks)  # (history items, tasks)
    owner = np.repeat(np.arange(n_a), cmp.hist_len)
    n_items = len(hist)
    # Agents x items: 1 on an agent's successes; each agent's recency weights summing to 1.
    ok = sparse.csr_matrix((np.ones(int(cmp.ok.sum())), (owner[cmp.ok], np.flatnonzero(cmp.ok))),
                           shape=(n_a, n_items))
    w = np.concatenate([recency_weights(int(n), half_life) for n in cmp.hist_len]) if n_items else np.zeros(0)
    w /= np.bincount(owner, weights=w, minlength=n_a)[owner] if n_items else 1.0
    recent = np.asarray(sparse.csr_matrix((w, (owner, np.arange(n_items))), shape=(n_a, n_items)) @ sims)
    cent = np.asarray(ok @ items)
    norms = np.linalg.norm(cent, axis=1)
    norms[norms == 0] = 1.0
    centroid = np.einsum("ad,td->at", cent / norms[:, None], tasks)
    best = np.zeros((n_a, n_t))
    has = cmp.hist_len > 0
    if n_items:
        best[has] = np.maximum.reduceat(sims, cmp.starts[:-1][has], axis=0)
    return centroid, best, recent
