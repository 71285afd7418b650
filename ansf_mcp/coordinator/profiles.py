"""The coordinator profiles: one record per network (config, training defaults, checkpoint file) and the
variants made from it at load time. Loading (`neural`), training (`lab.train`), the benchmarks and the docs all
read this registry; nothing else holds a profile's settings. No torch here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ansf_mcp.coordinator.tokenizer import VOCAB_SIZE

MAX_SEQ = 1024
# Where the shipped checkpoints live. Here, not in `neural`, so that listing them (`system_status`) imports neither
# torch nor numpy and scipy: an idle server stays small.
CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"


@dataclass(frozen=True)
class NetConfig:
    """The network's shape (read by `model.CoordinatorNet`)."""

    d_model: int = 512
    heads: int = 8
    layers: int = 6
    ff: int = 2048
    vocab: int = VOCAB_SIZE
    max_seq: int = MAX_SEQ
    cmp_heads: int = 8
    cmp_dim: int = 64
    pair_hidden: int = 128
    dropout: float = 0.0
    # Past tasks per agent the sequence holds (newest first; at most 63). Statistics over the longer history
    # reach the pair head through the pair features either way.
    seq_history: int = 63

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Training:
    """How `ansf train --profile NAME` reproduces the shipped checkpoint; every flag overrides one field."""

    steps: int
    batch: int
    lr: float
    embed_lr_mult: float
    aux_weight: float = 0.3
    # Share of each batch drawn from replayed git history (the rest: the broad synthetic family).
    replay_share: float = 0.5
    synthetic_episodes: int = 3000
    # Replayed windows drawn from each training repository.
    replay_per_repo: int = 60
    # Share of the simulated episodes from the broad family (the rest: the classic simulator).
    family_share: float = 0.5
    # Share of the family's episodes from its outcome-driven variant (skills visible only in outcomes).
    outcome_share: float = 0.0
    # Share of replayed windows whose texts go through text.style_blind (tasks on a board are not written in the
    # style of the agent who does them, so the network must not lean on style).
    style_blind_share: float = 0.0
    # Synthetic episodes with every word renamed to a nonce word: compare in context, do not memorise words.
    nonce_frac: float = 0.4
    max_agents: int = 12
    max_tasks: int = 16
    # Distillation from `teacher`: on simulated blocks the target becomes this mix of the teacher's
    # probabilities; on replayed blocks a cross-entropy against the teacher's choice over agents is added with
    # `replay_distill_weight` (what a larger network learned about who fits which task, not only who did it).
    distill_weight: float | None = None
    replay_distill_weight: float | None = None
    teacher: str | None = None
    # torch threads while training (CPU results depend on it).
    threads: int = 2


@dataclass(frozen=True)
class Network:
    name: str  # checkpoint stem: checkpoints/<name>.safetensors and <name>.json
    config: NetConfig
    training: Training
    # torch threads for one decision: one thread keeps a small model fast beside a busy neighbour process.
    inference_threads: int
    summary: str


@dataclass(frozen=True)
class Profile:
    name: str
    network: Network
    variant: str  # fp32 | int8 (dynamic quantization of Linear layers) | pruned20 (20 % smallest weights zeroed)
    summary: str = field(default="")


SPEC = Network(
    name="spec",
    config=NetConfig(seq_history=24),
    # Trained on a GPU (`--device cuda`, one H200): 92 s for the 2 500 steps of 16 blocks after 138 s of data with
    # `--workers 14` (FIELD-NOTES.md: 1.2-1.9 s a step on a 2-core CPU).
    training=Training(
        steps=2500, batch=16, lr=5e-4, embed_lr_mult=20.0, replay_share=0.5, replay_per_repo=200, max_agents=12,
        max_tasks=16, style_blind_share=0.5, threads=2,
    ),
    inference_threads=2,
    summary="the seed's spec network: d_model 512, 8 heads, 6 layers, 1024 items, 10 000-id vocabulary, 16 agents",
)
STUDENT = Network(
    name="student",
    config=NetConfig(
        d_model=128, heads=4, layers=2, ff=512, cmp_heads=4, cmp_dim=32, pair_hidden=64, seq_history=24
    ),
    training=Training(
        steps=5000, batch=16, lr=2e-3, embed_lr_mult=5.0, replay_share=0.5, replay_per_repo=200, max_agents=12,
        max_tasks=16, style_blind_share=0.5, threads=2,
    ),
    inference_threads=1,
    summary="compact network (128/4/2) with the same inputs, trained longer on more replayed history (95 repositories)",
)
NETWORKS = {n.name: n for n in (SPEC, STUDENT)}
PROFILES = {
    p.name: p
    for p in (
        Profile("spec-fp32", SPEC, "fp32", "spec weights, float32"),
        Profile("spec-int8", SPEC, "int8", "spec weights, Linear layers dynamically quantized to int8 at load"),
        Profile("spec-pruned20", SPEC, "pruned20", "spec weights with 20 % of each matrix zeroed at load"),
        Profile("student", STUDENT, "fp32", "compact network, float32"),
    )
}
# The profile the measured table supports (docs/MODEL.md); `auto` starts from it.
DEFAULT_PROFILE = "student"


def network_of(name: str) -> Network:
    """A network by its own name or by any of its profiles' names (spec-int8 -> spec)."""
    if name in NETWORKS:
        return NETWORKS[name]
    if name in PROFILES:
        return PROFILES[name].network
    raise KeyError(f"unknown profile {name!r}; profiles: {', '.join(dict.fromkeys([*PROFILES, *NETWORKS]))}")
