"""Bring a teacher trained elsewhere into the project's checkpoint format, once.

Supported: MLP policies exported as ONNX or TorchScript (what Isaac Lab and rsl_rl export: a chain
of linear layers with one activation kind), and stable-baselines3 PPO `.zip` files. The converted
`GaussianMLP` is checked against the original on random inputs (ONNX through onnxruntime,
TorchScript through torch) and refused if they differ by more than 1e-5.

The outside policy's input order is given by name (`input_names`: one privileged element name per
input, e.g. `qvel/rootx`); the selection is folded into the first layer, so the checkpoint reads
the task's own privileged layout. Without it, the input must be exactly the task's layout.

Nothing is unpickled: ONNX is protobuf; from an SB3 zip only `policy.pth` is read, with
`torch.load(weights_only=True)`, and a file holding pickled objects is refused. A TorchScript file
is different: it is a program, and loading it runs its code (the importer calls the module to check
the conversion), so `from_torchscript` loads one only with `trust_code=True` (`--trust-code`).
"""
from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from distill_ros.observation import ObsSpec
from distill_ros.policies.checkpoint import Checkpoint, CheckpointError, provenance
from distill_ros.policies.mlp import ACTIVATIONS, GaussianMLP

ONNX_ACTIVATIONS = {'Tanh': 'tanh', 'Relu': 'relu', 'Elu': 'elu'}


def _selection(input_names: Sequence[str] | None, spec: ObsSpec, width: int, source: str) -> np.ndarray:
    """Matrix S (width x spec.size) with outside_input = S @ privileged_obs."""
    names = spec.element_names()
    if input_names is None:
        if width != len(names):
            raise CheckpointError(f'{source}: the policy takes {width} inputs but the task\'s privileged observation '
                                  f'has {len(names)}; pass input_names to map its inputs by name')
        return np.eye(width)
    if len(input_names) != width:
        raise CheckpointError(f'{source}: {len(input_names)} input names given for a policy with {width} inputs')
    unknown = [n for n in input_names if n not in names]
    if unknown:
        raise CheckpointError(f'{source}: input names {unknown} are not privileged observation elements; '
                              f'available: {names}')
    selection = np.zeros((width, len(names)))
    for row, name in enumerate(input_names):
        selection[row, names.index(name)] = 1.0
    return selection


def _build(weights: list[tuple[np.ndarray, np.ndarray]], activation: str, spec: ObsSpec, input_names,
           action_std: float | np.ndarray, source: str) -> GaussianMLP:
    if activation not in ACTIVATIONS:
        raise CheckpointError(f'{source}: activation {activation!r} is not supported; expected {sorted(ACTIVATIONS)}')
    if len(weights) < 1:
        raise CheckpointError(f'{source}: no linear layers found')
    first_w = weights[0][0]
    selection = _selection(input_names, spec, first_w.shape[1], source)
    hidden = [w.shape[0] for w, _ in weights[:-1]]
    # obs_clip 1e9: the outside policy did not clip its inputs.
    net = GaussianMLP(spec.size, weights[-1][0].shape[0], hidden, activation, obs_clip=1e9)
    with torch.no_grad():
        layers = [*net.layers, net.head]
        for i, (layer, (w, b)) in enumerate(zip(layers, weights)):
            if i == 0:
                w = w @ selection
            layer.weight.copy_(torch.tensor(w, dtype=torch.float32))
            layer.bias.copy_(torch.tensor(b, dtype=torch.float32))
        net.log_std.copy_(torch.log(torch.as_tensor(np.broadcast_to(action_std, (net.action_dim,)).copy(),
                                                    dtype=torch.float32)))
    return net.eval()


