"""Student policies: over an observation history window (MLP on the stacked window, temporal
convolution (TCN), a GRU over the window) or recurrent (GRU/LSTM carrying its state through the
whole episode).

A window student takes one tensor, the history window `(batch, history, step_dim)` oldest first,
as `distill_ros.observation.HistoryBuffer` builds it at run time and the trainer for training.
A recurrent student (`RecurrentPolicy`, history 1) takes one step at a time plus its hidden state
(`step`), and whole sequences for training (`forward_sequence`).
Each step is the sensor observation, optionally followed by the previously executed action.
Normalization statistics per step feature are buffers of the module (stored in the checkpoint).
Like the teacher, a student exposes named features; `latent` (the encoder's output, before the
action head) is what feature matching projects onto the teacher's features.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from distill_ros.policies.mlp import ACTIVATIONS, GaussianMLP
from distill_ros.policies.onnx_policy import OnnxPolicy


class HistoryPolicy(nn.Module):
    """Shared parts: normalization, the Gaussian head, features, the distribution."""

    kind = 'history'
    recurrent = False   # RecurrentPolicy: memory in a hidden state, not in the window

    def __init__(self, step_dim: int, action_dim: int, history: int, activation: str = 'tanh',
                 obs_clip: float = 10.0, log_std_init: float = -0.5):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f'unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}')
        if history < 1:
            raise ValueError(f'history must be >= 1, got {history}')
        self.step_dim, self.action_dim, self.history = step_dim, action_dim, history
        self.activation, self.obs_clip, self._log_std_init = activation, obs_clip, log_std_init
        self.act = ACTIVATIONS[activation]()
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))
        self.register_buffer('obs_mean', torch.zeros(step_dim))
        self.register_buffer('obs_var', torch.ones(step_dim))

    @property
    def obs_dim(self) -> int:  # the flattened input size (for parameter/FLOP reports)
        return self.history * self.step_dim

    def _base_config(self) -> dict:
        return {'type': type(self).__name__, 'step_dim': self.step_dim, 'action_dim': self.action_dim,
                'history': self.history, 'activation': self.activation, 'obs_clip': self.obs_clip}

    def normalize(self, window: torch.Tensor) -> torch.Tensor:
        z = (window - self.obs_mean) / torch.sqrt(self.obs_var + 1e-8)
        return torch.clamp(z, -self.obs_clip, self.obs_clip)

    def encode(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def forward_features(self, window: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        latent, features = self.encode(self.normalize(window))
        features['latent'] = latent
        return self.head(latent), features

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.forward_features(window)[0]

    def distribution(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.forward(window)
        return mean, self.log_std.exp().expand_as(mean)

    @property
    def latent_dim(self) -> int:
        return self.head.in_features


class HistoryMLP(HistoryPolicy):
    """The whole window flattened into one vector, then an MLP."""

    def __init__(self, step_dim: int, action_dim: int, history: int, hidden: Sequence[int] = (64, 64), **kw):
        super().__init__(step_dim, action_dim, history, **kw)
        self.hidden = list(hidden)
        widths = [step_dim * history] + self.hidden
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.head = nn.Linear(widths[-1], action_dim)

    def config(self) -> dict:
        return {**self._base_config(), 'hidden': self.hidden}

    def encode(self, z):
        x = z.flatten(1)
        features = {}
        for i, layer in enumerate(self.layers):
            x = self.act(layer(x))
            features[f'hidden{i}'] = x
        return x, features


class TCN(HistoryPolicy):
    """Causal dilated 1-D convolutions over time (dilation doubling per layer); the last time step's
    channels, through one linear layer, are the latent."""

    def __init__(self, step_dim: int, action_dim: int, history: int, channels: Sequence[int] = (32, 32),
                 kernel_size: int = 3, latent: int = 64, **kw):
        super().__init__(step_dim, action_dim, history, **kw)
        self.channels, self.kernel_size, self.latent = list(channels), kernel_size, latent
        widths = [step_dim] + self.channels
        self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel_size, dilation=2 ** i)
                                   for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])))
        self.proj = nn.Linear(widths[-1], latent)
        self.head = nn.Linear(latent, action_dim)

    def config(self) -> dict:
        return {**self._base_config(), 'channels': self.channels, 'kernel_size': self.kernel_size,
                'latent': self.latent}

    def encode(self, z):
        x = z.transpose(1, 2)  # (B, C, T)
        features = {}
        for i, conv in enumerate(self.convs):
            pad = (self.kernel_size - 1) * conv.dilation[0]
            x = self.act(conv(nn.functional.pad(x, (pad, 0))))
            features[f'conv{i}'] = x[:, :, -1]
        latent = self.act(self.proj(x[:, :, -1]))
        return latent, features


class GRUPolicy(HistoryPolicy):
    """A GRU run over the window from a zero state at every tick (stateless between ticks, so
    deployment needs only the window); its last output is the latent. Config type `gru-window`."""

    def __init__(self, step_dim: int, action_dim: int, history: int, hidden_size: int = 64, num_layers: int = 1,
                 **kw):
        super().__init__(step_dim, action_dim, history, **kw)
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.gru = nn.GRU(step_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, action_dim)

    def config(self) -> dict:
        return {**self._base_config(), 'hidden_size': self.hidden_size, 'num_layers': self.num_layers}

    def encode(self, z):
        out, _ = self.gru(z)
        return out[:, -1], {}


RNN_CELLS = {'gru': nn.GRU, 'lstm': nn.LSTM}


class RecurrentPolicy(HistoryPolicy):
    """A GRU or LSTM that carries its hidden state through the whole episode (as rsl_rl's
    recurrent students and RMA/Lee-style estimators): per step, normalize -> RNN -> MLP -> action.

    Its input is one step row (the sensor observation, then the previous action), so its run-time
    buffer has history 1; the memory is the state, `(num_layers, batch, state_size)` with the
    LSTM's h and c concatenated on the last axis (one tensor, so ONNX and the nodes carry one).
    The state is zero at an episode's start. `forward(window)` runs the window from a zero state
    and returns the last step's action, which for a (batch, 1, step_dim) window is the first step
    of an episode; `step` is the stateful call every deployment path uses."""

    recurrent = True

    def __init__(self, step_dim: int, action_dim: int, history: int = 1, cell: str = 'gru', hidden_size: int = 64,
                 num_layers: int = 1, hidden: Sequence[int] = (), **kw):
        if history != 1:
            raise ValueError(f'a recurrent student reads one step at a time (history 1), got history {history}')
        if cell not in RNN_CELLS:
            raise ValueError(f'unknown recurrent cell {cell!r}; expected one of {sorted(RNN_CELLS)}')
        if hidden_size < 1 or num_layers < 1 or any(int(h) < 1 for h in hidden):
            raise ValueError(f'recurrent sizes must be positive: hidden_size {hidden_size}, num_layers {num_layers}, '
                             f'hidden {list(hidden)}')
        super().__init__(step_dim, action_dim, 1, **kw)
        self.cell, self.hidden_size, self.num_layers, self.hidden = cell, hidden_size, num_layers, list(hidden)
        self.rnn = RNN_CELLS[cell](step_dim, hidden_size, num_layers=num_layers, batch_first=True)
        widths = [hidden_size] + self.hidden
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.head = nn.Linear(widths[-1], action_dim)

    def config(self) -> dict:
        return {**self._base_config(), 'cell': self.cell, 'hidden_size': self.hidden_size,
                'num_layers': self.num_layers, 'hidden': self.hidden}

    @property
    def state_size(self) -> int:
        return self.hidden_size * (2 if self.cell == 'lstm' else 1)

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        """The state at an episode's start: zeros, (num_layers, batch, state_size)."""
        return torch.zeros(self.num_layers, batch, self.state_size)

    def _rnn(self, z: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            state = self.initial_state(z.shape[0]).to(z)
        if self.cell == 'lstm':
            h, c = state[..., :self.hidden_size], state[..., self.hidden_size:]
            out, (h, c) = self.rnn(z, (h.contiguous(), c.contiguous()))
            return out, torch.cat([h, c], dim=-1)
        out, h = self.rnn(z, state.contiguous())
        return out, h

    def _mlp(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        features = {'memory': x}
        for i, layer in enumerate(self.layers):
            x = self.act(layer(x))
            features[f'hidden{i}'] = x
        features['latent'] = x
        return x, features

    def forward_sequence(self, steps: torch.Tensor, state: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Action means (batch, T, action_dim) and per-step features of a step sequence
        (batch, T, step_dim) that starts from `state` (zero: an episode's start); the final state."""
        out, state = self._rnn(self.normalize(steps), state)
        latent, features = self._mlp(out)
        return self.head(latent), features, state

    def step(self, window: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One tick: (batch, 1, step_dim) or (batch, step_dim) -> action mean (batch, A), new state."""
        if window.ndim == 2:
            window = window[:, None]
        mean, _, state = self.forward_sequence(window, state)
        return mean[:, -1], state

    def forward_features(self, window: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mean, features, _ = self.forward_sequence(window)
        return mean[:, -1], {k: v[:, -1] for k, v in features.items()}


ARCHITECTURES: dict[str, type[nn.Module]] = {
    'GaussianMLP': GaussianMLP, 'HistoryMLP': HistoryMLP, 'TCN': TCN, 'GRUPolicy': GRUPolicy,
    'RecurrentPolicy': RecurrentPolicy, 'OnnxPolicy': OnnxPolicy}
STUDENT_TYPES = {'mlp': HistoryMLP, 'tcn': TCN, 'gru-window': GRUPolicy, 'gru': RecurrentPolicy,
                 'lstm': RecurrentPolicy}


def build_model(config: dict) -> nn.Module:
    """The module an `architecture` entry of policy.json describes."""
    config = dict(config)
    kind = config.pop('type', None)
    if kind not in ARCHITECTURES:
        raise ValueError(f'unknown architecture type {kind!r}; expected one of {sorted(ARCHITECTURES)}')
    return ARCHITECTURES[kind](**config)


def make_student(kind: str, step_dim: int, action_dim: int, history: int, **options) -> HistoryPolicy:
    """A student from a config entry: kind is one of STUDENT_TYPES; options are its sizes."""
    if kind not in STUDENT_TYPES:
        raise ValueError(f'unknown student type {kind!r}; expected one of {sorted(STUDENT_TYPES)}')
    if kind in RNN_CELLS:
        return RecurrentPolicy(step_dim, action_dim, 1, cell=kind, **options)
    return STUDENT_TYPES[kind](step_dim, action_dim, history, **options)


def is_history_policy(model: nn.Module) -> bool:
    return isinstance(model, HistoryPolicy)


def is_recurrent(model: nn.Module) -> bool:
    """A student whose memory is a hidden state carried from tick to tick (not a window)."""
    return getattr(model, 'recurrent', False)
