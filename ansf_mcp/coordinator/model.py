"""The coordinator network: a transformer over one decision's agents, past tasks and open tasks, and a pair head
that compares each open task with each agent's own past tasks. Inputs are built in `features.py`.

Each text is encoded on its own as the mean of its hashed word and character-trigram embeddings (the 10 000-row
vocabulary), so histories fit the sequence budget by construction. The pre-LN encoder contextualises all items.
The pair head scores (agent, task): comparison heads look at every past task of the agent with a learned
similarity (steered by the word and character cosines of the two texts) and add up the evidence of successes and
failures; the pair features of `features.PAIR_FEATURES` go in beside it; an MLP and a bilinear term turn this
into a success logit.

torch is imported here; only `neural` (loading) and the lab (training) import this module.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ansf_mcp.coordinator.features import LEXSIM_KINDS, N_PAIR
from ansf_mcp.coordinator.profiles import NetConfig
from ansf_mcp.coordinator.tokenizer import PAD

N_AUX_DOMAINS = 8


Config = NetConfig  # the network's shape lives in the profile registry (no torch there)


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
        self.cmp_lex = nn.Parameter(torch.full((len(LEXSIM_KINDS), cfg.cmp_heads), 4.0))
        hdim = cfg.pair_hidden
        self.pair_agent = nn.Linear(d, hdim)
        self.pair_task = nn.Linear(d, hdim)
        self.pair_feat = nn.Linear(3 * cfg.cmp_heads + N_PAIR + 2, hdim)
        self.bil_agent = nn.Linear(d, 64, bias=False)
        self.bil_task = nn.Linear(d, 64, bias=False)
        self.out1 = nn.Linear(hdim, hdim // 2)
        self.out2 = nn.Linear(hdim // 2, 1)
        # A direct linear path from the pair features to the logit: what a logistic regression on them would
        # find is reachable from the first step; the deep paths add to it.
        self.pair_skip = nn.Linear(N_PAIR, 1)
        # Training-only auxiliary head: which (simulated) domain a text is about.
        self.aux_domain = nn.Linear(d, N_AUX_DOMAINS)
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
        lab = batch["text_label"]
        keep = lab >= 0
        if not bool(keep.any()):
            return lab.new_zeros((), dtype=torch.float32)
        texts = self.embed_texts(batch)
        return nn.functional.cross_entropy(self.aux_domain(texts[keep]), lab[keep])

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
        pad = batch["pad"]
        # Without padding, no mask: torch's masked softmax on the CPU costs several times a plain one, and an
        # all-false mask changes nothing.
        x = self.norm(self.encoder(x, src_key_padding_mask=pad if bool(pad.any()) else None)) + self.skip_norm(x)
        bsz = x.shape[0]
        ar = torch.arange(bsz, device=x.device).view(bsz, 1)
        a = x[ar, batch["agent_item"]]  # (B, A, d)
        t = x[ar, batch["task_item"]]  # (B, T, d)
        n_a, n_h = batch["hist_item"].shape[1:]
        h = x[ar.view(bsz, 1, 1), batch["hist_item"]]  # (B, A, H, d)
        nh, dk = cfg.cmp_heads, cfg.cmp_dim
        q = self.cmp_q(t).view(bsz, -1, nh, dk)  # (B, T, nh, dk)
        k = self.cmp_k(h).view(bsz, n_a, n_h, nh, dk)
        s = torch.einsum("btnd,bahnd->bathn", q, k) / math.sqrt(dk) + self.cmp_bias
        s = s + batch["lexsim"] @ self.cmp_lex  # (B, A, T, H, kinds) @ (kinds, nh)
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
        feats = torch.cat([evid, batch["pair"], fam_task, fam_hist], dim=-1)
        z = self.pair_agent(a).unsqueeze(2) + self.pair_task(t).unsqueeze(1) + self.pair_feat(feats)
        z = nn.functional.gelu(z)
        z = nn.functional.gelu(self.out1(z))
        bil = torch.einsum("bae,bte->bat", self.bil_agent(a), self.bil_task(t)) / 8.0
        skip = self.pair_skip(batch["pair"]).squeeze(-1)
        return self.out2(z).squeeze(-1) + bil + skip  # (B, A, T) logits


def loss(logits: torch.Tensor, batch: dict[str, torch.Tensor], target: torch.Tensor | None = None) -> torch.Tensor:
    """Per block: binary cross-entropy against p* (simulated); for replayed history ("which agent did it"), the
    mean of a softmax cross-entropy over the block's agents for each task (who fits best) and the binary
    cross-entropy of each pair against the author indicator. The second keeps the scale of the probabilities
    comparable across tasks, which the solver's sum needs: a softmax alone leaves each task's offset free.
    Mean over blocks."""
    pair_mask = batch["agent_mask"].unsqueeze(2) & batch["task_mask"].unsqueeze(1)
    tgt = batch["target"] if target is None else target
    mask = pair_mask.to(logits.dtype)
    bce = nn.functional.binary_cross_entropy_with_logits(logits, tgt, reduction="none")
    bce = (bce * mask).sum((1, 2)) / mask.sum((1, 2)).clamp(min=1.0)
    masked = logits.masked_fill(~pair_mask, -1e4)
    logp = torch.log_softmax(masked, dim=1)  # over agents
    has_author = (tgt * mask).sum(1) > 0  # (B, T)
    ce = -(logp * tgt * mask).sum(1)
    ce = (ce * has_author).sum(1) / has_author.sum(1).clamp(min=1)
    listwise = batch["listwise"]
    return torch.where(listwise, 0.5 * (ce + bce), bce).mean()


def listwise_distill(logits: torch.Tensor, teacher_logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per task of a replayed block, the cross-entropy of the network's softmax over agents against the
    teacher's; mean over tasks, then over replayed blocks (0 when the batch holds none)."""
    pair_mask = batch["agent_mask"].unsqueeze(2) & batch["task_mask"].unsqueeze(1)
    soft = torch.softmax(teacher_logits.masked_fill(~pair_mask, -1e4), dim=1)
    logp = torch.log_softmax(logits.masked_fill(~pair_mask, -1e4), dim=1)
    ce = -(soft * logp * pair_mask).sum(1)  # (B, T)
    tasks = batch["task_mask"].to(logits.dtype)
    per_block = (ce * tasks).sum(1) / tasks.sum(1).clamp(min=1.0)
    replayed = batch["listwise"].to(logits.dtype)
    return (per_block * replayed).sum() / replayed.sum().clamp(min=1.0)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