def _verify(net: GaussianMLP, reference, spec: ObsSpec, selection_width: int, input_names, source: str) -> None:
    """Compare the converted module with the original on random inputs (tolerance 1e-5)."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, spec.size)).astype(np.float32)
    selection = _selection(input_names, spec, selection_width, source).astype(np.float32)
    expected = reference(obs @ selection.T)
    with torch.no_grad():
        got = net(torch.as_tensor(obs)).numpy()
    error = float(np.max(np.abs(got - expected)))
    if error > 1e-5:
        raise CheckpointError(f'{source}: converted policy differs from the original by {error:.2e} (> 1e-5); '
                              f'the graph is not a plain MLP this importer understands')


def from_onnx(path: str | Path, spec: ObsSpec, input_names=None, action_std: float = 0.1) -> GaussianMLP:
    import onnx
    from onnx import numpy_helper

    source = str(path)
    try:
        model = onnx.load(source)
    except Exception as exc:
        raise CheckpointError(f'{source}: cannot read ONNX model: {exc}') from exc
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    weights: list[tuple[np.ndarray, np.ndarray]] = []
    activations: set[str] = set()
    pending: np.ndarray | None = None
    for node in model.graph.node:
        if node.op_type == 'Gemm':
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            w = init[node.input[1]]
            w = w if attrs.get('transB', 0) else w.T
            weights.append((w, init[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0])))
        elif node.op_type == 'MatMul':
            pending = init[node.input[1]].T
        elif node.op_type == 'Add' and pending is not None:
            weights.append((pending, init[node.input[1]] if node.input[1] in init else init[node.input[0]]))
            pending = None
        elif node.op_type in ONNX_ACTIVATIONS:
            activations.add(ONNX_ACTIVATIONS[node.op_type])
        elif node.op_type in ('Identity', 'Constant', 'Flatten', 'Reshape', 'Cast'):
            continue
        else:
            raise CheckpointError(f'{source}: unsupported ONNX operator {node.op_type!r}; expected an MLP of '
                                  f'Gemm/MatMul+Add and one of {sorted(ONNX_ACTIVATIONS)}')
    if len(activations) > 1:
        raise CheckpointError(f'{source}: mixed activations {sorted(activations)}; expected one kind')
    activation = activations.pop() if activations else 'tanh'
    net = _build(weights, activation, spec, input_names, action_std, source)

    import onnxruntime as ort
    session = ort.InferenceSession(source, providers=['CPUExecutionProvider'])
    input_name = session.get_inputs()[0].name

    def reference(x: np.ndarray) -> np.ndarray:  # one row at a time: exports often fix the batch size at 1
        return np.concatenate([session.run(None, {input_name: x[i:i + 1]})[0] for i in range(len(x))])

    _verify(net, reference, spec, weights[0][0].shape[1], input_names, source)
    return net


def from_torchscript(path: str | Path, spec: ObsSpec, input_names=None, action_std: float = 0.1,
                     trust_code: bool = False) -> GaussianMLP:
    """A TorchScript MLP. Loading and calling it runs the code in the file: only with `trust_code`."""
    source = str(path)
    if not trust_code:
        raise CheckpointError(f'{source}: a TorchScript file is a program, and importing it runs its code; '
                              f'pass --trust-code (trust_code=True) only for a file from a source you trust, or '
                              f'export the policy as ONNX, which holds no code')
    try:
        module = torch.jit.load(source, map_location='cpu').eval()
    except Exception as exc:
        raise CheckpointError(f'{source}: cannot read TorchScript module: {exc}') from exc
    state = module.state_dict()
    weights = [(state[k].numpy(), state[k[:-len('weight')] + 'bias'].numpy())
               for k in state if k.endswith('weight') and state[k].dim() == 2]
    code = module.code if hasattr(module, 'code') else ''
    graph = str(module.inlined_graph)
    found = {name for name in ACTIVATIONS if f'aten::{name}' in graph or f'{name}(' in code}
    if len(found) != 1:
        raise CheckpointError(f'{source}: cannot tell the activation (found {sorted(found) or "none"}); '
                              f'expected one of {sorted(ACTIVATIONS)}')
    net = _build(weights, found.pop(), spec, input_names, action_std, source)

    def reference(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.as_tensor(x)).numpy()

    _verify(net, reference, spec, weights[0][0].shape[1], input_names, source)
    return net


def from_sb3_zip(path: str | Path, spec: ObsSpec, input_names=None, activation: str = 'tanh',
                 obs_mean: np.ndarray | None = None, obs_var: np.ndarray | None = None) -> GaussianMLP:
    """An SB3 PPO/A2C Gaussian actor: `mlp_extractor.policy_net.*`, `action_net`, `log_std`.

    SB3 keeps VecNormalize statistics outside the zip (in a pickle, which is not read): pass the
    mean and variance if the policy was trained on normalized observations.
    """
    source = str(path)
    try:
        with zipfile.ZipFile(source) as archive:
            raw = archive.read('policy.pth')
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f'{source}: not a stable-baselines3 zip with policy.pth: {exc}') from exc
    try:
        state = torch.load(io.BytesIO(raw), map_location='cpu', weights_only=True)
    except pickle.UnpicklingError:
        # torch's message suggests weights_only=False, which would run the file's code: never.
        raise CheckpointError(f'{source}: policy.pth holds pickled Python objects (code that would run when '
                              f'loaded), not only tensors; it is not loaded. Expected a state dict of tensors, as '
                              f'stable-baselines3 saves it') from None
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and others for damaged files
        raise CheckpointError(f'{source}: policy.pth is not a readable torch state dict: {exc}') from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f'{source}: policy.pth holds {type(state).__name__}; expected a state dict of tensors')
    keys = sorted((k for k in state if k.startswith('mlp_extractor.policy_net.') and k.endswith('.weight')),
                  key=lambda k: int(k.split('.')[2]))
    if 'action_net.weight' not in state or 'log_std' not in state:
        raise CheckpointError(f'{source}: policy.pth has no Gaussian actor (action_net, log_std); only PPO/A2C '
                              f'with continuous actions can be imported')
    weights = [(state[k].numpy(), state[k[:-len('weight')] + 'bias'].numpy()) for k in keys]
    weights.append((state['action_net.weight'].numpy(), state['action_net.bias'].numpy()))
    std = state['log_std'].exp().numpy()
    if obs_mean is not None:
        # The policy saw (x - mean) / sqrt(var + eps): fold that into its first layer.
        w, b = weights[0]
        inv_std = 1.0 / np.sqrt(np.asarray(obs_var, dtype=np.float64) + 1e-8)
        weights[0] = (w * inv_std, b - w @ (np.asarray(obs_mean, dtype=np.float64) * inv_std))
    return _build(weights, activation, spec, input_names, std, source)


def import_teacher(kind: str, path: str | Path, task_env, input_names=None, **kwargs) -> Checkpoint:
    spec = task_env.privileged_spec
    if kind == 'onnx':
        net = from_onnx(path, spec, input_names, **kwargs)
    elif kind == 'torchscript':
        net = from_torchscript(path, spec, input_names, **kwargs)
    elif kind == 'sb3':
        net = from_sb3_zip(path, spec, input_names, **kwargs)
    else:
        raise ValueError(f'unknown teacher kind {kind!r}; expected onnx, torchscript or sb3')
    if net.action_dim != len(task_env.action_names):
        raise CheckpointError(f'{path}: the policy outputs {net.action_dim} actions; task {task_env.task.name} has '
                              f'{len(task_env.action_names)} ({task_env.action_names})')
    return Checkpoint(model=net, obs_source='privileged', obs_spec=spec, action_names=task_env.action_names,
                      action_low=task_env.action_space.low, action_high=task_env.action_space.high,
                      task=task_env.task.name, role='teacher',
                      provenance=provenance(task=task_env.task.name, imported_from=str(path), import_kind=kind))
