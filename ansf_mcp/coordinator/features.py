"""What the network reads: one decision block as arrays, and a batch of blocks as tensors.

Sequence layout (at most MAX_SEQ = 1024 items, one item per text, never one per word):
  for every agent slot s (<= 16 per block): the agent item (role + capability tags) at position s*64, then its
  past tasks at positions s*64+1 ... s*64+63 (the most recent MAX_HISTORY kept), each tagged success / failure;
  then the open tasks (no position: they form a set).
Beside the sequence, per (agent, task) pair, the vocabulary-free comparisons of `comparisons.py` (PAIR_FEATURES),
and per (agent, task, past task) the word and character cosines that steer the pair head's comparison heads.
More than 16 agents: decided in blocks of 16 agents, each block seeing all tasks (in task chunks if the sequence
would exceed 1024).
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ansf_mcp.coordinator import baselines
from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.profiles import MAX_SEQ
from ansf_mcp.coordinator.tokenizer import PAD, encode, encode_words

MAX_AGENTS = 16
SLOT_SPAN = 64
MAX_HISTORY = SLOT_SPAN - 1
TYPE_AGENT, TYPE_OK, TYPE_FAIL, TYPE_TASK = 0, 1, 2, 3
LEXSIM_KINDS = ("words", "chars")

PAIR_FEATURES = (
    "history estimate",
    "tag match",
    "log history size",
    "success rate",
    "has tags",
    "words: cosine to successes",
    "words: cosine to failures",
    "words: best single past task",
    "words: language model",
    "chars: cosine to successes",
    "chars: best single past task",
    "chars: language model",
    "chars: cosine to successes, minus the best agent's",
    "chars: language model, minus the best agent's",
)
N_PAIR = len(PAIR_FEATURES)


def _col_gap(m: np.ndarray) -> np.ndarray:
    return m - m.max(axis=0, keepdims=True)


def pair_features(episode: Episode, cmp: Comparisons | None = None) -> np.ndarray:
    """(agents, tasks, N_PAIR), computed over the whole episode (relative features see every agent)."""
    cmp = cmp or Comparisons(episode)
    n_a, n_t = len(episode.agents), len(episode.tasks)
    per_agent = np.ones((n_a, n_t))
    w_ok = cmp.centroid_cosine("words", True)
    c_ok = cmp.centroid_cosine("chars", True)
    c_lm = np.tanh(cmp.lm_ratio("chars") / 2.0)
    w_lm = np.tanh(cmp.lm_ratio("words") / 2.0)
    has_tags = np.array([bool(a.role or a.capabilities) for a in episode.agents], dtype=np.float64)
    cols = [
        baselines.history(episode, cmp) - 0.5,
        (baselines.tags(episode) - 0.5) * has_tags[:, None],
        per_agent * (np.log1p(cmp.hist_len) / 3.0)[:, None],
        per_agent * (cmp.success_rate - 0.5)[:, None],
        per_agent * has_tags[:, None],
        w_ok,
        cmp.centroid_cosine("words", False),
        cmp.max_cosine("words"),
        w_lm,
        c_ok,
        cmp.max_cosine("chars"),
        c_lm,
        _col_gap(c_ok),
        _col_gap(c_lm),
    ]
    return np.stack(cols, axis=-1).astype(np.float32)


@dataclass
class Prepared:
    """One decision block as arrays (numpy), ready to batch."""

    texts: list[list[int]]  # token ids per text; item i of the sequence uses texts[i]
    wtexts: list[list[int]]  # word-level ids per text (familiarity)
    tokwords: list[list[int]]  # per text, the word-level id each token came from
    types: np.ndarray  # (L,)
    pos: np.ndarray  # (L,) position ids; -1 = none
    agent_item: np.ndarray  # (A,)
    task_item: np.ndarray  # (T,)
    hist_item: np.ndarray  # (A, H) -1 = none
    hist_y: np.ndarray  # (A, H) 1.0 success
    pair: np.ndarray  # (A, T, N_PAIR)
    lexsim: np.ndarray  # (A, T, H, len(LEXSIM_KINDS)) cosine of each open task with each past task of the agent
    target: np.ndarray | None = None  # (A, T): p* (soft) or, for replay, 1.0 for the real author
    listwise: bool = False  # the target is "which agent did it" (softmax over agents), not a success probability
    text_label: np.ndarray | None = None  # (L,) simulated domain of each text; -1 = unknown


def prepare(
    episode: Episode,
    *,
    slots: np.ndarray | None = None,
    mapping: dict[str, str] | None = None,
    target: np.ndarray | None = None,
    listwise: bool = False,
    text_label: np.ndarray | None = None,
    cmp: Comparisons | None = None,
    pair: np.ndarray | None = None,
    agents: list[int] | None = None,
    tasks: list[int] | None = None,
    seq_history: int = MAX_HISTORY,
) -> Prepared:
    """Arrays of one block (<= 16 agents; `agents`/`tasks` pick the block out of a larger episode, whose
    comparisons `cmp` and `pair` features were computed once). `slots` permutes agent slots (training),
    `mapping` renames words for the token embeddings (training augmentation)."""
    cmp = cmp or Comparisons(episode)
    agents = list(range(len(episode.agents))) if agents is None else agents
    tasks = list(range(len(episode.tasks))) if tasks is None else tasks
    if len(agents) > MAX_AGENTS:
        raise ValueError(f"a block holds at most {MAX_AGENTS} agents, got {len(agents)}")
    pair = pair_features(episode, cmp) if pair is None else pair
    n_a, n_t = len(agents), len(tasks)
    slots = np.arange(n_a) if slots is None else slots
    texts: list[list[int]] = []
    wtexts: list[list[int]] = []
    tokwords: list[list[int]] = []

    def add(text: str) -> None:
        if mapping is None:
            ids, owner, wids = encode_cached(text)
        else:
            ids, wids = encode(text, mapping), encode_words(text, mapping)
            owner = _token_words(ids, wids)
        texts.append(ids)
        wtexts.append(wids)
        tokwords.append(owner)

    types: list[int] = []
    pos: list[int] = []
    agent_item = np.empty(n_a, dtype=np.int64)
    # The comparisons keep up to MAX_COMPARED_HISTORY past tasks; the sequence holds the last `seq_history`.
    keep = min(seq_history, MAX_HISTORY)
    hists = [episode.agents[i].history[-keep:] if keep else [] for i in agents]
    h_max = max((len(h) for h in hists), default=0)
    hist_item = np.full((n_a, max(h_max, 1)), -1, dtype=np.int64)
    hist_y = np.zeros((n_a, max(h_max, 1)), dtype=np.float32)
    lexsim = np.zeros((n_a, n_t, hist_item.shape[1], len(LEXSIM_KINDS)), dtype=np.float32)
    for k, i in enumerate(agents):
        agent = episode.agents[i]
        agent_item[k] = len(texts)
        add(" ".join([agent.role, *agent.capabilities]))
        types.append(TYPE_AGENT)
        pos.append(int(slots[k]) * SLOT_SPAN)
        for h_idx, h in enumerate(hists[k]):
            hist_item[k, h_idx] = len(texts)
            hist_y[k, h_idx] = 1.0 if h.success else 0.0
            add(h.task)
            types.append(TYPE_OK if h.success else TYPE_FAIL)
            pos.append(int(slots[k]) * SLOT_SPAN + 1 + h_idx)
        if hists[k]:
            for c, kind in enumerate(LEXSIM_KINDS):
                sims = cmp.item_cosine(kind, i)[-len(hists[k]) :][:, tasks]
                lexsim[k, :, : len(hists[k]), c] = sims.T
    task_item = np.arange(len(texts), len(texts) + n_t, dtype=np.int64)
    for j in tasks:
        add(episode.tasks[j].description)
        types.append(TYPE_TASK)
        pos.append(-1)
    if len(texts) > MAX_SEQ:
        raise ValueError(f"block of {len(texts)} items exceeds the sequence budget {MAX_SEQ}")
    return Prepared(
        texts=texts,
        wtexts=wtexts,
        tokwords=tokwords,
        types=np.array(types, dtype=np.int64),
        pos=np.array(pos, dtype=np.int64),
        agent_item=agent_item,
        task_item=task_item,
        hist_item=hist_item,
        hist_y=hist_y,
        pair=pair[np.ix_(agents, tasks)],
        lexsim=lexsim,
        target=target,
        listwise=listwise,
        text_label=text_label,
    )


@lru_cache(maxsize=15_000)  # ~1.2 KB each (tracemalloc): ~17 MB when full; a 16 x 64 decision reads <= ~1 700
def encode_cached(text: str) -> tuple[list[int], list[int], list[int]]:
    """(ids, word id each token is attributed to, word-level ids) of a text; cached, since agents' histories
    recur across decisions. Callers must not mutate the lists."""
    ids, wids = encode(text), encode_words(text)
    return ids, _token_words(ids, wids), wids


def _token_words(ids: list[int], word_level: list[int]) -> list[int]:
    """For each token id of a text, the word-level id of the word it came from (word id first, then trigrams)."""
    out: list[int] = []
    n, k, current = len(word_level), 0, word_level[0]  # k: the next word to meet; before the first, the first
    for tok in ids:
        if k < n and tok == word_level[k]:
            current = word_level[k]
            k += 1
        out.append(current)
    return out


def canonical_order(episode: Episode) -> tuple[list[int], list[int]]:
    """The agents in an order set by what they are, not where they are listed, and a group id per agent (equal
    agents share one). The network gives each agent a slot with a position of its own, so three equal agents read
    0.497 / 0.512 / 0.505 and the same swarm listed in another order was decided differently."""
    keys = []
    for a in episode.agents:
        key = zlib.crc32("\x1f".join((a.role, *sorted(a.capabilities), str(a.capacity))).encode())
        for h in a.history:
            key = zlib.crc32(f"\x1e{int(h.success)}{h.task}".encode(), key)
        # Averaged as equals only when the checksum, the history's length, role, capabilities and capacity all
        # agree; the measured figures (docs/MODEL.md) are for this order, so the checksum stays as it is.
        keys.append((key, len(a.history), a.role, tuple(sorted(a.capabilities)), a.capacity))
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    ids: dict[tuple, int] = {}
    group = [ids.setdefault(k, len(ids)) for k in keys]
    return order, group


def blocks(episode: Episode, seq_history: int = MAX_HISTORY,
           order: Sequence[int] | None = None) -> list[tuple[list[int], list[int]]]:
    """(agent indices, task indices) of each block: <= 16 agents taken in `order` (default: as listed), and tasks
    chunked to fit 1024 items."""
    n_a, n_t = len(episode.agents), len(episode.tasks)
    order = list(range(n_a)) if order is None else list(order)
    out = []
    for a0 in range(0, n_a, MAX_AGENTS):
        agents = order[a0 : a0 + MAX_AGENTS]
        used = sum(1 + min(len(episode.agents[i].history), seq_history, MAX_HISTORY) for i in agents)
        room = max(MAX_SEQ - used, 1)
        for t0 in range(0, max(n_t, 1), room):
            out.append((agents, list(range(t0, min(t0 + room, n_t)))))
    return out


def collate(items: list[Prepared]) -> dict:
    """Pad a list of blocks into one batch of torch tensors."""
    import torch

    b = len(items)
    seq = max(len(it.types) for it in items)
    n_a = max(len(it.agent_item) for it in items)
    n_t = max(len(it.task_item) for it in items)
    n_h = max(it.hist_item.shape[1] for it in items)
    # Flattened texts for the embedding bags: one padding text first, then every item's text in order.
    all_texts = [(PAD,), *(tx for it in items for tx in it.texts)]
    all_owner = [(PAD,), *(ow for it in items for ow in it.tokwords)]
    all_words = [(PAD,), *(wx for it in items for wx in it.wtexts)]
    lens = np.fromiter((len(tx) for tx in all_texts), dtype=np.int64, count=len(all_texts))
    wlens = np.fromiter((len(tx) for tx in all_words), dtype=np.int64, count=len(all_words))
    total = int(lens.sum())
    flat = np.fromiter(itertools.chain.from_iterable(all_texts), dtype=np.int64, count=total)
    tok_word = np.fromiter(itertools.chain.from_iterable(all_owner), dtype=np.int64, count=total)
    tok_w = np.repeat((1.0 / lens).astype(np.float32), lens)
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]])
    wflat = np.fromiter(itertools.chain.from_iterable(all_words), dtype=np.int64, count=int(wlens.sum()))
    woffsets = np.concatenate([[0], np.cumsum(wlens)[:-1]])
    n_kinds = len(LEXSIM_KINDS)
    lexsim = np.zeros((b, n_a, n_t, n_h, n_kinds), dtype=np.float32)
    text_index = np.zeros((b, seq), dtype=np.int64)  # 0 = the padding row
    types = np.zeros((b, seq), dtype=np.int64)
    pos = np.full((b, seq), -1, dtype=np.int64)
    pad = np.ones((b, seq), dtype=bool)
    agent_item = np.zeros((b, n_a), dtype=np.int64)
    agent_mask = np.zeros((b, n_a), dtype=bool)
    task_item = np.zeros((b, n_t), dtype=np.int64)
    task_mask = np.zeros((b, n_t), dtype=bool)
    hist_item = np.zeros((b, n_a, n_h), dtype=np.int64)
    hist_mask = np.zeros((b, n_a, n_h), dtype=bool)
    hist_y = np.zeros((b, n_a, n_h), dtype=np.float32)
    pair = np.zeros((b, n_a, n_t, N_PAIR), dtype=np.float32)
    target = np.zeros((b, n_a, n_t), dtype=np.float32)
    listwise = np.zeros(b, dtype=bool)
    labels = [np.full(1, -1, dtype=np.int64)]
    n_text = 1
    for bi, it in enumerate(items):
        length = len(it.types)
        text_index[bi, :length] = np.arange(n_text, n_text + length)
        n_text += length
        types[bi, :length] = it.types
        pos[bi, :length] = it.pos
        pad[bi, :length] = False
        a, t = len(it.agent_item), len(it.task_item)
        agent_item[bi, :a] = it.agent_item
        agent_mask[bi, :a] = True
        task_item[bi, :t] = it.task_item
        task_mask[bi, :t] = True
        h = it.hist_item.shape[1]
        valid = it.hist_item >= 0
        hist_item[bi, :a, :h] = np.where(valid, it.hist_item, 0)
        hist_mask[bi, :a, :h] = valid
        hist_y[bi, :a, :h] = it.hist_y
        pair[bi, :a, :t] = it.pair
        lexsim[bi, :a, :t, :h] = it.lexsim
        if it.target is not None:
            target[bi, :a, :t] = it.target
        listwise[bi] = it.listwise
        labels.append(it.text_label if it.text_label is not None else np.full(length, -1, dtype=np.int64))
    arrays = {
        "flat": flat,
        "offsets": offsets,
        "text_index": text_index,
        "types": types,
        "pos": pos,
        "pad": pad,
        "agent_item": agent_item,
        "agent_mask": agent_mask,
        "task_item": task_item,
        "task_mask": task_mask,
        "hist_item": hist_item,
        "hist_mask": hist_mask,
        "hist_y": hist_y,
        "pair": pair,
        "lexsim": lexsim,
        "wflat": wflat,
        "tok_word": tok_word,
        "tok_w": tok_w,
        "woffsets": woffsets,
        "target": target,
        "listwise": listwise,
        "text_label": np.concatenate(labels),
    }
    return {k: torch.from_numpy(v) for k, v in arrays.items()}
