"""Loading the learned coordinator: shipped checkpoints, verified by checksum, one load per process per profile.

Profiles (docs/MODEL.md):
  spec-fp32      spec network (512/8/6), shipped int8-per-row weights dequantized to float32 at load
  spec-int8      the same weights with torch dynamic int8 quantization of the Linear layers
  spec-pruned20  spec-fp32 with 20 % of each weight matrix's smallest-magnitude entries zeroed at load
  student        compact network (128/4/2) distilled from the spec network
``None`` picks DEFAULT_PROFILE, the one the measured table supports.

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

from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.strategies import ModelUnavailable, NeuralEstimator

log = logging.getLogger("ansf.coordinator.neural")

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
# The profile the benchmark table supports (docs/MODEL.md): same value ratio as spec within the CI, fastest
# 16x64 latency, smallest memory.
DEFAULT_PROFILE = "student"
PROFILES = {
    "spec-fp32": ("spec", "fp32"),
    "spec-int8": ("spec", "int8"),
    "spec-pruned20": ("spec", "pruned20"),
    "student": ("student", "fp32"),
}
PRUNE_AMOUNT = 0.2

_cache: dict[tuple[str, str], NeuralEstimator] = {}
_lock = threading.Lock()


class TorchEstimator:
    """A loaded network behind the NeuralEstimator protocol. Confidence is left to the solver's margin."""

    def __init__(self, name: str, net, card: dict):
        self.name = name
        self.net = net
        self.card = card

    def estimate(self, episode: Episode) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        from ansf_mcp.coordinator import model as M

        with torch.inference_mode():
            return M.predict(self.net, episode), None


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


def load_file(weights: Path, variant: str = "fp32", name: str | None = None) -> TorchEstimator:
    """Load one checkpoint file as fp32, int8 (dynamic quantization) or pruned20; no caching."""
    weights = Path(weights)
    card = _read_card(weights)
    try:
        import torch
        from safetensors.torch import load_file as st_load

        from ansf_mcp.coordinator import model as M
        from ansf_mcp.coordinator.ckpt import dequantize_state
    except ImportError as exc:  # torch is an optional extra
        raise ModelUnavailable(f"the neural coordinator needs torch and safetensors: {exc}") from exc
    try:
        stored = st_load(str(weights))
    except Exception as exc:  # safetensors raises several types on garbage
        raise ModelUnavailable(
            f"checkpoint {weights.name} is not a readable safetensors file: {exc}"
        ) from exc
    try:
        cfg = M.Config(**card["config"])
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
    return TorchEstimator(name or f"{weights.stem}-{variant}", net, card)


def _trim_heap() -> None:
    """Hand the loader's temporary buffers back to the OS (glibc keeps freed memory otherwise)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def load(model: str | None = None, *, directory: Path | None = None) -> NeuralEstimator:
    """The estimator of a profile (None: DEFAULT_PROFILE), loaded once per process and profile."""
    profile = model or DEFAULT_PROFILE
    if profile not in PROFILES:
        raise ModelUnavailable(f"unknown model {profile!r}; profiles: {', '.join(PROFILES)}")
    base, variant = PROFILES[profile]
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
        torch.set_num_threads(min(torch.get_num_threads(), 4))
        estimator = load_file(root / f"{base}.safetensors", variant, name=profile)
        _cache[key] = estimator
        log.info("loaded coordinator model %s from %s", profile, root)
        return estimator


def loaded_profiles() -> list[str]:
    """Profiles loaded in this process (for `ansf status` / system_status)."""
    return sorted({profile for _, profile in _cache})
