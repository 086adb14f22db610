"""A teacher that is an ONNX graph, run as it is by onnxruntime.

Outside teachers (rsl_rl / Isaac Lab `policy.onnx`, any other exported graph) carry their own
observation normalization, clipping and activations. Instead of translating each graph into torch,
the importer rewrites its interface once and the graph runs unchanged inside:

    input  `obs`          (batch, obs_dim): the task's privileged observation in the checkpoint's
                          field order; `Gather` nodes pick each original input's elements by name
    output `action_mean`  (batch, action_dim): the original action output

so a checkpoint holds `model.onnx` (protobuf: data, not code) beside `model.safetensors` (only the
Gaussian's log std: exported policies carry the mean alone) and `policy.json` (its sha256).

`OnnxPolicy` is an `nn.Module` with the teacher interface the rest of the package calls:
`forward`, `distribution` and `forward_features` take and return torch tensors, any batch size.
Features are the graph's intermediate tensors by their ONNX names, `latent` being the input of the
last linear layer (Gemm/MatMul) before the action output; each is computed only when asked for.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

GRAPH = 'model.onnx'
INPUT, OUTPUT = 'obs', 'action_mean'


def onnx_session(model_bytes, threads: int = 1):
    """An onnxruntime CPU session: `threads` intra-op threads, sequential, all graph optimizations."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3   # no warnings about unused initializers and the like
    source = model_bytes if isinstance(model_bytes, bytes) else str(model_bytes)
    return ort.InferenceSession(source, options, providers=['CPUExecutionProvider'])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dims(value_info) -> list:
    """A graph input's or output's shape: ints, symbolic names, '?' where unknown."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField('dim_value') else (d.dim_param or '?') for d in shape.dim]


def real_inputs(graph) -> list:
    """Graph inputs that are fed (old exports also list their initializers as inputs)."""
    initializers = {t.name for t in graph.initializer}
    return [i for i in graph.input if i.name not in initializers]


def _rename(graph, old: str, new: str) -> None:
    """Rename tensor `old` to `new` everywhere in `graph` and its subgraphs."""
    for entry in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        if entry.name == old:
            entry.name = new
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField('g') else []) + list(attribute.graphs):
                _rename(sub, old, new)


def wrap_graph(model, input_index: Mapping[str, np.ndarray], output: str, obs_dim: int):
    """A copy of `model` with one input `obs` (batch, obs_dim) in place of its inputs (input
    `name` receives `obs[:, input_index[name]]`) and one output `action_mean` (float32), the
    batch dimension left free."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    wrapped = onnx.ModelProto()
    wrapped.CopyFrom(model)
    graph = wrapped.graph
    taken = {name for node in graph.node for name in (*node.input, *node.output)}
    taken |= {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for name in (INPUT, OUTPUT):   # an original tensor called `obs` (rsl_rl's input) moves aside
        if name in taken:
            suffix = 1
            while f'{name}.{suffix}' in taken:
                suffix += 1
            _rename(graph, name, f'{name}.{suffix}')
            input_index = {(f'{name}.{suffix}' if k == name else k): v for k, v in input_index.items()}
            output = f'{name}.{suffix}' if output == name else output
            taken.add(f'{name}.{suffix}')
    # Intermediate shapes recorded at export time fix the batch at its example's size.
    del graph.value_info[:]
    fed = {i.name: i for i in real_inputs(graph)}
    kept_inputs = [i for i in graph.input if i.name not in fed]
    front = []
    for name, index in input_index.items():
        elem_type = fed[name].type.tensor_type.elem_type
        index_name = f'distill_ros/index/{name}'
        graph.initializer.append(numpy_helper.from_array(np.asarray(index, dtype=np.int64), index_name))
        gathered = name if elem_type == TensorProto.FLOAT else f'distill_ros/gathered/{name}'
        front.append(helper.make_node('Gather', [INPUT, index_name], [gathered], axis=1,
                                      name=f'distill_ros/gather/{name}'))
        if elem_type != TensorProto.FLOAT:
            front.append(helper.make_node('Cast', [gathered], [name], to=elem_type, name=f'distill_ros/cast/{name}'))
    out_type = next(o.type.tensor_type.elem_type for o in graph.output if o.name == output)
    back = helper.make_node('Identity' if out_type == TensorProto.FLOAT else 'Cast', [output], [OUTPUT],
                            name='distill_ros/action_mean',
                            **({} if out_type == TensorProto.FLOAT else {'to': TensorProto.FLOAT}))
    nodes = [*front, *graph.node, back]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.input[:]
    graph.input.extend([helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ['batch', obs_dim]), *kept_inputs])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, None))
    return wrapped


