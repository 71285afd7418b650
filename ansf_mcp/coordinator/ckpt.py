"""Checkpoint files: safetensors weights (2-D weights int8 with a per-row scale) and a JSON card with the checksum.

``NAME.safetensors`` holds, for every large matrix ``W``, ``W`` as int8 and ``W.__scale`` (float32, one per row:
``W ≈ int8 * scale``); small tensors (biases, norms) stay float32. ``NAME.json`` holds the network config, the
SHA-256 and size of the weights file, and how it was trained. The loader refuses a file whose checksum differs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

FORMAT = "ansf-coordinator/1"
SCALE_SUFFIX = ".__scale"
MIN_QUANT_NUMEL = 4096


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def quantize_state(state: dict) -> dict:
    import torch

    out = {}
    for name, t in state.items():
        t = t.detach().to("cpu")
        if t.is_floating_point() and t.dim() == 2 and t.numel() >= MIN_QUANT_NUMEL:
            scale = t.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
            out[name] = torch.round(t / scale).clamp(-127, 127).to(torch.int8).contiguous()
            out[name + SCALE_SUFFIX] = scale.to(torch.float32).contiguous()
        else:
            out[name] = t.to(torch.float32).contiguous() if t.is_floating_point() else t.contiguous()
    return out


def dequantize_state(stored: dict) -> dict:
    import torch

    out = {}
    for name, t in stored.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = stored.get(name + SCALE_SUFFIX)
        out[name] = t.to(torch.float32) * scale if scale is not None else t
    return out


def save(state: dict, directory: Path, name: str, card: dict) -> tuple[Path, Path]:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{name}.safetensors"
    save_file(quantize_state(state), str(weights), metadata={"format": FORMAT})
    card = dict(
        card, format=FORMAT, weights=weights.name, sha256=sha256(weights), bytes=weights.stat().st_size
    )
    meta = directory / f"{name}.json"
    meta.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return weights, meta
