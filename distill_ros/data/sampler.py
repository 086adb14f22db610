"""Random minibatches from a loaded dataset, for training: observation-history windows for window
students, and truncated-BPTT sequences (with burn-in, padded and masked at episode ends) or whole
episodes for recurrent students.

A window for sample i holds the observations i-H+1 ... i of i's episode, oldest first (frame-major:
shape (batch, H, obs_dim)); before an episode's first sample the first observation repeats, as the
student controller's history buffer does at start-up. Windows never cross episode boundaries.
Everything is precomputed as tensors, so drawing a batch is two index operations.
"""
from __future__ import annotations

from collections.abc import Sequence

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


def episode_end_of(episode_starts: np.ndarray, n: int) -> torch.Tensor:
    """For each of `n` samples, one past its episode's last sample."""
    ends = np.append(np.asarray(episode_starts, dtype=np.int64)[1:], n)
    lengths = np.diff(np.append(episode_starts, n))
    return torch.from_numpy(np.repeat(ends, lengths))


def sequence_rows(t0: torch.Tensor, start_of_t0: torch.Tensor, end_of_t0: torch.Tensor, burn_in: int,
                  length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows (batch, burn_in + length) of truncated-BPTT sequences whose loss starts at `t0`.

    A sequence starts `burn_in` steps before t0 (where the hidden state, zero at the sequence's
    start, warms up without loss) but never before its episode's start: there the zero state is
    exactly the deployed one. Rows past the episode's end repeat its last row and are padding.
    Returns the rows and the loss mask (True on t0 ... t0 + length - 1 within the episode)."""
    first = torch.maximum(t0 - burn_in, start_of_t0)
    rows = first[:, None] + torch.arange(burn_in + length)
    mask = (rows >= t0[:, None]) & (rows < (t0 + length)[:, None]) & (rows < end_of_t0[:, None])
    return torch.minimum(rows, end_of_t0[:, None] - 1), mask


def episode_rows(episode_starts: np.ndarray, n: int, episodes: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows (len(episodes), longest) of whole episodes, padded with each one's last row, and the
    mask of real samples: what a recurrent policy sees from an episode's start."""
    ends = np.append(np.asarray(episode_starts, dtype=np.int64)[1:], n)
    starts = torch.as_tensor(np.asarray(episode_starts, dtype=np.int64)[list(episodes)])
    stops = torch.as_tensor(ends[list(episodes)])
    longest = int((stops - starts).max()) if len(starts) else 0
    rows = starts[:, None] + torch.arange(longest)
    mask = rows < stops[:, None]
    return torch.minimum(rows, stops[:, None] - 1), mask


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
