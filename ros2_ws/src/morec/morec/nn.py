"""Shared torch building blocks: stacked (ensemble) linear layers and input scalers.

A stacked layer holds K independent weight sets and applies them with one batched matmul, so an
ensemble of K members, or K discriminator snapshots, costs one kernel per layer instead of K.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class StackedLinear(nn.Module):
    """K independent linear layers: x [K, B, in] -> [K, B, out]."""

    def __init__(self, k: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(k, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(k, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class StackedMLP(nn.Module):
    """K MLPs of the same shape evaluated together; `out_activation` also follows the last layer."""

    def __init__(self, k: int, sizes: list[int], activation: type[nn.Module], out_activation: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(StackedLinear(k, n_in, n_out))
            if i < len(sizes) - 2 or out_activation:
                layers.append(activation())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def linear_layers(self) -> list[StackedLinear]:
        return [m for m in self.net if isinstance(m, StackedLinear)]


class Standardizer(nn.Module):
    """x -> (x - mean) / std with statistics fitted on data (std floored so constant inputs stay finite)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: np.ndarray) -> "Standardizer":
        self.mean.copy_(torch.as_tensor(x.mean(0), dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.maximum(x.std(0), 1e-6), dtype=torch.float32))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MinMaxScaler(nn.Module):
    """Affine map of [low, high] per dimension onto [-limit, limit] (values outside map outside)."""

    def __init__(self, dim: int, limit: float):
        super().__init__()
        self.limit = limit
        self.register_buffer("low", -torch.ones(dim))
        self.register_buffer("high", torch.ones(dim))

    def fit(self, low: np.ndarray, high: np.ndarray) -> "MinMaxScaler":
        low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        span = np.maximum(high - low, 1e-6)
        self.low.copy_(torch.as_tensor(low, dtype=torch.float32))
        self.high.copy_(torch.as_tensor(low + span, dtype=torch.float32))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale(x - self.low) - self.limit

    def scale(self, dx: torch.Tensor) -> torch.Tensor:
        """Scale a difference (no offset): used for s' - s."""
        return dx * (2.0 * self.limit / (self.high - self.low))
