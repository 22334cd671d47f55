"""Small models defined in code (no downloads), shared by the examples.

Model classes live at module top level so that every model-copy process can
import them by name.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyMLP(nn.Module):
    """A 3-layer MLP on 64 features."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallConv(nn.Module):
    """A small conv net for 3x32x32 images."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class TwoTower(nn.Module):
    """A multi-input model: a query and a document vector, scored together."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.query = nn.Linear(32, 16)
        self.doc = nn.Linear(48, 16)

    def forward(self, query: torch.Tensor, doc: torch.Tensor) -> torch.Tensor:
        return (self.query(query) * self.doc(doc)).sum(dim=1)
