"""Loading the learned coordinator and running it: shipped checkpoints, verified by checksum, one load per
process per profile (the profiles and their variants: `profiles.PROFILES`; ``None`` picks DEFAULT_PROFILE).

torch is imported only inside this loading path; strategies, baselines and the server import it never.
Any problem with a checkpoint (missing, empty, garbage, truncated, checksum mismatch, wrong shapes) raises
ModelUnavailable with the reason.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np

from ansf_mcp.coordinator import combiner
from ansf_mcp.coordinator.combiner import Combiner
from ansf_mcp.coordinator.episode import Episode, ModelUnavailable
from ansf_mcp.coordinator.profiles import CHECKPOINT_DIR, DEFAULT_PROFILE, PROFILES

log = logging.getLogger("ansf.coordinator.neural")

PRUNE_AMOUNT = 0.2

_cache: dict[tuple[str, str], TorchEstimator] = {}
_lock = threading.Lock()


class TorchEstimator:
    """A loaded network and the combiner fitted for it (combiner.py): p(agent succeeds at task) for an episode.
    Confidence is left to the solver's margin."""

    def __init__(self, name: str, net, card: dict, threads: int = 1, fitted: Combiner | None = None):
        self.name = name
        self.net = net
        self.card = card
        self.threads = threads
        self.combiner = fitted

    def estimate_network(self, episode: Episode, comparisons=None) -> np.ndarray:
        """The network alone, before the combiner."""
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            return predict(self.net, episode, comparisons)

    def estimate(self, episode: Episode, comparisons=None) -> np.ndarray:
        from ansf_mcp.coordinator.comparisons import Comparisons

        cmp = comparisons or Comparisons(episode)
        p = self.estimate_network(episode, cmp)
        if self.combiner is None or p.size == 0:
            return p
        return self.combiner.apply(combiner.inputs(episode, cmp, p))


def predict(net, episode: Episode, comparisons=None) -> np.ndarray:
    """p(agent succeeds at task), (agents x tasks), block by block. Call under torch.inference_mode()."""
    import torch

    from ansf_mcp.coordinator import features as F
    from ansf_mcp.coordinator.comparisons import Comparisons

    n_a, n_t = len(episode.agents), len(episode.tasks)
    p = np.full((n_a, n_t), 0.5)
    if n_t == 0:
        return p
    cmp = comparisons or Comparisons(episode)
    pair = F.pair_features(episode, cmp)
    keep = net.cfg.seq_history
    order, group = F.canonical_order(episode)
    for agents, tasks in F.blocks(episode, keep, order):
        if tasks:
            prep = F.prepare(episode, cmp=cmp, pair=pair, agents=agents, tasks=tasks, seq_history=keep)
            logits = net(F.collate([prep]))[0]
            p[np.ix_(agents, tasks)] = torch.sigmoid(logits).double().numpy()
    # Equal agents still sit in different slots: they get the mean of their rows, so they tie exactly.
    if len(set(group)) < n_a:
        ids = np.asarray(group)
        for g in np.unique(ids):
            rows = np.flatnonzero(ids == g)
            if len(rows) > 1:
                p[rows] = p[rows].mean(axis=0)
    return p


def _read_card(weights: Path) -> dict:
    meta = weights.with_suffix(".json")
    if not weights.is_file():
        raise ModelUnavailable(f"checkpoint {weights.name} is missing from {weights.parent}")
    if not meta.is_file():
        raise ModelUnavailable(f"checkpoint card {meta.name} is missing (cannot verify {weights.name})")
    try:
        card = json.loads(meta.read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"checkpoint card {meta.name} is unreadable: {exc}") from exc
    if not isinstance(card, dict) or "sha256" not in card or "config" not in card:
        raise ModelUnavailable(f"checkpoint card {meta.name} lacks sha256/config")
    size = weights.stat().st_size
    if size == 0:
        raise ModelUnavailable(f"checkpoint {weights.name} is empty")
    if card.get("bytes") not in (None, size):
        raise ModelUnavailable(
            f"checkpoint {weights.name} is {size} bytes, its card says {card['bytes']} (truncated or replaced)"
        )
    from ansf_mcp.coordinator.ckpt import sha256

    digest = sha256(weights)
    if digest != card["sha256"]:
        raise ModelUnavailable(f"checkpoint {weights.name} fails its checksum (sha256 {digest[:12]}…)")
    return card


