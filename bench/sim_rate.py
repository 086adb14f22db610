#!/usr/bin/env python3
"""Env steps/s per task: raw gymnasium vs. the privileged/sensor split, with and without the
sim-to-real gaps (domain randomization, sensor noise, latency).

The three variants run interleaved in rounds (so a noisy neighbour hits all of them alike) on the
same seeded random actions, resets included; the table shows medians over rounds and the cost of
the split as a fraction of the raw rate (target: under 20 %).

    python bench/sim_rate.py                  # all tasks, 7 rounds of 2000 steps
    python bench/sim_rate.py --tasks cartpole --rounds 3 --steps 500   # CI-sized
"""
from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.table import Table

from distill_ros.sim import DistillEnv, load_task, task_names


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
    for column in ('task', 'gymnasium raw', 'split only', 'split + gaps', 'split cost', 'full cost',
                   'reset µs raw / full', 'steps/s with resets raw / full'):
        table.add_column(column, justify='right')
    for name in args.tasks:
        task = load_task(name)
        time_limit = task.max_episode_steps
        variants = {
            'raw': gym.make(task.env_id, max_episode_steps=time_limit, **task.env_kwargs),
            'split': DistillEnv(task, randomize=False, sensor_noise=False, latency=False),
            'full': DistillEnv(task),
        }
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
