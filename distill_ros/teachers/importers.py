"""Bring a teacher trained elsewhere into the project's checkpoint format, once.

Supported: any policy exported as ONNX or TorchScript (what rsl_rl, Isaac Lab and mjlab export:
`OnPolicyRunner.export_policy_to_onnx` / `export_policy_to_jit`, observation normalizer inside),
and stable-baselines3 PPO `.zip` files.

- A plain MLP (a chain of linear layers with one activation kind, nothing else) becomes a native
  `GaussianMLP`: features `hidden0`, ..., `latent` for feature matching, torch speed.
- Any other graph (normalization, clipping, other activations, several inputs or outputs) runs as
  it is in onnxruntime (`OnnxPolicy`, batched); the checkpoint stores it as `model.onnx`. A
  TorchScript module that is not a plain MLP is translated to ONNX once, here, and the translation
  is checked against the module.
- Recurrent exports (rsl_rl's `h_in`/`c_in` inputs, or a TorchScript module that keeps a hidden
  state between calls) are refused: a teacher answers each privileged state on its own.

Every conversion is checked against the original on random inputs (ONNX through onnxruntime,
TorchScript through torch) and refused if they differ by more than 1e-5 (relative to the
output's scale).

The outside policy's input order is given by name (`input_names`: one privileged element name per
input value, e.g. `qvel/rootx`, through all inputs in the graph's order); the selection is folded
into the first layer or done by Gather nodes in the graph, so the checkpoint reads the task's own
privileged layout. Without it, the inputs must be exactly the task's layout.

Nothing is unpickled: ONNX is protobuf; from an SB3 zip only `policy.pth` is read, with
`torch.load(weights_only=True)`, and a file holding pickled objects is refused. A TorchScript file
is different: it is a program, and loading it runs its code (the importer calls the module to check
the conversion), so `from_torchscript` loads one only with `trust_code=True` (`--trust-code`). The
checkpoint it writes holds no code (a GaussianMLP or an ONNX graph), so using it needs no trust.
"""
from __future__ import annotations

import copy
import io
import pickle
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distill_ros.observation import ObsSpec
from distill_ros.policies.checkpoint import Checkpoint, CheckpointError, provenance, task_file, teacher_terms
from distill_ros.policies.mlp import ACTIVATIONS, GaussianMLP
from distill_ros.policies.onnx_policy import (
    OnnxPolicy,
    dims,
    index_slices,
    onnx_session,
    real_inputs,
    reorder_output,
    wrap_graph,
)

ONNX_ACTIVATIONS = {'Tanh': 'tanh', 'Relu': 'relu', 'Elu': 'elu'}
TOLERANCE = 1e-5
RECURRENT_HINT = ('a teacher here answers each privileged state on its own (teacher_node, collection, DAgger '
                  'labelling), without an episode\'s memory; export an MLP actor instead (rsl_rl: MLPModel, not '
                  'RNNModel)')


class NotPlainMLP(CheckpointError):
    """The policy is more than a chain of linear layers with one activation: it runs as a graph."""


def _input_index(input_names: Sequence[str] | None, spec: ObsSpec, width: int, source: str,
                 widths: dict[str, int] | None = None) -> np.ndarray:
    """Privileged element index of each policy input value (outside_input = privileged_obs[index])."""
    names = spec.element_names()
    parts = f' ({", ".join(f"{k}: {v}" for k, v in widths.items())})' if widths else ''
    if input_names is None:
        if width != len(names):
            raise CheckpointError(f'{source}: the policy takes {width} inputs{parts} but the task\'s privileged '
                                  f'observation has {len(names)}; pass input_names to map its inputs by name')
        return np.arange(width)
    if len(input_names) != width:
        raise CheckpointError(f'{source}: {len(input_names)} input names given for a policy with {width} '
                              f'inputs{parts}')
    unknown = [n for n in input_names if n not in names]
    if unknown:
        raise CheckpointError(f'{source}: input names {unknown} are not privileged observation elements; '
                              f'available: {names}')
    return np.array([names.index(n) for n in input_names])


def _selection(input_names: Sequence[str] | None, spec: ObsSpec, width: int, source: str) -> np.ndarray:
    """Matrix S (width x spec.size) with outside_input = S @ privileged_obs."""
    return np.eye(spec.size)[_input_index(input_names, spec, width, source)]


