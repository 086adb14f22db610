"""Export a checkpoint's policy (teacher or student) to ONNX and TorchScript, verified.

The exported graph maps the policy input to the action mean, normalization included:

    input  `obs`          (batch, obs_dim) for flat policies, (batch, history, step_dim) for window
                          students, (batch, step_dim) (one step row) for recurrent students
    input  `state_in`     recurrent students only: (num_layers, batch, state_size), zeros at an
                          episode's start
    output `action_mean`  (batch, action_dim), before clipping to the action limits
    output `state_out`    recurrent students only: the state to feed back at the next tick

Every export is checked against the torch module before it is written (atol 1e-5): on random
inputs, and for a recurrent student step by step over a whole episode with the state fed back;
a mismatch is an error, never a silently different deployment.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from distill_ros.policies.checkpoint import Checkpoint
from distill_ros.policies.onnx_policy import OnnxPolicy, onnx_session
from distill_ros.policies.students import is_recurrent

INPUT_NAME, OUTPUT_NAME = 'obs', 'action_mean'
STATE_IN, STATE_OUT = 'state_in', 'state_out'
TOLERANCE = 1e-5
EPISODE_STEPS = 1000   # a recurrent export is checked over an episode this long


class ExportError(RuntimeError):
    """An exported model does not reproduce the torch policy."""


def example_input(ckpt: Checkpoint, batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    model = ckpt.model
    shape = (batch, model.history, model.step_dim) if ckpt.history is not None else (batch, model.obs_dim)
    # Around the normalization statistics, so the check exercises the real operating range.
    z = torch.randn(shape, generator=g)
    return model.obs_mean + z * torch.sqrt(model.obs_var + 1e-8)


def example_episode(ckpt: Checkpoint, steps: int = EPISODE_STEPS, seed: int = 0) -> torch.Tensor:
    """(steps, step_dim) step rows of a smooth random episode around the normalization statistics."""
    g = torch.Generator().manual_seed(seed)
    model = ckpt.model
    z = torch.cumsum(0.3 * torch.randn((steps, model.step_dim), generator=g), 0)
    z = torch.sin(z) * 2.0   # bounded, correlated in time like sensor signals
    return model.obs_mean + z * torch.sqrt(model.obs_var + 1e-8)


class RecurrentStep(torch.nn.Module):
    """A recurrent student's tick as a graph: (obs (B, step_dim), state) -> (action mean, state)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, obs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.step(obs[:, None], state)


def onnx_bytes(ckpt: Checkpoint, opset: int = 18) -> bytes:
    model = ckpt.model.eval()
    if isinstance(model, OnnxPolicy):   # an imported graph teacher: its graph already has this interface
        return model.graph
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if is_recurrent(model):
            torch.onnx.export(RecurrentStep(model), (example_input(ckpt)[:, 0], model.initial_state(1)), buffer,
                              input_names=[INPUT_NAME, STATE_IN], output_names=[OUTPUT_NAME, STATE_OUT],
                              dynamic_axes={INPUT_NAME: {0: 'batch'}, STATE_IN: {1: 'batch'},
                                            OUTPUT_NAME: {0: 'batch'}, STATE_OUT: {1: 'batch'}},
                              opset_version=opset, dynamo=False)
        else:
            torch.onnx.export(model, (example_input(ckpt),), buffer, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: {0: 'batch'},
                                                                        OUTPUT_NAME: {0: 'batch'}},
                              opset_version=opset, dynamo=False)
    return buffer.getvalue()


def check_episode(ckpt: Checkpoint, step, what: str, steps: int = EPISODE_STEPS,
                  tolerance: float = TOLERANCE) -> float:
    """A recurrent student and `step(obs (1, step_dim), state) -> (action, state)` (numpy) fed
    back their own states over a whole episode: the largest difference in actions or final state
    (a `step` that keeps its state inside returns None for it)."""
    model = ckpt.model.eval()
    episode = example_episode(ckpt, steps)
    state = model.initial_state(1)
    theirs = state.numpy()
    worst = 0.0
    with torch.no_grad():
        for t in range(steps):
            mean, state = model.step(episode[t:t + 1], state)
            got, theirs = step(episode[t:t + 1].numpy(), theirs)
            got = np.asarray(got)
            if got.shape != tuple(mean.shape):
                raise ExportError(f'{what}: output shape {got.shape} at step {t}, expected {tuple(mean.shape)}')
            diff = float(np.abs(got - mean.numpy()).max())
            worst = max(worst, diff if np.isfinite(diff) else float('inf'))
    if theirs is not None:   # a stateful backend keeps its state inside: compare actions only
        worst = max(worst, float(np.abs(np.asarray(theirs) - state.numpy()).max()))
    if not worst <= tolerance:
        raise ExportError(f'{what}: over a {steps}-step episode, outputs differ from the torch policy by up to '
                          f'{worst:.3g} (tolerance {tolerance})')
    return worst


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
    if isinstance(ckpt.model, OnnxPolicy):   # the graph it runs, checked against the original at import
        _atomic_write(Path(path), data)
        return 0.0
    session = onnx_session(data)
    if is_recurrent(ckpt.model):
        worst = check_episode(ckpt, lambda x, h: session.run(None, {INPUT_NAME: x, STATE_IN: h}),
                              f'ONNX export of {ckpt.path}')
    else:
        worst = _check(ckpt, lambda x: session.run(None, {INPUT_NAME: x.numpy()})[0], f'ONNX export of {ckpt.path}')
    _atomic_write(Path(path), data)
    return worst


def export_torchscript(ckpt: Checkpoint, path: str | Path) -> float:
    model = ckpt.model.eval()
    if isinstance(model, OnnxPolicy):
        raise ExportError(f'{ckpt.path}: this teacher is an ONNX graph run by onnxruntime; it has no TorchScript '
                          f'form (export it with --onnx)')
    recurrent = is_recurrent(model)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        scripted = (torch.jit.trace(RecurrentStep(model), (example_input(ckpt)[:, 0], model.initial_state(1)))
                    if recurrent else torch.jit.trace(model, (example_input(ckpt),)))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    reloaded = torch.jit.load(buffer)

    def run(x):
        with torch.no_grad():
            return reloaded(x).numpy()

    def step(x, h):
        with torch.no_grad():
            mean, state = reloaded(torch.from_numpy(x), torch.from_numpy(h))
        return mean.numpy(), state.numpy()
    what = f'TorchScript export of {ckpt.path}'
    worst = check_episode(ckpt, step, what) if recurrent else _check(ckpt, run, what)
    _atomic_write(Path(path), buffer.getvalue())
    return worst


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_bytes(data)
    os.replace(tmp, path)
