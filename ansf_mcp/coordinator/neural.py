"""The learned coordinator's loading point. No trained checkpoint ships yet (issue 3), and we say so."""

from __future__ import annotations

from ansf_mcp.coordinator.strategies import ModelUnavailable, NeuralEstimator


def load(model: str | None = None) -> NeuralEstimator:
    raise ModelUnavailable("no trained neural checkpoint is shipped yet (the learned coordinator is issue 3)")
