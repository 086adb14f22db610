"""Distillation quality: every method on the same teacher, task and sample budget, then teacher vs
students on the same held-out randomized episodes (sensor noise and latency on).

    python bench/distill_quality.py --task hopper                 # the documented ablation run
    python bench/distill_quality.py --task cartpole --small       # a few minutes, for CI-sized checks
    python bench/distill_quality.py --task hopper --teacher-noise 1.0   # teacher recorded with its noise (DART)
    python bench/distill_quality.py --task hopper --methods dagger-mlp dagger-gru dagger-tcn \
        --seeds 0 1 2 --finetune                                  # student types x seeds, + RL fine-tuning

Methods (the ablation that justifies each part):
    bc-nohist           BC, no history (one observation, no past actions)
    bc                  BC on the config's student (8-step history with past actions)
    bc+kl+feature       + Gaussian KL (logit matching) + feature matching on the teacher's latent
    dagger-bc           BC + DAgger rounds
    full                BC + KL + feature + DAgger (the default config)
    direct-tiny         `full` at the smallest size (16x16)
    progressive-tiny    teacher -> 256x256 -> 64x64 -> 16x16, then DAgger
Student types (BC, then with DAgger; the student acts alone after the first round):
    bc-mlp, dagger-mlp  MLP 128x128 on an 8-step window with past actions
    bc-tcn, dagger-tcn  TCN over a 64-step window (5 dilated layers, receptive field 63)
    bc-gru, dagger-gru  GRU 64 -> 64 carrying its state through the episode (TBPTT, burn-in 32)
Sample budget: DAgger methods get `base` teacher episodes plus rounds x episodes_per_round
collected under their own mixing; offline methods get the same number of teacher episodes.
`--finetune [SEED ...]` adds a row `<method>+ft` per DAgger method (of those seeds): `distill-ros
finetune` of its student (config/finetune/<task>.yaml, else default.yaml); its env steps are
reported beside the others.

With several `--seeds`, each method is trained once per seed (same recorded data; the seed sets
the initialisation, the batches and the DAgger episodes), every student is evaluated on the same
held-out episodes, and the table gives the mean over seeds with its spread (min-max of the ratio).

Writes OUT/<method>/seed<k>/ (distillation outputs), OUT/report/ (per-student table + plots, and
seeds.md, the table over seeds), and prints it. Re-running skips students that exist (delete
OUT/<method> to redo).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from distill_ros.data.dataset import load_dataset
from distill_ros.distill.config import parse_config
from distill_ros.distill.dagger import collect_teacher_dataset
from distill_ros.distill.run_files import LEARNING_CURVE
from distill_ros.distill.runner import run_distill
from distill_ros.distill.trainer import concat_datasets
from distill_ros.paths import config_path
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.teachers import shipped_teacher

BC_ONLY = {'bc': {'weight': 1.0}, 'kl': {'weight': 0.0}, 'feature': {'weight': 0.0}}
STUDENT_ACTS = {'beta': 0.5, 'beta_decay': 0.0}   # the teacher executes in round 1 only
MLP = {'type': 'mlp', 'history': 8, 'past_actions': True, 'sizes': {'hidden': [128, 128]}}
TCN = {'type': 'tcn', 'history': 64, 'past_actions': True,
       'sizes': {'channels': [32, 32, 32, 32, 32], 'kernel_size': 3, 'latent': 64}}
GRU = {'type': 'gru', 'history': 1, 'past_actions': True, 'sizes': {'hidden_size': 64, 'hidden': [64]}}
SEQUENCES = {'batch_size': 2048, 'sequence_length': 32, 'burn_in': 32}
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
    'bc-mlp': {'student': MLP, 'losses': BC_ONLY, 'dagger': {'rounds': 0}},
    'dagger-mlp': {'student': MLP, 'losses': BC_ONLY, 'dagger': STUDENT_ACTS},
    'bc-tcn': {'student': TCN, 'losses': BC_ONLY, 'dagger': {'rounds': 0}},
    'dagger-tcn': {'student': TCN, 'losses': BC_ONLY, 'dagger': STUDENT_ACTS},
    'bc-gru': {'student': GRU, 'losses': BC_ONLY, 'dagger': {'rounds': 0}, 'train': SEQUENCES},
    'dagger-gru': {'student': GRU, 'losses': BC_ONLY, 'dagger': STUDENT_ACTS, 'train': SEQUENCES},
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
    parser.add_argument('--methods', nargs='*', default=list(METHODS),
                        help='methods to run; NAME:0,1 runs NAME with its own seeds instead of --seeds')
    parser.add_argument('--config', help='base distillation YAML (default: config/distill/<task>.yaml, else '
                        'default.yaml); the methods change only their own keys')
    parser.add_argument('--base-episodes', type=int, default=80, help='teacher episodes every method starts from')
    parser.add_argument('--rounds', type=int, help='DAgger rounds (default: the config\'s)')
    parser.add_argument('--round-episodes', type=int, help='episodes per DAgger round (default: the config\'s)')
    parser.add_argument('--steps', type=int, help='optimizer steps per stage (default: the config\'s)')
    parser.add_argument('--round-steps', type=int, help='optimizer steps after each round (default: the config\'s)')
    parser.add_argument('--episodes', type=int, default=100, help='held-out evaluation episodes')
    parser.add_argument('--small', action='store_true', help='tiny sizes (minutes): 10+2x4 episodes, 800 steps')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0], help='training seeds per method')
    parser.add_argument('--finetune', type=int, nargs='*', metavar='SEED',
                        help='also fine-tune (RL) the DAgger students of these seeds (none given: every seed)')
    parser.add_argument('--finetune-config', help='fine-tuning YAML (default: config/finetune/<task>.yaml, else '
                        'default.yaml)')
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
    offline_methods = [m for m in (item.partition(':')[0] for item in args.methods) if m in METHODS
                       and merge(merge(defaults, {'dagger': {'rounds': rounds}}), METHODS[m]).get('dagger', {}).get(
                           'rounds', rounds) == 0]
    extra = extra if offline_methods else 0   # only offline methods train on extra teacher episodes
    if extra and not (extra_dir / 'manifest.json').is_file():
        collect_teacher_dataset(args.task, teacher, extra_dir, extra, seed_base=args.base_episodes,
                                teacher_noise=args.teacher_noise)
    base = load_dataset(base_dir)
    budget = concat_datasets([base, load_dataset(extra_dir)]) if extra else base
    print(f'data: {len(base)} samples in {args.base_episodes} base episodes; offline methods get '
          f'{len(budget)} samples in {args.base_episodes + extra} episodes ({time.monotonic() - started:.0f} s)')
    common = {'train': {'steps': steps},
              'dagger': {'rounds': rounds, 'episodes_per_round': round_episodes, 'steps_per_round': round_steps},
              'eval': {'episodes': 0}}
    plan = []   # (method, its seeds): `name:0,1` gives a method its own seeds, else --seeds
    for item in args.methods:
        name, _, seeds = item.partition(':')
        if name not in METHODS:
            raise SystemExit(f'unknown method {name!r}; expected some of {list(METHODS)}')
        plan.append((name, [int(k) for k in seeds.split(',')] if seeds else args.seeds))
    many = any(len(seeds) > 1 for _, seeds in plan)
    students, curves, budgets = {}, [], {}
    for name, seeds in plan:
        for seed in seeds:
            target = out / name / f'seed{seed}'
            label = f'{name}/s{seed}' if many else name
            method = merge(merge(merge(defaults, common), METHODS[name]), {'train': {'seed': seed}})
            cfg = parse_config(method, where=name)
            data = budget if cfg.dagger.rounds == 0 else base
            if not (target / 'student' / 'policy.json').is_file():
                t0 = time.monotonic()
                print(f'--- {name}, seed {seed}')
                summary = run_distill(data, teacher, cfg, target)
                samples = summary['samples'] + sum(r['samples'] for r in summary.get('dagger', []))
                (target / 'wall_time.json').write_text(json.dumps({'wall_s': round(time.monotonic() - t0, 1),
                                                                   'env_steps': samples}))
            students[label] = target / 'student'
            curves.append(target / LEARNING_CURVE)
            budgets[label] = json.loads((target / 'wall_time.json').read_text())
            if args.finetune is not None and cfg.dagger.rounds and (not args.finetune or seed in args.finetune):
                ft_target, ft_label = out / f'{name}+ft' / f'seed{seed}', label.replace(name, f'{name}+ft', 1)
                if not (ft_target / 'student' / 'policy.json').is_file():
                    from distill_ros.distill.finetune import finetune, load_finetune_config
                    path = Path(args.finetune_config) if args.finetune_config else config_path(
                        f'finetune/{args.task}.yaml')
                    ft_cfg = load_finetune_config(path if path.is_file() else None, {'train': {'seed': seed}})
                    t0 = time.monotonic()
                    print(f'--- {name}+ft, seed {seed}')
                    summary = finetune(ckpt_io.load(target / 'student'), teacher, ft_cfg, ft_target)
                    (ft_target / 'wall_time.json').write_text(json.dumps({
                        'wall_s': round(budgets[label]['wall_s'] + time.monotonic() - t0, 1),
                        'env_steps': budgets[label]['env_steps'] + summary['env_steps'],
                        'finetune_env_steps': summary['env_steps']}))
                students[ft_label] = ft_target / 'student'
                budgets[ft_label] = json.loads((ft_target / 'wall_time.json').read_text())
    try:
        from distill_ros.distill.report import evaluate_policies, write_report
    except ImportError:
        print('the report module is not available; students are in', out)
        return
    rows = evaluate_policies(args.task, teacher, {n: ckpt_io.load(p) for n, p in students.items()}, args.episodes)
    for row in rows:
        if row['name'] in budgets:
            row['train_wall_s'] = budgets[row['name']]['wall_s']
            row['env_steps'] = budgets[row['name']]['env_steps']
    path = write_report(rows, out / 'report', curves, title=f'Distillation quality on {args.task}')
    print(f'report: {path}')
    table = seed_table(rows, args)
    (out / 'report' / 'seeds.md').write_text(table + '\n')
    print(table)


def seed_table(rows: list[dict], args: argparse.Namespace) -> str:
    """Mean over seeds per method: return, ratio (min-max over seeds), falls, size, budget."""
    teacher = rows[0]
    groups: dict[str, list[dict]] = {}
    for row in rows[1:]:
        groups.setdefault(row['name'].split('/s')[0], []).append(row)
    from distill_ros.distill.report import TRACKING_COLUMNS, TRACKING_KEYS, has_tracking, tracking_cells
    tracking = has_tracking([teacher])   # a velocity-command task: tracking errors too
    head = ('| method | seeds | input | parameters | × smaller | mean return ± std over seeds | ratio (min–max) | '
            'falls | env steps | train wall s | latency p50 µs |'
            + (''.join(f' {name} |' for name, _, _ in TRACKING_COLUMNS) if tracking else ''))
    units = [unit for _, _, unit in TRACKING_COLUMNS]
    lines = [f'Held-out episodes: {teacher["episodes"]} (the same for every policy); teacher '
             f'{teacher["mean_return"]:.1f} ± {teacher["ci95"]:.1f} (95 % CI), falls {teacher["fall_rate"]:.0%}, '
             f'{teacher["params"]:,} parameters'
             + ('; tracking error ' + ', '.join(f'{cell} {unit}' for cell, unit in zip(tracking_cells(teacher), units))
                if tracking else '') + '.',
             '', head, '|' + '---|' * (head.count('|') - 1)]
    for name, group in groups.items():
        returns = np.array([r['mean_return'] for r in group])
        ratios = returns / teacher['mean_return']
        first = group[0]
        memory = first.get('memory') or f'sensors × {first.get("history", 1)}'
        lines.append(f'| {name} | {len(group)} | {memory} | {first["params"]:,} | {first["size_ratio"]:.1f} | '
                     f'{returns.mean():.1f} ± {returns.std():.1f} | {ratios.mean():.3f} ({ratios.min():.2f}–'
                     f'{ratios.max():.2f}) | {np.mean([r["fall_rate"] for r in group]):.0%} | '
                     f'{int(np.mean([r.get("env_steps", 0) for r in group])):,} | '
                     f'{np.mean([r.get("train_wall_s", 0) for r in group]):.0f} | '
                     f'{np.median([r["latency_p50_us"] for r in group]):.0f} |'
                     + (''.join(f' {cell} |' for cell in tracking_cells(
                         {key: np.mean([r[key] for r in group]) for key in TRACKING_KEYS})) if tracking else ''))
    lines += ['', f'`python {" ".join(sys.argv)}`']
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
