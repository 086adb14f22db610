"""Random minibatches of observation-history windows from a loaded dataset, for training.

A window for sample i holds the observations i-H+1 ... i of i's episode, oldest first (frame-major:
shape (batch, H, obs_dim)); before an episode's first sample the first observation repeats, as the
student controller's history buffer does at start-up. Windows never cross episode boundaries.
Everything is precomputed as tensors, so drawing a batch is two index operations.
"""
from __future__ import annotations

import numpy as np
import torch

from distill_ros.data.dataset import Dataset


class HistorySampler:
    def __init__(self, dataset: Dataset, history: int, fields: tuple[str, ...] = ('teacher_action',),
                 obs_field: str = 'sensor_obs', seed: int = 0, indices: np.ndarray | None = None):
        if history < 1:
            raise ValueError(f'history must be >= 1, got {history}')
        n = len(dataset)
        if n == 0:
            raise ValueError(f'dataset {dataset.folder} holds no samples')
        self.history = history
        self.obs = torch.from_numpy(np.ascontiguousarray(dataset.arrays[obs_field], dtype=np.float32))
        self.targets = {name: torch.from_numpy(np.ascontiguousarray(dataset.arrays[name], dtype=np.float32))
                        for name in fields}
        lengths = np.diff(np.append(dataset.episode_starts, n))
        self.episode_start = torch.from_numpy(np.repeat(dataset.episode_starts, lengths))
        self.back = torch.arange(history - 1, -1, -1)  # H-1 ... 0: oldest first
        self.indices = torch.from_numpy(np.arange(n) if indices is None else np.asarray(indices))
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.indices)

    def windows(self, index: torch.Tensor) -> torch.Tensor:
        """Observation windows (len(index), H, obs_dim) ending at each sample in `index`."""
        rows = torch.maximum(index[:, None] - self.back, self.episode_start[index][:, None])
        return self.obs[rows]

    def sample(self, batch: int) -> dict[str, torch.Tensor]:
        pick = self.indices[torch.randint(len(self.indices), (batch,), generator=self.generator)]
        out = {'obs_history': self.windows(pick), 'index': pick}
        for name, values in self.targets.items():
            out[name] = values[pick]
        return out
