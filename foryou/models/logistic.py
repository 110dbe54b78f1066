"""Logistic regression (torch; no I/O): the light ranker and RealGraph.

`LogisticRegression` standardises its inputs with stored mean/std buffers, then one Linear layer.
It is fitted by `foryou.training.logistic.fit_logistic`; serving rebuilds it from the registry's
tensors with `logistic_from_tensors`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class LogisticRegression(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_features: int, n_outputs: int = 1):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.linear = nn.Linear(n_features, n_outputs)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    @property
    def n_features(self) -> int:
        return self.linear.in_features

    @property
    def n_outputs(self) -> int:
        return self.linear.out_features

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(rows, n_outputs) log-odds."""
        out: torch.Tensor = self.linear((x - self.mean) / self.std)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(rows, n_outputs) probabilities."""
        return torch.sigmoid(self.logits(x))

    def raw_coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """(weight (n_outputs, n_features), bias (n_outputs,)) on the unstandardised inputs:
        logit = x · weightᵀ + bias (standardisation folded in)."""
        weight, std, mean = self.linear.weight.detach().double(), self.std.double(), self.mean.double()
        w = weight / std
        return w.numpy(), (self.linear.bias.detach().double() - (w * mean).sum(1)).numpy()


def logistic_from_tensors(tensors: dict[str, torch.Tensor]) -> LogisticRegression:
    """Rebuild a module from its state dict (as stored in the registry); shapes come from the tensors."""
    n_outputs, n_features = tensors["linear.weight"].shape
    module = LogisticRegression(int(n_features), int(n_outputs))
    module.load_state_dict(tensors)
    module.eval()
    return module


@torch.no_grad()
def predict_proba(module: LogisticRegression, x: np.ndarray, batch: int = 262_144) -> np.ndarray:
    """Probabilities as numpy: (rows,) for one output, else (rows, n_outputs)."""
    module.eval()
    x = np.asarray(x, dtype=np.float32)
    out = [module(torch.from_numpy(x[i:i + batch])).numpy() for i in range(0, len(x), batch)]
    p: np.ndarray = np.concatenate(out) if out else np.empty((0, module.n_outputs), np.float32)
    return p[:, 0] if module.n_outputs == 1 else p
