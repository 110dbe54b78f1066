"""Export of the heavy ranker for serving runtimes other than eager torch (ONNX Runtime).

The engine serves the heavy ranker through ONNX Runtime (falling back to eager torch if that fails):
`foryou bench ranker --onnx` measured it faster than eager fp32 at equal AUC (BENCHMARKS.md).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from foryou.models.heavy_ranker import HeavyRankerNet
from foryou.models.phoenix import PhoenixRanker


def to_onnx(net: HeavyRankerNet) -> bytes:
    """The calibrated network as an ONNX graph with a dynamic batch axis (inputs x, topic, ids)."""
    n_features = net.mean.shape[0]
    args = (torch.zeros(2, n_features), torch.zeros(2, dtype=torch.int64), torch.zeros((2, 2), dtype=torch.int64))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # the TorchScript exporter writes to a file-like object too (torch's stub names only paths)
        torch.onnx.export(net.eval(), args, buf,  # type: ignore[arg-type]
                          input_names=["x", "topic", "ids"], output_names=["p"],
                          dynamic_axes={name: {0: "n"} for name in ("x", "topic", "ids", "p")}, dynamo=False)
    return buf.getvalue()


def runtime_session(model: bytes, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session of `model` on `threads` threads (ValueError where it is not installed)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ValueError("ONNX Runtime is not installed (pip install onnxruntime)") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = threads
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


class OnnxHeavyRanker:
    """An ONNX Runtime session with the heavy ranker's call signature (numpy in, numpy out)."""

    def __init__(self, model: bytes, threads: int = 1):
        self.session = runtime_session(model, threads)

    def __call__(self, x: np.ndarray, topic: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """`ids` = vocabulary rows (HeavyRankerNet.vocab_index), as the eager network takes them."""
        feed = {"x": x, "topic": topic.astype(np.int64), "ids": ids.astype(np.int64)}
        names = {i.name for i in self.session.get_inputs()}  # an id-less network has no "ids" input
        p: np.ndarray = self.session.run(None, {k: v for k, v in feed.items() if k in names})[0]
        return p


class _PhoenixProbabilities(torch.nn.Module):
    def __init__(self, model: PhoenixRanker):
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model.probabilities(*inputs)


def phoenix_to_onnx(model: PhoenixRanker, input_names: Sequence[str]) -> bytes:
    """Phoenix's calibrated probabilities as an ONNX graph; batch, history and candidate axes dynamic."""
    b, h, m = 2, 3, 4
    args = (torch.zeros(b, dtype=torch.int64), torch.zeros(b, h, dtype=torch.int64),
            torch.zeros(b, h, dtype=torch.int64), torch.zeros(b, h, dtype=torch.int64),
            torch.zeros(b, h, model.actions.in_features), torch.zeros(b, h), torch.zeros(b, h),
            torch.zeros(b, m, dtype=torch.int64), torch.zeros(b, m, dtype=torch.int64),
            torch.zeros(b, m, dtype=torch.int64), torch.zeros(b, m, model.n_context))
    axes: dict[str, dict[int, str]] = {}
    for name in input_names:
        axes[name] = {0: "b"} if name == "user" else {0: "b", 1: "h" if name.startswith("hist_") else "m"}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_PhoenixProbabilities(model.eval()), args, buf,  # type: ignore[arg-type]
                          input_names=list(input_names), output_names=["p"],
                          dynamic_axes={**axes, "p": {0: "b", 1: "m"}}, dynamo=False, opset_version=18)
    return buf.getvalue()


class OnnxPhoenix:
    """An ONNX Runtime session of Phoenix's probabilities (numpy inputs in `forward`'s order)."""

    def __init__(self, model: bytes, threads: int = 1):
        self.session = runtime_session(model, threads)
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        p: np.ndarray = self.session.run(None, dict(zip(self.names, inputs, strict=True)))[0]
        return p
