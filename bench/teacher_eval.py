#!/usr/bin/env python3
"""Teacher quality and cost per task: mean ± std return over held-out randomized episodes (sensor
noise, latency and domain randomization on), parameter count, and inference latency p50/p99 at
batch 1 on one thread (torch eager, after warm-up; `distill_ros.distill.report.measure_latency`).

    python bench/teacher_eval.py                              # shipped teachers, 100 episodes each
    python bench/teacher_eval.py --episodes 5 --tasks cartpole    # CI-sized
    python bench/teacher_eval.py --teacher hopper=runs/hopper/best
    python bench/teacher_eval.py --tasks --curves ant=runs/ant/learning_curve.jsonl --plot curves.png
                                 # learning curves (held-out evaluations during training) as a PNG
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from distill_ros.distill.evaluate import eval_seeds, privileged_actor, run_episodes, summarize
from distill_ros.distill.report import measure_latency
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.mlp import parameter_count
from distill_ros.sim import DistillEnv, load_task, task_names
from distill_ros.teachers import shipped_teacher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--tasks', nargs='*', default=task_names())
    parser.add_argument('--episodes', type=int, default=100)
    parser.add_argument('--teacher', action='append', default=[], help='TASK=CHECKPOINT (default: shipped)')
    parser.add_argument('--curves', action='append', default=[],
                        help='NAME=OUT/learning_curve.jsonl of a train-teacher run (repeatable)')
    parser.add_argument('--plot', default='teacher_curves.png', help='PNG for --curves')
    parser.add_argument('--target', action='append', default=[], help='TASK=RETURN line drawn on the plot')
    args = parser.parse_args()
    if args.curves:
        plot_curves(dict(item.split('=', 1) for item in args.curves), Path(args.plot),
                    {k: float(v) for k, v in (item.split('=', 1) for item in args.target)})
    if not args.tasks:
        return
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


def plot_curves(curves: dict[str, str], out: Path, targets: dict[str, float]) -> None:
    """Mean held-out return (± 95 % CI, `eval_episodes` episodes per point) against training steps."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, path in curves.items():
        points = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        steps = [p['steps'] for p in points]
        mean = [p['mean_return'] for p in points]
        ci = [p.get('ci95', 0.0) for p in points]
        line, = ax.plot(steps, mean, marker='o', markersize=3, label=name)
        ax.fill_between(steps, [m - c for m, c in zip(mean, ci)], [m + c for m, c in zip(mean, ci)],
                        color=line.get_color(), alpha=0.15)
        best = max(points, key=lambda p: p['mean_return'])
        print(f"{name}: {len(points)} evaluations, best {best['mean_return']:.0f} at {best['steps']:,} steps "
              f"({best['wall_s'] / 60:.0f} min), last {points[-1]['mean_return']:.0f} at {points[-1]['steps']:,}")
    for task, value in targets.items():
        ax.axhline(value, linestyle='--', linewidth=1, color='gray')
        ax.annotate(f'{task} target {value:.0f}', (0.01, value), xycoords=('axes fraction', 'data'), fontsize=7,
                    xytext=(0, 2), textcoords='offset points')
    ax.set_xlabel('environment steps')
    ax.set_ylabel('held-out mean return (95 % CI)')
    ax.set_title('teacher training (stable-baselines3 PPO, 2-core VM)')
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
