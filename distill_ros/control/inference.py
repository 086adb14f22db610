"""Inference backends for the student at batch 1 on one thread, behind one call: window -> action.

Every backend maps the student's input (the (history, step_dim) window a `HistoryBuffer` holds, or
a flat observation for flat policies) to the action mean, normalization included, before clipping.
A recurrent student's backend is stateful: its window is the one newest step row, the hidden
state lives in the backend (so in the node that owns it), and `reset()` zeroes it, as at an
episode's start; stateless backends ignore `reset()`.
`load_backend` builds one, checks it against the torch module on random inputs, and warms it up,
so a controller never activates with a policy that is slow on its first calls or computes
something else than training did.

    onnxruntime   the exported ONNX graph (distill_ros.policies.export), default
    numpy         the MLP's weights as numpy arrays, preallocated (MLP students and flat MLPs only)
    torchscript   the traced module
    torch         the eager module
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from distill_ros.policies.checkpoint import Checkpoint
from distill_ros.policies.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    STATE_IN,
    STATE_OUT,
    ExportError,
    RecurrentStep,
    check_episode,
    example_input,
    onnx_bytes,
    onnx_session,
)
from distill_ros.policies.students import is_recurrent

BACKENDS = ('auto', 'onnxruntime', 'numpy', 'torchscript', 'torch')
TOLERANCE = 1e-4  # float32 through different kernels


class BackendError(ValueError):
    """A backend cannot run this checkpoint, or does not reproduce the torch policy."""


class Backend:
    """`backend(window)` -> action mean (float64, action_dim). Not thread-safe: one caller."""

    name = ''
    recurrent = False

    def __call__(self, window: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the episode so far (a recurrent student's state back to zero)."""


class OnnxBackend(Backend):
    name = 'onnxruntime'

    def __init__(self, ckpt: Checkpoint, threads: int = 1):
        self.session = onnx_session(onnx_bytes(ckpt), threads=threads)
        self.recurrent = is_recurrent(ckpt.model)
        if self.recurrent:
            self.zero = ckpt.model.initial_state(1).numpy()
            self.outputs = [OUTPUT_NAME, STATE_OUT]
            self.reset()
        else:
            self.outputs = [OUTPUT_NAME]

    def reset(self) -> None:
        if self.recurrent:
            self.state = self.zero.copy()

    def __call__(self, window: np.ndarray) -> np.ndarray:
        if self.recurrent:   # window: the newest step row, (1, step_dim)
            mean, self.state = self.session.run(self.outputs, {INPUT_NAME: window, STATE_IN: self.state})
            return mean[0].astype(np.float64)
        return self.session.run(self.outputs, {INPUT_NAME: window[None]})[0][0].astype(np.float64)


