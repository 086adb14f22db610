"""The student's inputs over a loaded dataset, for training: observation-history windows for window
students, and truncated-BPTT sequences (with burn-in, padded and masked at episode ends) or whole
episodes for recurrent students; random draws of training samples from a seeded generator.

A window for sample i holds the steps i-H+1 ... i of i's episode, oldest first (frame-major:
shape (batch, H, step_dim)), built by `observation.history_steps` and `observation.window_rows`,
the offline form of the `HistoryBuffer` the student runs with. Windows never cross episode
boundaries. The step rows are precomputed once as a tensor, so a batch is a few index operations.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from distill_ros.data.dataset import Dataset
from distill_ros.observation import history_steps, window_rows


def episode_start_of(episode_starts: np.ndarray, n: int) -> torch.Tensor:
    """For each of `n` samples, the index of its episode's first sample."""
    lengths = np.diff(np.append(episode_starts, n))
    return torch.from_numpy(np.repeat(np.asarray(episode_starts, dtype=np.int64), lengths))


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


@dataclass
class Batch:
    """Student inputs and the samples their loss is computed at.

    inputs   windows (batch, H, step_dim), or step sequences (batch, T, step_dim) run from a zero state
    index    the dataset row of each loss term (batch,), or of each masked-in sequence step
    mask     sequences only: (batch, T), True on the steps whose output counts"""

    inputs: torch.Tensor
    index: torch.Tensor
    mask: torch.Tensor | None = None


class HistorySampler:
    """The inputs of a student with `history` steps (and the previous action in each step when
    `past_actions`) over `dataset`, and seeded random draws from its samples `indices` (default: all).

    `draw(n)` picks n samples; `windows`, `sequences` and `episodes` give the batches a window or a
    recurrent student trains and validates on; `window_batches` and `episode_batches` walk a set in
    chunks. The trainer draws every batch here; `generator` is saved with its state for --resume."""

    def __init__(self, dataset: Dataset, history: int, past_actions: bool = False, indices: np.ndarray | None = None,
                 seed: int = 0):
        if history < 1:
            raise ValueError(f'history must be >= 1, got {history}')
        n = len(dataset)
        if n == 0:
            raise ValueError(f'dataset {dataset.folder} holds no samples')
        self.history, self.n = history, n
        self.episode_starts = dataset.episode_starts
        steps = history_steps(dataset.arrays['sensor_obs'], dataset.arrays['action'] if past_actions else None,
                              dataset.episode_starts)
        self.steps = torch.from_numpy(np.ascontiguousarray(steps))   # (n, step_dim): x_k for every sample
        self.episode_start = episode_start_of(dataset.episode_starts, n)
        self.episode_end = episode_end_of(dataset.episode_starts, n)
        self.indices = torch.from_numpy(np.arange(n) if indices is None else np.asarray(indices))
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.indices)

    def draw(self, n: int) -> torch.Tensor:
        """`n` samples of `indices`, uniformly with replacement."""
        return self.indices[torch.randint(len(self.indices), (n,), generator=self.generator)]

    def windows(self, index: torch.Tensor) -> Batch:
        """The history windows (len(index), H, step_dim) ending at each sample of `index`."""
        rows = window_rows(index.numpy(), self.episode_start[index].numpy(), self.history)
        return Batch(self.steps[torch.from_numpy(rows)], index)

    def sequences(self, t0: torch.Tensor, burn_in: int, length: int) -> Batch:
        """Truncated-BPTT sequences whose loss starts at each sample of `t0` (`sequence_rows`)."""
        rows, mask = sequence_rows(t0, self.episode_start[t0], self.episode_end[t0], burn_in, length)
        return Batch(self.steps[rows], rows[mask], mask)

    def episodes(self, episodes: Sequence[int]) -> Batch:
        """Whole episodes from their first step, padded and masked (`episode_rows`)."""
        rows, mask = episode_rows(self.episode_starts, self.n, episodes)
        return Batch(self.steps[rows], rows[mask], mask)

    def window_batches(self, index: torch.Tensor, chunk: int = 8192) -> Iterator[Batch]:
        for start in range(0, len(index), chunk):
            yield self.windows(index[start:start + chunk])

    def episode_batches(self, episodes: Sequence[int], chunk: int = 16) -> Iterator[Batch]:
        for start in range(0, len(episodes), chunk):
            yield self.episodes(episodes[start:start + chunk])
