#!/usr/bin/env python3
"""Env steps/s per task: raw gymnasium vs. the privileged/sensor split, with and without the
sim-to-real gaps (domain randomization, sensor noise, latency).

For a task on a model file (the quadruped) "raw" is `mj_step` x decimation on the same compiled
model with its torque motors and nothing else; the split then adds the PD position loop (MuJoCo
actuators, every physics step), the YAML reward and termination, and both observations.

The three variants run interleaved in rounds (so a noisy neighbour hits all of them alike) on the
same seeded random actions, resets included; the table shows medians over rounds and the cost of
the split as a fraction of the raw rate (target: under 20 %).

    python bench/sim_rate.py                  # all tasks, 7 rounds of 2000 steps
    python bench/sim_rate.py --tasks cartpole --rounds 3 --steps 500   # CI-sized
    python bench/sim_rate.py --tasks quadruped --rounds 5 --steps 1000  # PD loop vs raw mj_step
"""
from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import mujoco
import numpy as np
from rich.console import Console
from rich.table import Table

from distill_ros.sim import DistillEnv, load_task, task_names
from distill_ros.sim import model as mj
from distill_ros.sim.task import TaskSpec


class RawMujoco(gym.Env):
    """A model-file task's bare physics: ctrl = action, `mj_step` x decimation, no observation
    beyond qpos, no reward; truncated at the task's episode length."""

    def __init__(self, task: TaskSpec, action_space: gym.spaces.Box):
        self.model = mj.mjcf_model(task)
        self.data = mujoco.MjData(self.model)
        self.decimation, self.limit, self.action_space = task.actuation.decimation, task.max_episode_steps, action_space
        self.t = 0

    def reset(self, *, seed=None, options=None):
        mujoco.mj_resetData(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)
        self.t = 0
        return self.data.qpos.copy(), {}

    def step(self, action):
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=self.decimation)
        self.t += 1
        return self.data.qpos.copy(), 0.0, False, self.t >= self.limit, {}


def run(env: gym.Env, actions: np.ndarray, seed: int) -> tuple[float, float, float]:
    """(steps/s counting step() time only, mean reset() time in µs, steps/s overall)."""
    clock = time.perf_counter
    env.reset(seed=seed)
    step_time = reset_time = 0.0
    resets = 0
    for action in actions:
        t0 = clock()
        _, _, terminated, truncated, _ = env.step(action)
        t1 = clock()
        step_time += t1 - t0
        if terminated or truncated:
            env.reset()
            reset_time += clock() - t1
            resets += 1
    n = len(actions)
    return n / step_time, 1e6 * reset_time / max(resets, 1), n / (step_time + reset_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--tasks', nargs='*', default=task_names())
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--steps', type=int, default=2000)
    args = parser.parse_args()

    table = Table(title='env.step() rate, steps/s (median over rounds, seeded random actions)')
    for column in ('task', 'raw (gymnasium / mj_step)', 'split only', 'split + gaps', 'split cost', 'full cost',
                   'reset µs raw / full', 'steps/s with resets raw / full'):
        table.add_column(column, justify='right')
    for name in args.tasks:
        task = load_task(name)
        time_limit = task.max_episode_steps
        split = DistillEnv(task, randomize=False, sensor_noise=False, latency=False)
        raw = (gym.make(task.env_id, max_episode_steps=time_limit, **task.env_kwargs) if task.is_gymnasium
               else RawMujoco(task, split.action_space))
        variants = {'raw': raw, 'split': split, 'full': DistillEnv(task)}
        rng = np.random.default_rng(0)
        space = variants['raw'].action_space
        actions = rng.uniform(space.low, space.high, size=(args.steps, *space.shape))
        results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in variants}
        for env in variants.values():  # warm-up
            run(env, actions[:100], seed=0)
        for r in range(args.rounds):
            for k, env in variants.items():
                results[k].append(run(env, actions, seed=r))
        med = {k: [statistics.median(col) for col in zip(*v)] for k, v in results.items()}
        raw, split, full = med['raw'], med['split'], med['full']
        table.add_row(name, f'{raw[0]:,.0f}', f'{split[0]:,.0f}', f'{full[0]:,.0f}',
                      f'{1 - split[0] / raw[0]:.1%}', f'{1 - full[0] / raw[0]:.1%}',
                      f'{raw[1]:.0f} / {full[1]:.0f}', f'{raw[2]:,.0f} / {full[2]:,.0f}')
        for env in variants.values():
            env.close()
    Console().print(table)


if __name__ == '__main__':
    main()