def _close(got: np.ndarray, expected: np.ndarray) -> float:
    """Largest difference relative to the output's scale (absolute below 1)."""
    if got.shape != expected.shape:
        return float('inf')
    return float(np.max(np.abs(got - expected), initial=0.0) / max(1.0, float(np.max(np.abs(expected), initial=0.0))))


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
    """Compare the converted module with the original on random inputs."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, spec.size)).astype(np.float32)
    selection = _selection(input_names, spec, selection_width, source).astype(np.float32)
    expected = reference(obs @ selection.T)
    with torch.no_grad():
        got = net(torch.as_tensor(obs)).numpy()
    error = _close(got, expected)
    if error > TOLERANCE:
        raise NotPlainMLP(f'{source}: converted policy differs from the original by {error:.2e} (> {TOLERANCE}); '
                          f'the graph is not a plain MLP this importer understands')


def _graph_policy(model, spec: ObsSpec, input_names, action_std: float, output: str,
                  reference: Callable[[np.ndarray], np.ndarray], source: str) -> OnnxPolicy:
    """`model` (an onnx.ModelProto) wrapped to read the privileged observation, checked against
    `reference` (the original policy on its own inputs, concatenated in graph order)."""
    fed = real_inputs(model.graph)
    widths = {i.name: dims(i)[1] for i in fed}
    index = _input_index(input_names, spec, sum(widths.values()), source, widths)
    pieces = {name: index[part] for name, part in zip(widths, index_slices(list(widths.values())))}
    graph = wrap_graph(model, pieces, output, spec.size).SerializeToString()
    try:
        probe = onnx_session(graph).run(None, {'obs': np.zeros((1, spec.size), np.float32)})[0]
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types
        raise CheckpointError(f'{source}: onnxruntime cannot run the graph: {exc}') from None
    if probe.ndim != 2 or probe.shape[0] != 1:
        raise CheckpointError(f'{source}: output {output!r} has shape {list(probe.shape)} for one state; '
                              f'expected (batch, actions)')
    policy = OnnxPolicy.from_graph(graph, spec.size, probe.shape[1], action_std)
    obs = np.random.default_rng(0).normal(size=(64, spec.size)).astype(np.float32)
    expected = np.asarray(reference(obs[:, index]), dtype=np.float64)
    try:
        batched_error = _close(policy.run(obs).astype(np.float64), expected)
    except Exception:  # noqa: BLE001 - a graph whose export fixed the batch size fails here
        batched_error = float('inf')
    if batched_error > TOLERANCE:   # run one state at a time, as exported
        policy.batched = False
        error = _close(policy.run(obs).astype(np.float64), expected)
        if error > TOLERANCE:
            raise CheckpointError(f'{source}: the graph with its inputs mapped by name differs from the original by '
                                  f'{error:.2e} (> {TOLERANCE})')
    policy.origin = {'inputs': widths, 'output': output, 'runs_in': 'onnxruntime', 'batched': policy.batched}
    return policy


def _refuse_extra_inputs(model, output: str, source: str) -> None:
    """Every input must be (batch, values); a hidden state input means a recurrent policy (rsl_rl's
    `h_in`/`c_in`: (layers, batch, hidden), fed back from the outputs `h_out`/`c_out`)."""
    outputs = {o.name: dims(o) for o in model.graph.output if o.name != output}
    state = []
    for i in real_inputs(model.graph):
        shape = dims(i)
        fed_back = [o for o, s in outputs.items() if s == shape]
        named_state = any(hint in i.name.lower() for hint in ('h_in', 'c_in', 'hidden', 'state', 'memory'))
        if len(shape) == 3 or (fed_back and named_state):
            state.append((i.name, shape, fed_back))
        elif len(shape) != 2:
            raise CheckpointError(f'{source}: input {i.name!r} has shape {shape}; expected (batch, values)')
        elif not isinstance(shape[1], int) or shape[1] <= 0:
            raise CheckpointError(f'{source}: input {i.name!r} has shape {shape}, no fixed number of values')
    if state:
        back = sorted({o for _, _, outs in state for o in outs})
        raise CheckpointError(f'{source}: a recurrent policy: inputs {[n for n, _, _ in state]} (shapes '
                              f'{[s for _, s, _ in state]}) carry a hidden state'
                              f'{f" fed back from outputs {back}" if back else ""}, which is not supported: '
                              f'{RECURRENT_HINT}')


def _mlp_from_onnx(model, source: str, spec: ObsSpec, input_names, action_std: float, session) -> GaussianMLP:
    import onnx
    from onnx import numpy_helper

    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    weights: list[tuple[np.ndarray, np.ndarray]] = []
    activations: set[str] = set()
    pending: np.ndarray | None = None
    for node in model.graph.node:
        if node.op_type == 'Gemm' and node.input[1] in init:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            w = init[node.input[1]]
            w = w if attrs.get('transB', 0) else w.T
            weights.append((w, init[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0])))
        elif node.op_type == 'MatMul' and node.input[1] in init:
            pending = init[node.input[1]].T
        elif node.op_type == 'Add' and pending is not None and (node.input[1] in init or node.input[0] in init):
            weights.append((pending, init[node.input[1]] if node.input[1] in init else init[node.input[0]]))
            pending = None
        elif node.op_type in ONNX_ACTIVATIONS:
            activations.add(ONNX_ACTIVATIONS[node.op_type])
        elif node.op_type in ('Identity', 'Constant', 'Flatten', 'Reshape', 'Cast'):
            continue
        else:
            raise NotPlainMLP(f'{source}: ONNX operator {node.op_type!r}; a plain MLP is Gemm/MatMul+Add and one of '
                              f'{sorted(ONNX_ACTIVATIONS)}')
    if len(activations) > 1 or not weights:
        raise NotPlainMLP(f'{source}: activations {sorted(activations)}, {len(weights)} linear layers')
    net = _build(weights, activations.pop() if activations else 'tanh', spec, input_names, action_std, source)
    input_name = session.get_inputs()[0].name

    def reference(x: np.ndarray) -> np.ndarray:  # one row at a time: exports often fix the batch size at 1
        return np.concatenate([session.run(None, {input_name: x[i:i + 1]})[0] for i in range(len(x))])

    _verify(net, reference, spec, weights[0][0].shape[1], input_names, source)
    return net


def from_onnx(path: str | Path, spec: ObsSpec, input_names=None, action_std: float = 0.1,
              output: str | None = None) -> nn.Module:
    """Any ONNX policy: a GaussianMLP when it is a plain MLP, else the graph itself (`OnnxPolicy`).
    `output`: the graph output holding the action (default: the first)."""
    import onnx
    from onnx import helper

    source = str(path)
    try:
        model = onnx.load(source)
    except Exception as exc:
        raise CheckpointError(f'{source}: cannot read ONNX model: {exc}') from exc
    outputs = [o.name for o in model.graph.output]
    if output is not None and output not in outputs:
        raise CheckpointError(f'{source}: output {output!r} is not one of the graph\'s outputs {outputs}')
    output = output or (outputs[0] if outputs else None)
    if output is None or not real_inputs(model.graph):
        raise CheckpointError(f'{source}: the graph has no inputs or no outputs')
    _refuse_extra_inputs(model, output, source)
    try:
        session = onnx_session(model.SerializeToString())
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types
        raise CheckpointError(f'{source}: onnxruntime cannot run the graph: {exc}') from None
    if len(real_inputs(model.graph)) == 1 and len(outputs) == 1:
        try:
            return _mlp_from_onnx(model, source, spec, input_names, action_std, session)
        except CheckpointError:
            pass   # not a plain MLP; the graph runs as it is (and names any size mismatch itself)
    fed = [(i.name, dims(i)[1], helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type))
           for i in real_inputs(model.graph)]

    parts = index_slices([w for _, w, _ in fed])

    def reference(x: np.ndarray) -> np.ndarray:
        rows = []
        for r in range(len(x)):   # one row at a time, as exported
            feed = {name: x[r:r + 1, part].astype(dtype) for (name, _, dtype), part in zip(fed, parts)}
            rows.append(session.run([output], feed)[0])
        return np.concatenate(rows)

    return _graph_policy(model, spec, input_names, action_std, output, reference, source)


def _first(result) -> torch.Tensor:
    return result[0] if isinstance(result, (tuple, list)) else result


def _mlp_from_torchscript(module, spec: ObsSpec, input_names, action_std: float, source: str) -> GaussianMLP:
    state = module.state_dict()
    try:
        weights = [(state[k].numpy(), state[k[:-len('weight')] + 'bias'].numpy())
                   for k in state if k.endswith('weight') and state[k].dim() == 2]
    except KeyError as exc:
        raise NotPlainMLP(f'{source}: a linear layer without bias {exc}') from None
    code = module.code if hasattr(module, 'code') else ''
    graph = str(module.inlined_graph)
    found = {name for name in ACTIVATIONS if f'aten::{name}' in graph or f'{name}(' in code}
    if len(found) != 1 or not weights:
        raise NotPlainMLP(f'{source}: cannot tell the activation (found {sorted(found) or "none"}); '
                          f'expected one of {sorted(ACTIVATIONS)}')
    net = _build(weights, found.pop(), spec, input_names, action_std, source)

    def reference(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return _first(module(torch.as_tensor(x))).numpy()

    _verify(net, reference, spec, weights[0][0].shape[1], input_names, source)
    return net


def _keeps_state(module, width: int) -> bool:
    """Whether two calls on the same input give different outputs (a hidden state inside)."""
    x = torch.as_tensor(np.random.default_rng(1).normal(size=(1, width)), dtype=torch.float32)
    with torch.no_grad():
        return not torch.equal(_first(module(x.clone())), _first(module(x.clone())))


def from_torchscript(path: str | Path, spec: ObsSpec, input_names=None, action_std: float = 0.1,
                     trust_code: bool = False) -> nn.Module:
    """A TorchScript policy. Loading and calling it runs the code in the file: only with `trust_code`.
    A plain MLP becomes a GaussianMLP; any other module is translated to ONNX (checked against the
    module) and runs as an `OnnxPolicy`."""
    source = str(path)
    if not trust_code:
        raise CheckpointError(f'{source}: a TorchScript file is a program, and importing it runs its code; '
                              f'pass --trust-code (trust_code=True) only for a file from a source you trust, or '
                              f'export the policy as ONNX, which holds no code')
    try:
        module = torch.jit.load(source, map_location='cpu').eval()
    except Exception as exc:
        raise CheckpointError(f'{source}: cannot read TorchScript module: {exc}') from exc
    width = len(input_names) if input_names is not None else spec.size
    try:
        stateful, call_error = _keeps_state(module, width), None
    except Exception as exc:  # noqa: BLE001 - whatever the module's code raises
        stateful, call_error = False, exc
    if stateful:
        buffers = [name for name, _ in module.named_buffers() if 'state' in name or 'hidden' in name]
        raise CheckpointError(f'{source}: a recurrent policy: the module keeps a state between calls '
                              f'(buffers {buffers}), which is not supported: {RECURRENT_HINT}')
    try:
        return _mlp_from_torchscript(module, spec, input_names, action_std, source)
    except NotPlainMLP:
        if call_error is not None:
            raise CheckpointError(f'{source}: the module does not run on a (1, {width}) input '
                                  f'({type(call_error).__name__}: {str(call_error).strip().splitlines()[-1]}); '
                                  f'give one input name per policy input') from None
    except CheckpointError:
        if call_error is not None:
            raise   # the MLP's first layer says how many inputs it takes
    return _graph_policy(_torchscript_to_onnx(module, width, source), spec, input_names, action_std, 'action',
                         lambda x: _first(module(torch.as_tensor(x))).detach().numpy(), source)


def _torchscript_to_onnx(module, width: int, source: str):
    """The module as an ONNX graph (input `input` (batch, width), first output `action`)."""
    import onnx
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            # The TorchScript exporter (dynamo=False): torch.export cannot read a ScriptModule.
            torch.onnx.export(module, (torch.zeros(1, width),), buffer, input_names=['input'], output_names=['action'],
                              dynamic_axes={'input': {0: 'batch'}}, opset_version=18, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f'{source}: the module is not a plain MLP and cannot be translated to ONNX '
                              f'({message}); export the policy as ONNX where it was trained (rsl_rl: '
                              f'runner.export_policy_to_onnx) and import that') from None
    return onnx.load_from_string(buffer.getvalue())


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


def _check_reordered(net: nn.Module, reference: nn.Module, index: np.ndarray, obs_dim: int, source: str) -> None:
    obs = np.random.default_rng(1).normal(size=(16, obs_dim)).astype(np.float32)
    with torch.no_grad():
        got = net(torch.as_tensor(obs)).numpy()
        expected = reference(torch.as_tensor(obs)).numpy()[:, index]
    if _close(got, expected) > TOLERANCE:
        raise CheckpointError(f'{source}: reordering the outputs by name changed the policy '
                              f'({_close(got, expected):.2e})')


def _metadata_joint_names(path: str | Path) -> list[str] | None:
    """The `joint_names` an mjlab-style exporter writes into the ONNX metadata (comma-separated)."""
    import onnx
    try:
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception:  # noqa: BLE001 - the import itself reports an unreadable file
        return None
    value = props.get('joint_names')
    return [n.strip() for n in value.split(',') if n.strip()] if value else None


def _output_index(output_names: Sequence[str] | None, action_names: Sequence[str], width: int,
                  source: str) -> np.ndarray | None:
    """Policy output index of each task action (task_action = policy_output[index]); None: the same order."""
    if output_names is None:
        return None
    output_names = list(output_names)
    if len(output_names) != width:
        raise CheckpointError(f'{source}: {len(output_names)} output names given for a policy with {width} outputs')
    duplicated = sorted({n for n in output_names if output_names.count(n) > 1})
    unknown = [n for n in output_names if n not in action_names]
    missing = [n for n in action_names if n not in output_names]
    if duplicated or unknown or missing:
        raise CheckpointError(f'{source}: output names must name each of the task\'s actions once '
                              f'({list(action_names)}); '
                              + '; '.join(p for p in (f'repeated {duplicated}' if duplicated else '',
                                                      f'not actions of the task {unknown}' if unknown else '',
                                                      f'missing {missing}' if missing else '') if p))
    return np.array([output_names.index(n) for n in action_names])


def reorder_outputs(net: nn.Module, index: np.ndarray) -> nn.Module:
    """`net` acting in the task's actuator order: its output i becomes the old output index[i]."""
    if isinstance(net, GaussianMLP):
        order = torch.as_tensor(index, dtype=torch.long)
        with torch.no_grad():
            net.head.weight.copy_(net.head.weight[order].clone())
            net.head.bias.copy_(net.head.bias[order].clone())
            net.log_std.copy_(net.log_std[order].clone())
        return net
    graph = reorder_output(net.graph, index)
    policy = OnnxPolicy.from_graph(graph, net.obs_dim, net.action_dim, torch.exp(net.log_std[torch.as_tensor(index)])
                                   .numpy(), batched=net.batched)
    policy.origin = {**net.origin, 'output_order': 'by name'}
    return policy


