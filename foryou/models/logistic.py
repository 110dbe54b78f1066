"""Logistic regression (torch; no I/O): the light ranker, the safety classifiers and RealGraph.

`LogisticRegression` standardises its inputs with stored mean/std buffers, then one Linear layer.
`fit_logistic` fits it full-batch with L-BFGS (strong-Wolfe line search) on the weighted binary
cross-entropy plus an L2 penalty on the weights (not the bias). The parameters start at zero and
the batch is the whole data set, so a fit is deterministic on CPU for a given thread count; `seed`
only seeds torch for callers that want it. Inputs are standardised once up front, so each L-BFGS
function evaluation is one (rows × features) matmul forward and backward.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class LogisticRegression(nn.Module):
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
        return self.linear((x - self.mean) / self.std)

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
    p = np.concatenate(out) if out else np.empty((0, module.n_outputs), np.float32)
    return p[:, 0] if module.n_outputs == 1 else p


def fit_logistic(x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None, *, l2: float = 1e-4,
                 epochs: int = 100, seed: int = 0) -> tuple[LogisticRegression, dict]:
    """Fit σ(W·standardise(x) + b) to y ∈ [0, 1] (rows,) or (rows, outputs) by full-batch L-BFGS.

    Loss: Σ wᵢ·BCEᵢ / Σ wᵢ (averaged over outputs) + l2/2 · ‖W‖² on the standardised scale.
    `epochs` is the L-BFGS iteration budget (each iteration is one or a few full passes).
    Returns (module in eval mode, info: rows, iterations, evaluations, loss, seconds).
    """
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    y = y[:, None] if y.ndim == 1 else y
    n, d = x.shape
    module = LogisticRegression(d, y.shape[1])
    if n:
        mean = x.mean(0, dtype=np.float64)
        std = x.std(0, dtype=np.float64)
        std = np.where(std > 1e-8, std, 1.0)  # constant columns: leave unscaled (their weight stays ~0)
        module.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
        module.std.copy_(torch.from_numpy(std.astype(np.float32)))
    info = {"rows": int(n), "iterations": 0, "evaluations": 0, "loss": float("nan")}
    if n == 0:
        module.eval()
        return module, {**info, "seconds": round(time.perf_counter() - t0, 3)}
    xs = (torch.from_numpy(x) - module.mean) / module.std
    yt = torch.from_numpy(y)
    w = torch.ones(n) if sample_weight is None else torch.from_numpy(np.asarray(sample_weight, np.float32))
    w = (w / w.sum().clamp_min(1e-12))[:, None]
    lin = module.linear
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=epochs, history_size=20,
                            tolerance_grad=1e-7, tolerance_change=1e-10, line_search_fn="strong_wolfe")
    evals = 0

    def objective() -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(lin(xs), yt, reduction="none")
        return (bce * w).sum() / y.shape[1] + 0.5 * l2 * (lin.weight ** 2).sum()

    def closure():
        nonlocal evals
        evals += 1
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        loss = float(objective())
    state = opt.state[next(iter(lin.parameters()))]
    module.eval()
    info.update(iterations=int(state.get("n_iter", 0)), evaluations=evals, loss=round(loss, 6),
                seconds=round(time.perf_counter() - t0, 3))
    return module, info
