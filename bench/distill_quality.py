"""Distillation quality: every method on the same teacher, task and sample budget, then teacher vs
students on the same held-out randomized episodes (sensor noise and latency on).

    python bench/distill_quality.py --task hopper                 # the documented run
    python bench/distill_quality.py --task cartpole --small       # a few minutes, for CI-sized checks
    python bench/distill_quality.py --task hopper --teacher-noise 1.0   # teacher recorded with its noise (DART)

Methods (the ablation that justifies each part):
    bc-nohist           BC, no history (one observation, no past actions)
    bc                  BC on an 8-step history with past actions
    bc+kl+feature       + Gaussian KL (logit matching) + feature matching on the teacher's latent
    dagger-bc           BC + DAgger rounds
    full                BC + KL + feature + DAgger (the default config)
    direct-tiny         `full` at the smallest size (16x16)
    progressive-tiny    teacher -> 256x256 -> 64x64 -> 16x16, then DAgger
Sample budget: DAgger methods get `base` teacher episodes plus rounds x episodes_per_round
collected under their own mixing; offline methods get the same number of teacher episodes.

Writes OUT/<method>/ (distillation outputs), OUT/report/ (table + plots via distill-ros report),
and prints the table. Re-running skips methods whose student exists (delete OUT/<method> to redo).
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import yaml

from distill_ros.data.dataset import load_dataset
from distill_ros.distill.config import parse_config
from distill_ros.distill.dagger import collect_teacher_dataset
from distill_ros.distill.runner import run_distill
from distill_ros.distill.trainer import concat_datasets
from distill_ros.paths import config_path
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.teachers import shipped_teacher

BC_ONLY = {'bc': {'weight': 1.0}, 'kl': {'weight': 0.0}, 'feature': {'weight': 0.0}}
METHODS = {
    'bc-nohist': {'student': {'history': 1, 'past_actions': False}, 'losses': BC_ONLY, 'dagger': {'rounds': 0}},
    'bc': {'losses': BC_ONLY, 'dagger': {'rounds': 0}},
    'bc+kl+feature': {'dagger': {'rounds': 0}},
    'dagger-bc': {'losses': BC_ONLY},
    'full': {},
    'direct-tiny': {'student': {'sizes': {'hidden': [16, 16]}}},
    'progressive-tiny': {'student': {'sizes': {'hidden': [16, 16]}},
                         'progressive': {'stages': [{'sizes': {'hidden': [256, 256]}},
                                                    {'sizes': {'hidden': [64, 64]}}]}},
}


def merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != 'sizes':
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--task', default='hopper')
    parser.add_argument('--teacher', help='teacher checkpoint (default: the shipped one)')
    parser.add_argument('--out', default='bench_out/distill_quality')
    parser.add_argument('--methods', nargs='*', default=list(METHODS))
    parser.add_argument('--config', help='base distillation YAML (default: config/distill/<task>.yaml, else '
                        'default.yaml); the methods change only their own keys')
    parser.add_argument('--base-episodes', type=int, default=80, help='teacher episodes every method starts from')
    parser.add_argument('--rounds', type=int, help='DAgger rounds (default: the config\'s)')
    parser.add_argument('--round-episodes', type=int, help='episodes per DAgger round (default: the config\'s)')
    parser.add_argument('--steps', type=int, help='optimizer steps per stage (default: the config\'s)')
    parser.add_argument('--round-steps', type=int, help='optimizer steps after each round (default: the config\'s)')
    parser.add_argument('--episodes', type=int, default=100, help='held-out evaluation episodes')
    parser.add_argument('--small', action='store_true', help='tiny sizes (minutes): 10+2x4 episodes, 800 steps')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--teacher-noise', type=float, default=0.0,
                        help='record the teacher episodes with its own action noise (DART; 1.0 = its std)')
    args = parser.parse_args()
    base_config = Path(args.config) if args.config else config_path(f'distill/{args.task}.yaml')
    if not base_config.is_file():
        base_config = config_path('distill/default.yaml')
    defaults = yaml.safe_load(base_config.read_text()) or {}  # the config users get
    given = parse_config(defaults)
    if args.small:
        args.base_episodes, args.rounds, args.round_episodes, args.steps, args.round_steps = 10, 2, 4, 800, 400
        args.episodes = min(args.episodes, 20)
    rounds = given.dagger.rounds if args.rounds is None else args.rounds
    round_episodes = given.dagger.episodes_per_round if args.round_episodes is None else args.round_episodes
    steps = given.train.steps if args.steps is None else args.steps
    round_steps = given.dagger.steps_per_round if args.round_steps is None else args.round_steps
    print(f'base config {base_config}: {steps} steps; DAgger {rounds} rounds x {round_episodes} episodes, '
          f'{round_steps} steps each')
    out = Path(args.out)
    teacher = ckpt_io.load(args.teacher or shipped_teacher(args.task))
    extra = rounds * round_episodes
    base_dir, extra_dir = out / 'data' / 'base', out / 'data' / 'extra'
    started = time.monotonic()
    if not (base_dir / 'manifest.json').is_file():
        collect_teacher_dataset(args.task, teacher, base_dir, args.base_episodes, seed_base=0,
                                teacher_noise=args.teacher_noise)
    if extra and not (extra_dir / 'manifest.json').is_file():
        collect_teacher_dataset(args.task, teacher, extra_dir, extra, seed_base=args.base_episodes,
                                teacher_noise=args.teacher_noise)
    base = load_dataset(base_dir)
    budget = concat_datasets([base, load_dataset(extra_dir)]) if extra else base
    print(f'data: {len(base)} samples in {args.base_episodes} base episodes; offline methods get '
          f'{len(budget)} samples in {args.base_episodes + extra} episodes ({time.monotonic() - started:.0f} s)')
    common = {'train': {'steps': steps, 'seed': args.seed},
              'dagger': {'rounds': rounds, 'episodes_per_round': round_episodes, 'steps_per_round': round_steps},
              'eval': {'episodes': 0}}
    timings = {}
    for name in args.methods:
        if name not in METHODS:
            raise SystemExit(f'unknown method {name!r}; expected some of {list(METHODS)}')
        target = out / name
        if (target / 'student' / 'policy.json').is_file():
            print(f'{name}: exists, skipped')
            continue
        cfg = parse_config(merge(merge(defaults, common), METHODS[name]), where=name)
        data = budget if cfg.dagger.rounds == 0 else base
        t0 = time.monotonic()
        print(f'--- {name}')
        run_distill(data, teacher, cfg, target)
        timings[name] = round(time.monotonic() - t0, 1)
        (target / 'wall_time.json').write_text(json.dumps({'wall_s': timings[name]}))
    students = {name: out / name / 'student' for name in args.methods}
    curves = [out / name / 'learning_curve.jsonl' for name in args.methods]
    try:
        from distill_ros.distill.report import evaluate_policies, write_report
    except ImportError:
        print('the report module is not available; students are in', out)
        return
    rows = evaluate_policies(args.task, teacher, {n: ckpt_io.load(p) for n, p in students.items()}, args.episodes)
    for row in rows:
        wall = out / row['name'] / 'wall_time.json'
        if wall.is_file():
            row['train_wall_s'] = json.loads(wall.read_text())['wall_s']
    path = write_report(rows, out / 'report', curves, title=f'Distillation quality on {args.task}')
    print(f'report: {path}')


if __name__ == '__main__':
    main()