class TorchBackend(Backend):
    name = 'torch'

    def __init__(self, ckpt: Checkpoint, threads: int = 1):
        torch.set_num_threads(threads)
        self.module = ckpt.model.eval()
        self.recurrent = is_recurrent(ckpt.model)
        if self.recurrent:
            self.zero = ckpt.model.initial_state(1)
            self.module = RecurrentStep(ckpt.model).eval()
            self.reset()

    def reset(self) -> None:
        if self.recurrent:
            self.state = self.zero.clone()

    def __call__(self, window: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            if self.recurrent:
                mean, self.state = self.module(torch.from_numpy(window), self.state)
                return mean[0].numpy().astype(np.float64)
            return self.module(torch.from_numpy(window)[None])[0].numpy().astype(np.float64)


class TorchScriptBackend(TorchBackend):
    name = 'torchscript'

    def __init__(self, ckpt: Checkpoint, threads: int = 1):
        super().__init__(ckpt, threads)
        example = ((example_input(ckpt)[:, 0], ckpt.model.initial_state(1)) if self.recurrent
                   else (example_input(ckpt),))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            self.module = torch.jit.freeze(torch.jit.trace(self.module, example).eval())


class NumpyMLPBackend(Backend):
    """normalize -> [x @ W.T + b, activation] x N -> head, on preallocated float32 arrays.

    At batch 1 the per-call overhead of a runtime dominates a small MLP; this path is a handful
    of BLAS calls with no allocation (see docs/controller.md for the measured figures)."""

    name = 'numpy'

    @staticmethod
    def unsupported(ckpt: Checkpoint) -> str:
        """Why this backend cannot run `ckpt` ('' when it can)."""
        model = ckpt.model
        kind = type(model).__name__
        if kind not in ('HistoryMLP', 'GaussianMLP'):
            return (f'backend numpy runs MLP policies only (HistoryMLP, GaussianMLP); checkpoint {ckpt.path} '
                    f'holds a {kind}: use onnxruntime')
        if model.activation not in ('tanh', 'relu'):
            return (f'backend numpy supports tanh and relu activations; checkpoint {ckpt.path} uses '
                    f'{model.activation!r}: use onnxruntime')
        return ''

    def __init__(self, ckpt: Checkpoint, threads: int = 1):
        reason = self.unsupported(ckpt)
        if reason:
            raise BackendError(reason)
        model = ckpt.model
        sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
        self.relu = model.activation == 'relu'
        self.scale = (1.0 / np.sqrt(sd['obs_var'] + 1e-8)).astype(np.float32)
        self.shift = (-sd['obs_mean'] * self.scale).astype(np.float32)
        self.clip = np.float32(model.obs_clip)
        self.weights = [np.ascontiguousarray(sd[f'layers.{i}.weight'].T) for i in range(len(model.layers))]
        self.weights.append(np.ascontiguousarray(sd['head.weight'].T))
        self.biases = [sd[f'layers.{i}.bias'] for i in range(len(model.layers))] + [sd['head.bias']]
        shape = (model.history, model.step_dim) if getattr(model, 'history', None) else (model.obs_dim,)
        self.z = np.empty(shape, dtype=np.float32)
        self.outs = [np.empty(w.shape[1], dtype=np.float32) for w in self.weights]
        self.z_flat = self.z.reshape(-1)  # a view: written through z
        layers = list(zip(self.weights, self.biases, self.outs))
        self.hidden_layers, self.head = layers[:-1], layers[-1]
        self.result = np.empty(self.outs[-1].shape, dtype=np.float64)  # reused: callers copy what they keep

    def __call__(self, window: np.ndarray) -> np.ndarray:
        # Ufuncs with out= only: np.clip and np.matmul cost 2-4x a ufunc call at this size.
        z = self.z
        np.multiply(window, self.scale, out=z)
        np.add(z, self.shift, out=z)
        np.minimum(z, self.clip, out=z)
        np.maximum(z, -self.clip, out=z)
        x = self.z_flat
        for w, b, out in self.hidden_layers:
            np.dot(x, w, out=out)
            np.add(out, b, out=out)
            if self.relu:
                np.maximum(out, 0.0, out=out)
            else:
                np.tanh(out, out=out)
            x = out
        w, b, out = self.head
        np.dot(x, w, out=out)
        np.add(out, b, out=self.result)
        return self.result


_CLASSES: dict[str, type[Backend]] = {'onnxruntime': OnnxBackend, 'numpy': NumpyMLPBackend,
                                      'torchscript': TorchScriptBackend, 'torch': TorchBackend}


def verify(backend: Backend, ckpt: Checkpoint, trials: int = 4, episode_steps: int = 200) -> float:
    """Largest difference to the torch module over `trials` random inputs (for a recurrent student,
    step by step over an episode with the state carried); BackendError past TOLERANCE."""
    if backend.recurrent:
        backend.reset()
        try:
            return check_episode(ckpt, lambda x, h: (backend(np.ascontiguousarray(x, dtype=np.float32))[None], None),
                                 f'backend {backend.name} for {ckpt.path}', steps=episode_steps,
                                 tolerance=TOLERANCE)
        except ExportError as exc:
            raise BackendError(str(exc)) from None
        finally:
            backend.reset()
    worst = 0.0
    for seed in range(trials):
        x = example_input(ckpt, batch=1, seed=seed)
        with torch.no_grad():
            expected = ckpt.model(x)[0].numpy()
        got = backend(np.ascontiguousarray(x[0].numpy(), dtype=np.float32))
        if got.shape != expected.shape:
            raise BackendError(f'backend {backend.name}: output shape {got.shape}, expected {expected.shape}')
        diff = np.abs(got - expected)
        worst = max(worst, float(diff.max()) if np.all(np.isfinite(diff)) else float('inf'))
    if not worst <= TOLERANCE:
        raise BackendError(f'backend {backend.name}: outputs differ from the torch policy of {ckpt.path} by up to '
                           f'{worst:.3g} (tolerance {TOLERANCE})')
    return worst


def resolve_backend(ckpt: Checkpoint, kind: str) -> str:
    """The backend `kind` names; 'auto' picks numpy where it can run the policy (measured fastest at
    batch 1 for MLP students: docs/controller.md), else onnxruntime."""
    if kind != 'auto':
        return kind
    return 'onnxruntime' if NumpyMLPBackend.unsupported(ckpt) else 'numpy'


def load_backend(ckpt: Checkpoint, kind: str = 'auto', threads: int = 1, warmup: int = 200) -> Backend:
    """A verified, warmed-up backend for `ckpt` ('auto': see `resolve_backend`)."""
    kind = resolve_backend(ckpt, kind)
    if kind not in _CLASSES:
        raise BackendError(f'unknown inference backend {kind!r}; expected one of {list(BACKENDS)}')
    backend = _CLASSES[kind](ckpt, threads)
    verify(backend, ckpt)
    window = np.ascontiguousarray(example_input(ckpt)[0].numpy(), dtype=np.float32)
    for _ in range(warmup):
        backend(window)
    backend.reset()
    return backend


def time_backend(backend: Backend, window: np.ndarray, calls: int = 5000) -> np.ndarray:
    """Per-call seconds of `calls` calls on `window` (for the bench and docs)."""
    out = np.empty(calls)
    clock = time.perf_counter
    for i in range(calls):
        start = clock()
        backend(window)
        out[i] = clock() - start
    return out
