"""The coordinator network: a transformer over one decision's agents, past tasks and open tasks, and a pair head
that compares each open task with each agent's own past tasks.

Sequence layout (at most MAX_SEQ = 1024 items, one item per text, never one per word):
  for every agent slot s (<= 16 per block): the agent item (role + capability tags) at position s*64, then its
  past tasks at positions s*64+1 ... s*64+63 (the most recent MAX_HISTORY kept), each tagged success / failure;
  then the open tasks (no position: they form a set).
Each text is encoded on its own as the mean of its hashed word and character-trigram embeddings (the 10 000-row
vocabulary), so histories fit the sequence budget by construction. The encoder (pre-LN) contextualises all items.

The pair head scores (agent, task): 8 comparison heads look at every past task of the agent with a learned
similarity to the open task and add up the evidence of successes and failures; a few vocabulary-free lexical
features computed in the decision itself (TF-IDF history estimate, tag match, history size and success rate) go
in beside it; an MLP turns this into a success logit. More than 16 agents: decided in blocks of 16 agents, each
block seeing all tasks (in task chunks if the sequence would exceed 1024).

torch is imported here; only `neural.load` and training import this module.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from ansf_mcp.coordinator import baselines
from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.text import TfIdf, words
from ansf_mcp.coordinator.tokenizer import PAD, VOCAB_SIZE, encode, encode_words

MAX_SEQ = 1024
MAX_AGENTS = 16
SLOT_SPAN = 64
MAX_HISTORY = SLOT_SPAN - 1
N_LEX = 4
TYPE_AGENT, TYPE_OK, TYPE_FAIL, TYPE_TASK = 0, 1, 2, 3


@dataclass(frozen=True)
class Config:
    d_model: int = 512
    heads: int = 8
    layers: int = 6
    ff: int = 2048
    vocab: int = VOCAB_SIZE
    max_seq: int = MAX_SEQ
    cmp_heads: int = 8
    cmp_dim: int = 64
    pair_hidden: int = 128
    dropout: float = 0.1

    def as_dict(self) -> dict:
        return dict(self.__dict__)


SPEC = Config()
STUDENT = Config(d_model=128, heads=4, layers=2, ff=512, cmp_heads=4, cmp_dim=32, pair_hidden=64)


# ------------------------------------------------------------------------------------------------ features
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
    lex: np.ndarray  # (A, T, N_LEX)
    lexsim: np.ndarray  # (A, T, H) TF-IDF cosine of each open task with each past task of the agent
    target: np.ndarray | None = None  # (A, T)
    text_label: np.ndarray | None = (
        None  # (L, 2) simulated domain and difficulty level per text; -1 = unknown
    )


def pair_similarity(episode: Episode) -> list[np.ndarray]:
    """Per agent, the TF-IDF cosine (fitted on this decision's texts) of each past task with each open task:
    (history, tasks). Vocabulary-free: it only asks whether the same words recur."""
    task_docs = [words(t.description) for t in episode.tasks]
    hist_docs = [[words(h.task) for h in a.history[-MAX_HISTORY:]] for a in episode.agents]
    tfidf = TfIdf(task_docs + [d for docs in hist_docs for d in docs])
    tasks_m = tfidf.matrix(task_docs)
    return [
        (tfidf.matrix(docs) @ tasks_m.T).astype(np.float32)
        if docs
        else np.zeros((0, len(task_docs)), np.float32)
        for docs in hist_docs
    ]


def _history_from_sims(episode: Episode, sims: list[np.ndarray]) -> np.ndarray:
    """baselines.history computed from `pair_similarity` (same TF-IDF, same formula) instead of a second pass
    over the texts; identical whenever no agent has more than MAX_HISTORY past tasks."""
    p = np.full((len(episode.agents), len(episode.tasks)), baselines.PRIOR)
    for i, agent in enumerate(episode.agents):
        if not agent.history:
            continue
        sim = sims[i].astype(np.float64)
        sim = np.where(sim >= baselines.MIN_SIMILARITY, sim, 0.0)
        outcomes = np.array([1.0 if h.success else 0.0 for h in agent.history[-MAX_HISTORY:]])
        p[i] = (sim.T @ outcomes + baselines.PRIOR_WEIGHT * baselines.PRIOR) / (
            sim.sum(axis=0) + baselines.PRIOR_WEIGHT
        )
    return p


def lexical_features(episode: Episode, sims: list[np.ndarray] | None = None) -> np.ndarray:
    """Vocabulary-free comparisons made inside the decision itself: (agents, tasks, N_LEX)."""
    if sims is None or any(len(a.history) > MAX_HISTORY for a in episode.agents):
        hist = baselines.history(episode)
    else:
        hist = _history_from_sims(episode, sims)
    tag = baselines.tags(episode)
    n_a, n_t = hist.shape
    n_hist = np.array([len(a.history) for a in episode.agents], dtype=np.float64)
    rate = np.array(
        [(sum(h.success for h in a.history) + 1.0) / (len(a.history) + 2.0) for a in episode.agents],
        dtype=np.float64,
    )
    out = np.empty((n_a, n_t, N_LEX), dtype=np.float32)
    out[..., 0] = hist - 0.5
    out[..., 1] = tag - 0.5
    out[..., 2] = (np.log1p(n_hist) / 3.0)[:, None]
    out[..., 3] = (rate - 0.5)[:, None]
    return out


def prepare(
    episode: Episode,
    *,
    slots: np.ndarray | None = None,
    mapping: dict[str, str] | None = None,
    target: np.ndarray | None = None,
    lex: np.ndarray | None = None,
    text_label: np.ndarray | None = None,
    sims: list[np.ndarray] | None = None,
) -> Prepared:
    """Arrays of one block (<= 16 agents). `slots` permutes agent slots (training), `mapping` renames words."""
    n_a, n_t = len(episode.agents), len(episode.tasks)
    if n_a > MAX_AGENTS:
        raise ValueError(f"a block holds at most {MAX_AGENTS} agents, got {n_a}")
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
    hists = [a.history[-MAX_HISTORY:] for a in episode.agents]
    h_max = max((len(h) for h in hists), default=0)
    hist_item = np.full((n_a, max(h_max, 1)), -1, dtype=np.int64)
    hist_y = np.zeros((n_a, max(h_max, 1)), dtype=np.float32)
    for i, agent in enumerate(episode.agents):
        agent_item[i] = len(texts)
        add(" ".join([agent.role, *agent.capabilities]))
        types.append(TYPE_AGENT)
        pos.append(int(slots[i]) * SLOT_SPAN)
        for k, h in enumerate(hists[i]):
            hist_item[i, k] = len(texts)
            hist_y[i, k] = 1.0 if h.success else 0.0
            add(h.task)
            types.append(TYPE_OK if h.success else TYPE_FAIL)
            pos.append(int(slots[i]) * SLOT_SPAN + 1 + k)
    task_item = np.arange(len(texts), len(texts) + n_t, dtype=np.int64)
    for t in episode.tasks:
        add(t.description)
        types.append(TYPE_TASK)
        pos.append(-1)
    if len(texts) > MAX_SEQ:
        raise ValueError(f"block of {len(texts)} items exceeds the sequence budget {MAX_SEQ}")
    sims = pair_similarity(episode) if sims is None else sims
    lexsim = np.zeros((n_a, n_t, hist_item.shape[1]), dtype=np.float32)
    for i, sim in enumerate(sims):
        sim = sim[-MAX_HISTORY:]
        lexsim[i, :, : sim.shape[0]] = sim.T
    return Prepared(
        texts=texts,
        wtexts=wtexts,
        tokwords=tokwords,
        lexsim=lexsim,
        types=np.array(types, dtype=np.int64),
        pos=np.array(pos, dtype=np.int64),
        agent_item=agent_item,
        task_item=task_item,
        hist_item=hist_item,
        hist_y=hist_y,
        lex=lexical_features(episode) if lex is None else lex,
        target=target,
        text_label=text_label,
    )


@lru_cache(maxsize=100_000)
def encode_cached(text: str) -> tuple[list[int], list[int], list[int]]:
    """(ids, word id each token is attributed to, word-level ids) of a text; cached, since agents' histories
    recur across decisions. Callers must not mutate the lists."""
    ids, wids = encode(text), encode_words(text)
    return ids, _token_words(ids, wids), wids


def _token_words(ids: list[int], word_level: list[int]) -> list[int]:
    """For each token id of a text, the word-level id of the word it came from (word id first, then trigrams)."""
    out: list[int] = []
    wset = word_level
    k = -1
    for tok in ids:
        if k + 1 < len(wset) and tok == wset[k + 1]:
            k += 1
        out.append(wset[max(k, 0)])
    return out


def collate(items: list[Prepared]) -> dict[str, torch.Tensor]:
    """Pad a list of blocks into one batch."""
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
    lexsim = np.zeros((b, n_a, n_t, n_h), dtype=np.float32)
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
    lex = np.zeros((b, n_a, n_t, N_LEX), dtype=np.float32)
    target = np.zeros((b, n_a, n_t), dtype=np.float32)
    labels = [np.full((1, 2), -1, dtype=np.int64)]
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
        lex[bi, :a, :t] = it.lex
        lexsim[bi, :a, :t, :h] = it.lexsim
        if it.target is not None:
            target[bi, :a, :t] = it.target
        labels.append(
            it.text_label if it.text_label is not None else np.full((length, 2), -1, dtype=np.int64)
        )
    return {
        "flat": torch.from_numpy(flat),
        "offsets": torch.from_numpy(offsets),
        "text_index": torch.from_numpy(text_index),
        "types": torch.from_numpy(types),
        "pos": torch.from_numpy(pos),
        "pad": torch.from_numpy(pad),
        "agent_item": torch.from_numpy(agent_item),
        "agent_mask": torch.from_numpy(agent_mask),
        "task_item": torch.from_numpy(task_item),
        "task_mask": torch.from_numpy(task_mask),
        "hist_item": torch.from_numpy(hist_item),
        "hist_mask": torch.from_numpy(hist_mask),
        "hist_y": torch.from_numpy(hist_y),
        "lex": torch.from_numpy(lex),
        "lexsim": torch.from_numpy(lexsim),
        "wflat": torch.from_numpy(wflat),
        "tok_word": torch.from_numpy(tok_word),
        "tok_w": torch.from_numpy(tok_w),
        "woffsets": torch.from_numpy(woffsets),
        "target": torch.from_numpy(target),
        "text_label": torch.from_numpy(np.concatenate(labels)),
    }


# ------------------------------------------------------------------------------------------------ network
class CoordinatorNet(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.EmbeddingBag(cfg.vocab, d, mode="mean", padding_idx=PAD)
        self.position = nn.Embedding(cfg.max_seq, d)
        self.kind = nn.Embedding(4, d)
        # 1.0 for every word-level id met in training text (set by training, saved with the weights): how
        # familiar a text's words are. Unfamiliar text tells the network to lean on in-context comparison.
        self.register_buffer("seen", torch.zeros(cfg.vocab))
        self.familiar = nn.Parameter(torch.zeros(d))
        # Words never seen in training are embedded by a FROZEN random table (regenerated from a fixed seed, never
        # stored): they keep their identity (the same word gives the same vector, so in-context comparison works)
        # but carry no learned meaning that could be confidently wrong.
        gen = torch.Generator().manual_seed(20_260)
        self.register_buffer("unseen_table", torch.randn(cfg.vocab, d, generator=gen) * 0.3, persistent=False)
        layer = nn.TransformerEncoderLayer(
            d, cfg.heads, cfg.ff, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.skip_norm = nn.LayerNorm(d)
        c = cfg.cmp_heads * cfg.cmp_dim
        self.cmp_q = nn.Linear(d, c)
        self.cmp_k = nn.Linear(d, c)
        self.cmp_bias = nn.Parameter(torch.zeros(cfg.cmp_heads))
        self.cmp_lex = nn.Parameter(torch.full((cfg.cmp_heads,), 4.0))
        hdim = cfg.pair_hidden
        self.pair_agent = nn.Linear(d, hdim)
        self.pair_task = nn.Linear(d, hdim)
        self.pair_feat = nn.Linear(3 * cfg.cmp_heads + N_LEX + 2, hdim)
        self.bil_agent = nn.Linear(d, 64, bias=False)
        self.bil_task = nn.Linear(d, 64, bias=False)
        self.out1 = nn.Linear(hdim, hdim // 2)
        self.out2 = nn.Linear(hdim // 2, 1)
        # Training-only auxiliary heads: which (simulated) domain and difficulty level a text is about.
        self.aux_domain = nn.Linear(d, 8)
        self.aux_level = nn.Linear(d, 5)
        nn.init.normal_(self.embed.weight, std=0.3)
        nn.init.normal_(self.position.weight, std=0.02)

    def embed_texts(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        g = self.seen[batch["tok_word"]]
        w = batch["tok_w"]
        learned = nn.functional.embedding_bag(
            batch["flat"], self.embed.weight, batch["offsets"], mode="sum", per_sample_weights=w * g
        )
        frozen = nn.functional.embedding_bag(
            batch["flat"], self.unseen_table, batch["offsets"], mode="sum", per_sample_weights=w * (1.0 - g)
        )
        return learned + frozen

    def aux_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        texts = self.embed_texts(batch)
        lab = batch["text_label"]
        loss = texts.new_zeros(())
        for head, col in ((self.aux_domain, 0), (self.aux_level, 1)):
            keep = lab[:, col] >= 0
            if keep.any():
                loss = loss + nn.functional.cross_entropy(head(texts[keep]), lab[keep, col])
        return loss

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.cfg
        texts = self.embed_texts(batch)  # (n_text, d); row 0 = padding text
        fam = nn.functional.embedding_bag(
            batch["wflat"], self.seen.unsqueeze(1), batch["woffsets"], mode="mean"
        )
        fam = fam[batch["text_index"]]  # (B, L, 1)
        x = texts[batch["text_index"]]  # (B, L, d)
        x = x + self.kind(batch["types"]) + fam * self.familiar
        pos = batch["pos"]
        x = x + self.position(pos.clamp(min=0)) * (pos >= 0).unsqueeze(-1).to(x.dtype)
        # The pair head reads the contextualised items plus a normalised skip of the items themselves, so what a
        # text says reaches the comparison directly even while the deep encoder is still learning.
        x = self.norm(self.encoder(x, src_key_padding_mask=batch["pad"])) + self.skip_norm(x)
        bsz = x.shape[0]
        ar = torch.arange(bsz).view(bsz, 1)
        a = x[ar, batch["agent_item"]]  # (B, A, d)
        t = x[ar, batch["task_item"]]  # (B, T, d)
        n_a, n_h = batch["hist_item"].shape[1:]
        h = x[ar.view(bsz, 1, 1), batch["hist_item"]]  # (B, A, H, d)
        nh, dk = cfg.cmp_heads, cfg.cmp_dim
        q = self.cmp_q(t).view(bsz, -1, nh, dk)  # (B, T, nh, dk)
        k = self.cmp_k(h).view(bsz, n_a, n_h, nh, dk)
        s = torch.einsum("btnd,bahnd->bathn", q, k) / math.sqrt(dk) + self.cmp_bias
        s = s + batch["lexsim"].unsqueeze(-1) * self.cmp_lex
        w = torch.sigmoid(s) * batch["hist_mask"].unsqueeze(2).unsqueeze(-1).to(s.dtype)  # (B, A, T, H, nh)
        y = batch["hist_y"].unsqueeze(2).unsqueeze(-1)
        ok = (w * y).sum(3)
        fail = (w * (1.0 - y)).sum(3)
        evid = torch.cat([torch.log1p(ok), torch.log1p(fail), (ok + 1.0) / (ok + fail + 2.0) - 0.5], dim=-1)
        fam_task = fam[ar, batch["task_item"]].unsqueeze(1).expand(-1, n_a, -1, -1)  # (B, A, T, 1)
        hmask = batch["hist_mask"].to(x.dtype)
        fam_hist = (fam[ar.view(bsz, 1, 1), batch["hist_item"]].squeeze(-1) * hmask).sum(-1) / hmask.sum(
            -1
        ).clamp(min=1.0)
        fam_hist = fam_hist.view(bsz, n_a, 1, 1).expand(-1, -1, fam_task.shape[2], -1)
        feats = torch.cat([evid, batch["lex"], fam_task, fam_hist], dim=-1)
        z = self.pair_agent(a).unsqueeze(2) + self.pair_task(t).unsqueeze(1) + self.pair_feat(feats)
        z = nn.functional.gelu(z)
        z = nn.functional.gelu(self.out1(z))
        bil = torch.einsum("bae,bte->bat", self.bil_agent(a), self.bil_task(t)) / 8.0
        return self.out2(z).squeeze(-1) + bil  # (B, A, T) logits


def masked_bce(
    logits: torch.Tensor, batch: dict[str, torch.Tensor], target: torch.Tensor | None = None
) -> torch.Tensor:
    mask = (batch["agent_mask"].unsqueeze(2) & batch["task_mask"].unsqueeze(1)).to(logits.dtype)
    tgt = batch["target"] if target is None else target
    loss = nn.functional.binary_cross_entropy_with_logits(logits, tgt, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# ------------------------------------------------------------------------------------------------ inference
def blocks(episode: Episode) -> list[tuple[list[int], list[int]]]:
    """(agent indices, task indices) of each block: <= 16 agents, and tasks chunked to fit 1024 items."""
    n_a, n_t = len(episode.agents), len(episode.tasks)
    out = []
    for a0 in range(0, n_a, MAX_AGENTS):
        agents = list(range(a0, min(a0 + MAX_AGENTS, n_a)))
        used = sum(1 + min(len(episode.agents[i].history), MAX_HISTORY) for i in agents)
        room = max(MAX_SEQ - used, 1)
        for t0 in range(0, max(n_t, 1), room):
            out.append((agents, list(range(t0, min(t0 + room, n_t)))))
    return out


def predict(net: CoordinatorNet, episode: Episode) -> np.ndarray:
    """p(agent succeeds at task), (agents x tasks), block by block. Call under torch.inference_mode()."""
    n_a, n_t = len(episode.agents), len(episode.tasks)
    p = np.full((n_a, n_t), 0.5)
    if n_t == 0:
        return p
    sims = pair_similarity(episode)
    lex = lexical_features(episode, sims)
    for agents, tasks in blocks(episode):
        if not tasks:
            continue
        if len(agents) == n_a and len(tasks) == n_t:
            sub = episode
        else:
            sub = Episode.model_construct(
                id=episode.id,
                agents=[episode.agents[i] for i in agents],
                tasks=[episode.tasks[j] for j in tasks],
            )
        prep = prepare(sub, lex=lex[np.ix_(agents, tasks)], sims=[sims[i][:, tasks] for i in agents])
        logits = net(collate([prep]))[0]
        p[np.ix_(agents, tasks)] = torch.sigmoid(logits).double().numpy()
    return p
