"""Build the word embeddings (coordinator/embeddings.py) from the TRAINING repositories' commit subjects.

Style-blind content words of every usable commit subject of `lab/training_repos.txt` (never validation or
held-out repositories); co-occurrence counts within WINDOW words of each other in one subject; positive PMI with
the context distribution smoothed (exponent 0.75); truncated SVD (ARPACK, a fixed start vector), vectors =
U·S^POWER without the DROP leading components, each column's sign fixed, stored as float16. Word weights are SIF's a / (a + p(word)). Deterministic:
the same corpus gives the same bytes (a test rebuilds a small corpus twice), and the card names the file's sha256.

    python -m ansf_mcp.lab.embed --mirror DIR [--dim 64] [--min-count 5] [--max-vocab 20000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import svds

from ansf_mcp.coordinator import embeddings

WINDOW = 5
CONTEXT_POWER = 0.75
SIF_A = 1e-3
# Chosen by reading the nearest neighbours of common words (`crash`, `timeout`, `typo`, `unicode`), not by a
# validation score: with the leading component kept, every word's neighbours were the commonest words.
DIM = 64
MIN_COUNT = 3
# Singular-value weighting U·S^POWER, and the DROP leading components left out: the leading ones mostly say how
# frequent a word is, and with them every word's nearest neighbours are the commonest words.
POWER = 0.5
DROP = 1


def build(
    texts: Iterable[str], *, dim: int = DIM, min_count: int = MIN_COUNT, max_vocab: int = 20_000,
    power: float = POWER, drop: int = DROP,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(vocabulary, vectors (V, dim) float16, SIF weights (V,) float32) from raw texts."""
    docs = [embeddings.tokens(t) for t in texts]
    freq = Counter(w for d in docs for w in d)
    vocab = sorted((w for w, c in freq.items() if c >= min_count), key=lambda w: (-freq[w], w))[:max_vocab]
    if len(vocab) <= dim:
        raise ValueError(f"a vocabulary of {len(vocab)} words is too small for {dim} dimensions")
    index = {w: i for i, w in enumerate(vocab)}
    rows, cols = [], []
    for d in docs:
        ids = [index[w] for w in d if w in index]
        for i, a in enumerate(ids):
            for b in ids[i + 1 : i + 1 + WINDOW]:
                if a != b:
                    rows += [a, b]
                    cols += [b, a]
    n = len(vocab)
    co = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    co.sum_duplicates()
    total = co.sum()
    row_p = np.asarray(co.sum(axis=1)).ravel() / total
    ctx = np.asarray(co.sum(axis=0)).ravel() ** CONTEXT_POWER
    ctx_p = ctx / ctx.sum()
    coo = co.tocoo()
    pmi = np.log(coo.data / total) - np.log(row_p[coo.row]) - np.log(ctx_p[coo.col])
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=(n, n))
    v0 = np.random.default_rng(0).standard_normal(n)
    u, s, _ = svds(ppmi, k=dim + drop, v0=v0)
    order = np.argsort(-s)[drop:]
    vectors = u[:, order] * s[order] ** power
    # An eigenvector's sign is arbitrary: make each column's largest entry positive, so equal input gives equal bytes.
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(dim)])
    vectors *= np.where(signs == 0, 1.0, signs)
    counts = np.array([freq[w] for w in vocab], dtype=np.float64)
    weight = SIF_A / (SIF_A + counts / sum(freq.values()))
    # C order: safetensors writes the buffer as it lies, and SVD factors come in Fortran order.
    return vocab, np.ascontiguousarray(vectors, dtype=np.float16), weight.astype(np.float32)


def save(path: Path, vocab: list[str], vectors: np.ndarray, weight: np.ndarray, card: dict) -> str:
    """Write the weights and their card; returns the weights' sha256."""
    from safetensors.numpy import save_file

    from ansf_mcp.coordinator.ckpt import sha256

    save_file({"vectors": vectors, "weight": weight}, str(path))
    digest = sha256(path)
    data = {**card, "format": embeddings.FORMAT, "dim": int(vectors.shape[1]), "sha256": digest,
            "bytes": path.stat().st_size, "vocabulary": vocab}
    embeddings.card_path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return digest


def main(argv: list[str] | None = None) -> int:
    from ansf_mcp.lab import corpus

    parser = argparse.ArgumentParser(prog="python -m ansf_mcp.lab.embed", description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, required=True)
    parser.add_argument("--repos", type=Path, help="list of training repositories (default: lab/training_repos.txt)")
    parser.add_argument("--dim", type=int, default=DIM)
    parser.add_argument("--min-count", type=int, default=MIN_COUNT)
    parser.add_argument("--power", type=float, default=POWER)
    parser.add_argument("--drop", type=int, default=DROP)
    parser.add_argument("--max-vocab", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=embeddings.DEFAULT_PATH)
    args = parser.parse_args(argv)
    started = time.time()
    texts = [c.subject for h in corpus.histories(args.mirror, corpus.read_list(args.repos or corpus.TRAINING_LIST))
             for c in h.commits]
    vocab, vectors, weight = build(texts, dim=args.dim, min_count=args.min_count, max_vocab=args.max_vocab,
                                   power=args.power, drop=args.drop)
    card = {
        "data": f"commit subjects of {args.repos or 'lab/training_repos.txt'} ({len(texts)} subjects), style-blind",
        "command": f"python -m ansf_mcp.lab.embed --mirror DIR --dim {args.dim} --min-count {args.min_count} "
        f"--max-vocab {args.max_vocab} --power {args.power} --drop {args.drop}",
        "method": f"PPMI (window {WINDOW}, context smoothing {CONTEXT_POWER}) + truncated SVD, U*S^{args.power} "
        f"without the {args.drop} leading component(s); "
        f"SIF weights a={SIF_A}",
    }
    digest = save(args.out, vocab, vectors, weight, card)
    print(f"wrote {args.out} ({len(vocab)} words x {args.dim}, sha256 {digest[:12]}) in {time.time() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
