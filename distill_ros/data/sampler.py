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


def episode_start_of(episode_starts: np.ndarray, n: int) -> torch.Tensor:
    """For each of `n` samples, the index of its episode's first sample."""
    lengths = np.diff(np.append(episode_starts, n))
    return torch.from_numpy(np.repeat(np.asarray(episode_starts, dtype=np.int64), lengths))


def window_rows(index: torch.Tensor, start_of_index: torch.Tensor, history: int) -> torch.Tensor:
    """(len(index), history) sample rows of each window ending at `index`, oldest first, the
    episode's first row repeated before its start (`start_of_index`: episode start of each index)."""
    back = torch.arange(history - 1, -1, -1)
    return torch.maximum(index[:, None] - back, start_of_index[:, None])


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
        self.episode_start = episode_start_of(dataset.episode_starts, n)
        self.indices = torch.from_numpy(np.arange(n) if indices is None else np.asarray(indices))
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.indices)

    def windows(self, index: torch.Tensor) -> torch.Tensor:
        """Observation windows (len(index), H, obs_dim) ending at each sample in `index`."""
        return self.obs[window_rows(index, self.episode_start[index], self.history)]

    def sample(self, batch: int) -> dict[str, torch.Tensor]:
        pick = self.indices[torch.randint(len(self.indices), (batch,), generator=self.generator)]
        out = {'obs_history': self.windows(pick), 'index': pick}
        for name, values in self.targets.items():
            out[name] = values[pick]
        return out
