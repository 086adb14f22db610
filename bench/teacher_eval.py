#!/usr/bin/env python3
"""Teacher quality and cost per task: mean ± std return over held-out randomized episodes (sensor
noise, latency and domain randomization on), parameter count, and inference latency p50/p99 at
batch 1 on one thread (torch eager, after warm-up; `distill_ros.distill.report.measure_latency`).

    python bench/teacher_eval.py                              # shipped teachers, 100 episodes each
    python bench/teacher_eval.py --episodes 5 --tasks cartpole    # CI-sized
    python bench/teacher_eval.py --teacher hopper=runs/hopper/best
"""
from __future__ import annotations

import argparse

import torch
from rich.console import Console
from rich.table import Table

from distill_ros.distill.evaluate import eval_seeds, privileged_actor, run_episodes, summarize
from distill_ros.distill.report import measure_latency
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.mlp import parameter_count
from distill_ros.policies.teachers import shipped_teacher
from distill_ros.sim import DistillEnv, load_task, task_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--tasks', nargs='*', default=task_names())
    parser.add_argument('--episodes', type=int, default=100)
    parser.add_argument('--teacher', action='append', default=[], help='TASK=CHECKPOINT (default: shipped)')
    args = parser.parse_args()
    torch.set_num_threads(1)
    chosen = dict(item.split('=', 1) for item in args.teacher)

    table = Table(title=f'teachers on {args.episodes} held-out randomized episodes (noise, latency, DR on)')
    for column in ('task', 'checkpoint', 'mean ± std return', '95% CI', 'best', 'fall rate', 'parameters',
                   'latency p50 µs', 'p99 µs'):
        table.add_column(column, justify='right')
    for task in args.tasks:
        try:
            path = chosen.get(task) or shipped_teacher(task)
        except ckpt_io.CheckpointError as exc:
            table.add_row(task, 'none', str(exc).split(';')[0], '', '', '', '', '', '')
            continue
        ckpt = ckpt_io.load(path)
        env = DistillEnv(task)
        ckpt.check_task(env.privileged_spec, env.action_names)
        results = run_episodes(env, privileged_actor(ckpt), eval_seeds(args.episodes), progress=True)
        s = summarize(results)
        latency = measure_latency(ckpt)
        p50, p99 = latency['p50_us'], latency['p99_us']
        table.add_row(task, str(path), f"{s['mean_return']:.1f} ± {s['std_return']:.1f}", f"± {s['ci95']:.1f}",
                      f'{load_task(task).best_return:.0f}', f"{s['fall_rate']:.0%}",
                      f'{parameter_count(ckpt.model):,}', f'{p50:.0f}', f'{p99:.0f}')
    Console(width=200).print(table)


if __name__ == '__main__':
    main()