def import_teacher(kind: str, path: str | Path, task_env, input_names=None, output_names=None,
                   **kwargs) -> Checkpoint:
    """Convert an outside teacher (`kind` onnx, torchscript or sb3) for `task_env`'s privileged observation.
    `output_names`: the joint (action) name of each policy output in the policy's order; the outputs
    are reordered to the task's actuator order. Without it the policy must act in the task's order."""
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
        output = f" (output {net.origin['output']!r})" if getattr(net, 'origin', None) else ''
        raise CheckpointError(f'{path}: the policy outputs {net.action_dim} actions{output}; task '
                              f'{task_env.task.name} has '
                              f'{len(task_env.action_names)} ({task_env.action_names})')
    named = _metadata_joint_names(path) if kind == 'onnx' else None
    if named is not None and output_names is not None and list(output_names) != named:
        raise CheckpointError(f'{path}: output names {list(output_names)} contradict the joint_names {named} in the '
                              f'ONNX metadata; give the order the policy was trained with, or none')
    if output_names is None and named is not None and len(named) == net.action_dim:
        output_names = named   # an mjlab-style export names its joints: they order its outputs
    index = _output_index(output_names, task_env.action_names, net.action_dim, str(path))
    if index is not None and not np.array_equal(index, np.arange(len(index))):
        reference = net
        net = reorder_outputs(copy.deepcopy(net) if isinstance(net, GaussianMLP) else net, index)
        _check_reordered(net, reference, index, spec.size, str(path))
    origin = getattr(net, 'origin', {})
    return Checkpoint(model=net, obs_source='privileged', obs_spec=spec, action_names=task_env.action_names,
                      action_low=task_env.action_space.low, action_high=task_env.action_space.high,
                      task=task_env.task.name, role='teacher', task_file=task_file(task_env),
                      obs_terms=teacher_terms(task_env),
                      provenance=provenance(task=task_env.task.name, imported_from=str(path), import_kind=kind,
                                            **({'input_names': list(input_names)} if input_names else {}),
                                            **({'output_names': list(output_names)} if output_names else {}),
                                            **({'graph': origin} if origin else {})))
