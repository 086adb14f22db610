"""Running a checkpoint tick by tick, for one environment or several stepped together.

A policy's memory differs by kind: a flat policy has none, a window student keeps the last
`history` steps (`HistoryBuffer`), a recurrent student keeps its hidden state. `Actor` holds that
memory per environment, so evaluation and data collection (teacher, DAgger student) run every
kind the same way, with exactly the inputs training used: the window a `HistoryBuffer` builds, or
one step row and the state carried from the episode's start.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from distill_ros.policies.checkpoint import Checkpoint
from distill_ros.policies.students import is_recurrent


class Actor:
    """`n` environments' memories of one checkpoint. Call `reset(i)` when environment i starts an
    episode, `act(obs, envs)` with the newest observations of some environments, then
    `executed(envs, actions)` with the actions they executed (the next step's previous action)."""

    def __init__(self, ckpt: Checkpoint, n: int = 1):
        self.ckpt, self.n = ckpt, n
        self.model = ckpt.model.eval()
        self.flat = ckpt.history is None
        self.recurrent = is_recurrent(self.model)
        self.buffers = [ckpt.history_buffer() for _ in range(n)] if not self.flat else []
        self.state = self.model.initial_state(n) if self.recurrent else None

    def reset(self, i: int | None = None) -> None:
        """Start environment i's episode (every environment's when i is None)."""
        for j in (range(self.n) if i is None else (i,)):
            if self.buffers:
                self.buffers[j].reset()
            if self.state is not None:
                self.state[:, j] = 0.0

    @torch.no_grad()
    def act(self, obs: np.ndarray, envs: Sequence[int] | None = None) -> np.ndarray:
        """Action means (len(envs), action_dim), before clipping, for observations (len(envs), obs_dim)."""
        envs = list(range(self.n)) if envs is None else list(envs)
        if self.flat:
            return self.model(torch.as_tensor(np.asarray(obs), dtype=torch.float32)).numpy().astype(np.float64)
        windows = torch.as_tensor(np.stack([self.buffers[i].push(o) for i, o in zip(envs, obs)]))
        if not self.recurrent:
            return self.model(windows).numpy().astype(np.float64)
        index = torch.as_tensor(envs)
        mean, state = self.model.step(windows, self.state[:, index])
        self.state[:, index] = state
        return mean.numpy().astype(np.float64)

    def executed(self, envs: Sequence[int], actions: np.ndarray) -> None:
        for i, action in zip(envs, actions):
            if self.buffers:
                self.buffers[i].set_action(action)