def reorder_output(graph: bytes, index: np.ndarray) -> bytes:
    """`graph` (a wrapped policy) with its action reordered: `action_mean[:, i]` becomes the old
    `action_mean[:, index[i]]` (a Gather after the last node)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(graph)
    unordered = 'distill_ros/action_by_policy_order'
    for node in model.graph.node:
        node.output[:] = [unordered if o == OUTPUT else o for o in node.output]
    index_name = 'distill_ros/index/action'
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(index, dtype=np.int64), index_name))
    model.graph.node.append(helper.make_node('Gather', [unordered, index_name], [OUTPUT], axis=1,
                                             name='distill_ros/gather/action'))
    return model.SerializeToString()


def _latent(graph) -> str | None:
    """The input of the last linear layer (Gemm/MatMul) on the way to `action_mean`."""
    producer = {name: node for node in graph.node for name in node.output}
    constant = {t.name for t in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == 'Constant'}
    name = OUTPUT
    while name in producer:
        node = producer[name]
        data = [i for i in node.input if i and i not in constant]
        if node.op_type in ('Gemm', 'MatMul'):
            return data[0] if data else None
        if len(data) != 1:
            return None
        name = data[0]
    return None


class GraphFeatures(Mapping):
    """Intermediate tensors of one batch by name, each computed when first read."""

    def __init__(self, policy: OnnxPolicy, x: np.ndarray):
        self.policy, self.x, self.cache = policy, x, {}

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.policy.features:
            raise KeyError(name)
        if name not in self.cache:
            value = self.policy.run(self.x, self.policy.features[name])
            self.cache[name] = torch.from_numpy(value.astype(np.float32, copy=False)).reshape(len(self.x), -1)
        return self.cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.policy.features)

    def __len__(self) -> int:
        return len(self.policy.features)


class OnnxPolicy(nn.Module):
    """obs (..., obs_dim) -> the ONNX graph in onnxruntime -> action mean (..., action_dim); a fixed
    log std (`log_std`, from the importer's action std) for the Gaussian the distillation losses need.

    `batched` is False for a graph whose batch size the export fixed inside (a Reshape to 1, say):
    it then runs one state at a time. The onnxruntime session is made on first use, with as many
    threads as torch has then (`torch.set_num_threads` before the first call sets both)."""

    recurrent = False

    def __init__(self, obs_dim: int, action_dim: int, sha256: str = '', batched: bool = True,
                 latent: str | None = None):
        super().__init__()
        self.obs_dim, self.action_dim, self.sha256 = obs_dim, action_dim, sha256
        self.batched, self.latent = batched, latent
        self.log_std = nn.Parameter(torch.zeros(action_dim), requires_grad=False)
        self.graph: bytes | None = None
        self.features: dict[str, str] = {}   # feature name -> graph tensor
        self.graph_parameters = 0             # numbers in the graph's initializers
        self.graph_flops = 0                  # of its linear layers, batch 1 (a multiply-add counts 2)
        self.origin: dict = {}                # set by the importer: the original inputs and output
        self._sessions: dict[tuple[str, ...], object] = {}

    def config(self) -> dict:
        return {'type': 'OnnxPolicy', 'obs_dim': self.obs_dim, 'action_dim': self.action_dim, 'sha256': self.sha256,
                'batched': self.batched, 'latent': self.latent}

    def attach(self, graph: bytes, source: str = GRAPH) -> OnnxPolicy:
        """Take the graph bytes (checked against `sha256` when one is recorded)."""
        import onnx
        from onnx import TensorProto

        if self.sha256 and sha256(graph) != self.sha256:
            raise ValueError(f'{source}: sha256 {sha256(graph)[:12]}… differs from the {self.sha256[:12]}… recorded '
                             f'in policy.json; the graph was changed or damaged')
        self.sha256 = sha256(graph)
        model = onnx.load_from_string(graph)
        try:
            inferred = onnx.shape_inference.infer_shapes(model).graph
            types = {v.name: v.type.tensor_type.elem_type for v in inferred.value_info}
        except Exception:  # noqa: BLE001 - inference is a nicety: without it every tensor is offered
            types = {}
        init = {t.name: t for t in model.graph.initializer}
        # Every float tensor a node makes, but the action mean itself (under both its names).
        action = {OUTPUT, *(n.input[0] for n in model.graph.node if OUTPUT in n.output)}
        names = [o for node in model.graph.node if node.op_type != 'Constant' for o in node.output
                 if o and o not in action and types.get(o, TensorProto.FLOAT) == TensorProto.FLOAT]
        self.features = {name: name for name in names}
        if self.latent:
            self.features['latent'] = self.latent
        self.graph_parameters = int(sum(np.prod(t.dims) for name, t in init.items()
                                        if not name.startswith('distill_ros/')))
        self.graph_flops = int(sum(2 * np.prod(init[n.input[1]].dims) for n in model.graph.node
                                   if n.op_type in ('Gemm', 'MatMul') and len(n.input) > 1 and n.input[1] in init))
        self.graph, self._sessions = graph, {}
        return self

    @classmethod
    def from_graph(cls, graph: bytes, obs_dim: int, action_dim: int, action_std: float | np.ndarray,
                   batched: bool = True) -> OnnxPolicy:
        import onnx
        policy = cls(obs_dim, action_dim, batched=batched, latent=_latent(onnx.load_from_string(graph).graph))
        policy.attach(graph)
        with torch.no_grad():
            std = np.broadcast_to(np.asarray(action_std, dtype=np.float64), (action_dim,))
            policy.log_std.copy_(torch.log(torch.as_tensor(std.copy(), dtype=torch.float32)))
        return policy

    def _session(self, outputs: tuple[str, ...]):
        if outputs not in self._sessions:
            import onnx
            from onnx import TensorProto, helper
            if self.graph is None:
                raise RuntimeError('OnnxPolicy has no graph attached (load it with checkpoint.load)')
            data = self.graph
            extra = [o for o in outputs if o != OUTPUT]
            if extra:   # intermediate tensors become graph outputs of a second session
                model = onnx.load_from_string(self.graph)
                model.graph.output.extend(helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in extra)
                data = model.SerializeToString()
            self._sessions[outputs] = onnx_session(data, threads=torch.get_num_threads())
        return self._sessions[outputs]

    def run(self, x: np.ndarray, output: str = OUTPUT) -> np.ndarray:
        """Graph tensor `output` for a batch of observations (n, obs_dim)."""
        session = self._session((output,))
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.batched or len(x) == 1:
            return session.run([output], {INPUT: x})[0]
        return np.concatenate([session.run([output], {INPUT: x[i:i + 1]})[0] for i in range(len(x))])

    def _rows(self, obs: torch.Tensor) -> np.ndarray:
        return obs.detach().to(device='cpu', dtype=torch.float32).reshape(-1, self.obs_dim).numpy()

    def _mean(self, x: np.ndarray, obs: torch.Tensor) -> torch.Tensor:
        """The action mean of rows `x` (`obs` flattened), shaped and placed like `obs`."""
        mean = self.run(x) if len(x) else np.zeros((0, self.action_dim), np.float32)
        mean = torch.from_numpy(np.asarray(mean, dtype=np.float32)).reshape(*obs.shape[:-1], self.action_dim)
        return mean.to(obs.device)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self._mean(self._rows(obs), obs)

    def forward_features(self, obs: torch.Tensor) -> tuple[torch.Tensor, Mapping[str, torch.Tensor]]:
        """Action mean and the graph's intermediate tensors by name (flattened to (batch, -1))."""
        x = self._rows(obs)
        return self._mean(x, obs), GraphFeatures(self, x)

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the Gaussian action distribution."""
        mean = self.forward(obs)
        return mean, self.log_std.exp().expand_as(mean)

    def __getstate__(self) -> dict:   # copies and pickles (spawned workers) make their own sessions
        state = self.__dict__.copy()
        state['_sessions'] = {}
        return state


def index_slices(widths: Sequence[int]) -> list[slice]:
    """Consecutive slices of a concatenation of pieces `widths` wide."""
    ends = np.cumsum([0, *widths])
    return [slice(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:])]