def load_file(
    weights: Path, variant: str = "fp32", name: str | None = None, threads: int = 1, *, combine: bool = True
) -> TorchEstimator:
    """Load one checkpoint file as fp32, int8 (dynamic quantization) or pruned20, with the combiner fitted for it
    when there is one beside it (`combine=False`: the network alone); no caching."""
    weights = Path(weights)
    card = _read_card(weights)
    fitted = combiner.load(combiner.path_for(weights), card["sha256"]) if combine else None
    try:
        import torch
        from safetensors.torch import load_file as st_load

        from ansf_mcp.coordinator import model as M
        from ansf_mcp.coordinator.ckpt import dequantize_state
        from ansf_mcp.coordinator.profiles import NetConfig
    except ImportError as exc:  # torch is an optional extra
        raise ModelUnavailable(f"the neural coordinator needs torch and safetensors: {exc}") from exc
    try:
        stored = st_load(str(weights))
    except Exception as exc:  # safetensors raises several types on garbage
        raise ModelUnavailable(
            f"checkpoint {weights.name} is not a readable safetensors file: {exc}"
        ) from exc
    try:
        cfg = NetConfig(**card["config"])
        net = M.CoordinatorNet(cfg)
        net.load_state_dict(dequantize_state(stored), strict=True)
    except Exception as exc:
        raise ModelUnavailable(f"checkpoint {weights.name} does not fit the network: {exc}") from exc
    del stored
    net.eval()
    if variant == "pruned20":
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, torch.nn.Linear) and module.weight.numel() >= 4096:
                    w = module.weight
                    k = int(PRUNE_AMOUNT * w.numel())
                    threshold = w.abs().flatten().kthvalue(k).values
                    w.mul_((w.abs() > threshold).to(w.dtype))
            for layer in net.encoder.layers:  # the attention's packed input projection is a Parameter
                w = layer.self_attn.in_proj_weight
                k = int(PRUNE_AMOUNT * w.numel())
                w.mul_((w.abs() > w.abs().flatten().kthvalue(k).values).to(w.dtype))
    elif variant == "int8":
        # torch 2.13: a dynamically quantized encoder under inference_mode crashes on the MHA fast path.
        torch.backends.mha.set_fastpath_enabled(False)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
            net = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
    elif variant != "fp32":
        raise ModelUnavailable(f"unknown variant {variant!r}")
    _trim_heap()
    return TorchEstimator(name or f"{weights.stem}-{variant}", net, card, threads, fitted)


def _trim_heap() -> None:
    """Hand the loader's temporary buffers back to the OS (glibc keeps freed memory otherwise)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def load(model: str | None = None, *, directory: Path | None = None) -> TorchEstimator:
    """The estimator of a profile (None: DEFAULT_PROFILE), loaded once per process and profile."""
    profile = model or DEFAULT_PROFILE
    if profile not in PROFILES:
        raise ModelUnavailable(f"unknown model {profile!r}; profiles: {', '.join(PROFILES)}")
    record = PROFILES[profile]
    root = Path(directory) if directory is not None else CHECKPOINT_DIR
    key = (str(root), profile)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        try:
            import torch
        except ImportError as exc:
            raise ModelUnavailable(f"the neural coordinator needs torch: {exc}") from exc
        del torch  # imported to fail early with a clear reason
        estimator = load_file(
            root / f"{record.network.name}.safetensors",
            record.variant,
            name=profile,
            threads=record.network.inference_threads,
        )
        _cache[key] = estimator
        log.info("loaded coordinator model %s from %s", profile, root)
        return estimator


def unload() -> list[str]:
    """Drop every loaded estimator (the critical phase asks for its memory back); returns the profiles dropped.
    The next neural call loads again."""
    with _lock:
        dropped = sorted({profile for _, profile in _cache})
        _cache.clear()
    if dropped:
        _trim_heap()
        log.warning("released coordinator model(s) %s under memory pressure", ", ".join(dropped))
    return dropped


def loaded_profiles() -> list[str]:
    """Profiles loaded in this process (for `ansf status` / system_status)."""
    return sorted({profile for _, profile in _cache})
