"""Where a student's gap to its teacher comes from: the sensor latency. On the same held-out episodes,
the teacher as trained (privileged state, undelayed) and with its privileged state delayed as the
student's sensors are, and the student with each episode's latency as drawn and forced to each
value of the task's `latency_steps` range.

    python bench/latency_split.py --task hopper --student hopper --episodes 100
    python bench/latency_split.py --task cartpole --student cartpole --episodes 10     # a minute

Prints a markdown table (return, ratio to the undelayed teacher, falls) and writes it to --out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from distill_ros.distill.evaluate import PolicyActor, eval_seeds, run_episodes, summarize
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.sim import PRIVILEGED, DistillEnv
from distill_ros.students import student_path
from distill_ros.teachers import shipped_teacher


class FixedLatencyEnv(DistillEnv):
    """The task's episodes with the sensor latency forced to `latency` steps (the rest of each seed's
    draw unchanged)."""

    def __init__(self, task: str, latency: int):
        super().__init__(task)
        self.forced = latency

    def _draw_sensor_episode(self, rng) -> None:
        super()._draw_sensor_episode(rng)
        self.latency_steps = self.forced   # before the first observation (and its sample age, if any)


class DelayedTeacher:
    """The teacher acting on its privileged observation of `delay` policy steps ago."""

    def __init__(self, teacher: ckpt_io.Checkpoint, delay: int):
        self.teacher, self.delay, self.past = teacher, delay, []

    def reset(self) -> None:
        self.past.clear()

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        self.past.append(obs[PRIVILEGED].copy())
        return self.teacher.act(self.past[max(0, len(self.past) - 1 - self.delay)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--task', default='hopper')
    parser.add_argument('--teacher', help='teacher checkpoint (default: the shipped one)')
    parser.add_argument('--student', default='hopper', help='student checkpoint folder or shipped name')
    parser.add_argument('--episodes', type=int, default=100)
    parser.add_argument('--out', default='bench_out/latency_split.md')
    args = parser.parse_args(argv)
    teacher = ckpt_io.load(args.teacher or shipped_teacher(args.task))
    student = ckpt_io.load(student_path(args.student))
    seeds = eval_seeds(args.episodes)
    probe = DistillEnv(args.task)
    low, high = probe.task.latency_steps
    drawn = [probe.reset(seed=s)[1]['latency_steps'] for s in seeds]
    rows = []

    def row(label: str, env: DistillEnv, actor) -> None:
        summary = summarize(run_episodes(env, actor, seeds, reset_policy=actor.reset, progress=True))
        rows.append((label, summary))
        print(f"{label}: {summary['mean_return']:.1f}, falls {summary['fall_rate']:.0%}", flush=True)

    for delay in range(0, high + 1):
        row('teacher (privileged state, undelayed)' if delay == 0 else
            f'teacher, its privileged state {delay} step{"s" * (delay > 1)} late', DistillEnv(args.task),
            DelayedTeacher(teacher, delay))
    counts = ', '.join(f'{drawn.count(v)} with {v}' for v in range(low, high + 1))
    row(f'student, latency as drawn ({counts})', DistillEnv(args.task), PolicyActor(student))
    for latency in range(low, high + 1):
        row(f'student, sensor latency forced to {latency} step{"s" * (latency != 1)}',
            FixedLatencyEnv(args.task, latency), PolicyActor(student))
    best = rows[0][1]['mean_return']
    lines = [f'{args.task}, {args.episodes} held-out episodes; teacher {args.teacher or "shipped"}, student '
             f'{args.student}', '', '| policy | return | ratio | falls |', '|---|---|---|---|']
    lines += [f"| {label} | {s['mean_return']:.1f} | {s['mean_return'] / best:.3f} | {s['fall_rate']:.0%} |"
              for label, s in rows]
    text = '\n'.join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
