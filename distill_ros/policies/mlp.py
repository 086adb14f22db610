"""Gaussian MLP policies with built-in observation normalization and named intermediate features.

One module serves teachers (large, on `privileged_obs`) and MLP students (small, on a sensor
history): its hidden activations are exposed by name (`hidden0`, `hidden1`, ...; the last one is
also called `latent`) so feature matching can regress a student's features onto a teacher's.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {'tanh': nn.Tanh, 'relu': nn.ReLU, 'elu': nn.ELU, 'silu': nn.SiLU}


class GaussianMLP(nn.Module):
    """obs -> normalize -> [Linear, activation] x N -> Linear -> action mean; a learned log std.

    Normalization (`obs_mean`, `obs_var`, clip) is a buffer of the module, so a checkpoint carries
    it and deployment cannot forget it.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], activation: str = 'tanh',
                 obs_clip: float = 10.0, log_std_init: float = 0.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f'unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}')
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.hidden, self.activation, self.obs_clip = list(hidden), activation, obs_clip
        layers, width = [], obs_dim
        for size in hidden:
            layers.append(nn.Linear(width, size))
            width = size
        self.layers = nn.ModuleList(layers)
        self.act = ACTIVATIONS[activation]()
        self.head = nn.Linear(width, action_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))
        self.register_buffer('obs_mean', torch.zeros(obs_dim))
        self.register_buffer('obs_var', torch.ones(obs_dim))

    def config(self) -> dict:
        return {'type': 'GaussianMLP', 'obs_dim': self.obs_dim, 'action_dim': self.action_dim,
                'hidden': self.hidden, 'activation': self.activation, 'obs_clip': self.obs_clip}

    @property
    def feature_names(self) -> list[str]:
        return [f'hidden{i}' for i in range(len(self.layers))] + ['latent']

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        z = (obs - self.obs_mean) / torch.sqrt(self.obs_var + 1e-8)
        return torch.clamp(z, -self.obs_clip, self.obs_clip)

    def forward_features(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Action mean and every hidden activation by name."""
        x = self.normalize(obs)
        features = {}
        for i, layer in enumerate(self.layers):
            x = self.act(layer(x))
            features[f'hidden{i}'] = x
        features['latent'] = x
        return self.head(x), features

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.normalize(obs)
        for layer in self.layers:
            x = self.act(layer(x))
        return self.head(x)

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the Gaussian action distribution."""
        mean = self.forward(obs)
        return mean, self.log_std.exp().expand_as(mean)


def parameter_count(module: nn.Module) -> int:
    """Trainable numbers of a policy; for an ONNX graph teacher, the numbers in its graph."""
    in_graph = getattr(module, 'graph_parameters', None)
    return int(in_graph) if in_graph is not None else sum(p.numel() for p in module.parameters())
