"""Export a checkpoint's policy (teacher or student) to ONNX and TorchScript, verified.

The exported graph maps the policy input to the action mean, normalization included:

    input  `obs`          (batch, obs_dim) for flat policies, (batch, history, step_dim) for students
    output `action_mean`  (batch, action_dim), before clipping to the action limits

Every export is checked against the torch module on random inputs (atol 1e-5) before it is
written; a mismatch is an error, never a silently different deployment.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from distill_ros.policies.checkpoint import Checkpoint

INPUT_NAME, OUTPUT_NAME = 'obs', 'action_mean'
TOLERANCE = 1e-5


class ExportError(RuntimeError):
    """An exported model does not reproduce the torch policy."""


def example_input(ckpt: Checkpoint, batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    model = ckpt.model
    shape = (batch, model.history, model.step_dim) if ckpt.history is not None else (batch, model.obs_dim)
    # Around the normalization statistics, so the check exercises the real operating range.
    z = torch.randn(shape, generator=g)
    return model.obs_mean + z * torch.sqrt(model.obs_var + 1e-8)


def onnx_bytes(ckpt: Checkpoint, opset: int = 18) -> bytes:
    model = ckpt.model.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (example_input(ckpt),), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: 'batch'}, OUTPUT_NAME: {0: 'batch'}}, opset_version=opset,
                          dynamo=False)
    return buffer.getvalue()


def onnx_session(model_bytes: bytes | str | Path, threads: int = 1):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = model_bytes if isinstance(model_bytes, bytes) else str(model_bytes)
    return ort.InferenceSession(source, options, providers=['CPUExecutionProvider'])


def _check(ckpt: Checkpoint, run, what: str, trials: int = 4) -> float:
    worst = 0.0
    for seed in range(trials):
        x = example_input(ckpt, batch=1 + 3 * seed, seed=seed)
        with torch.no_grad():
            expected = ckpt.model(x).numpy()
        got = np.asarray(run(x))
        if got.shape != expected.shape:
            raise ExportError(f'{what}: output shape {got.shape}, expected {expected.shape}')
        worst = max(worst, float(np.abs(got - expected).max()))
    if not worst <= TOLERANCE:
        raise ExportError(f'{what}: outputs differ from the torch policy by up to {worst:.3g} (tolerance {TOLERANCE})')
    return worst


def export_onnx(ckpt: Checkpoint, path: str | Path) -> float:
    """Write `path` (.onnx) and return the largest output difference seen in the check."""
    data = onnx_bytes(ckpt)
    session = onnx_session(data)
    worst = _check(ckpt, lambda x: session.run(None, {INPUT_NAME: x.numpy()})[0], f'ONNX export of {ckpt.path}')
    _atomic_write(Path(path), data)
    return worst


def export_torchscript(ckpt: Checkpoint, path: str | Path) -> float:
    model = ckpt.model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        scripted = torch.jit.trace(model, (example_input(ckpt),))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    reloaded = torch.jit.load(buffer)

    def run(x):
        with torch.no_grad():
            return reloaded(x).numpy()
    worst = _check(ckpt, run, f'TorchScript export of {ckpt.path}')
    _atomic_write(Path(path), buffer.getvalue())
    return worst


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_bytes(data)
    os.replace(tmp, path)
