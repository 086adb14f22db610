"""Teacher-vs-student evaluation, the report (Markdown table + PNG plots), and the `eval`, `report`
and `export` commands.

Every policy runs on the same held-out randomized episodes (evaluation seeds, sensor noise,
latency and domain randomization on). A row per policy: parameters, FLOPs per decision, mean
return with a 95 % confidence interval, the ratio to the teacher, fall rate, and inference latency
p50/p99 at batch 1 on one thread.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill_ros.distill.evaluate import eval_seeds, evaluate_checkpoint, summarize
from distill_ros.paths import load_user_json, read_user_text
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.checkpoint import Checkpoint
from distill_ros.policies.mlp import parameter_count
from distill_ros.teachers import add_teacher_option, teacher_folder


def example(ckpt: Checkpoint) -> torch.Tensor:
    model = ckpt.model
    return torch.zeros(1, model.history, model.step_dim) if ckpt.history is not None else torch.zeros(1, model.obs_dim)


def count_flops(ckpt: Checkpoint) -> int:
    """Floating-point operations of one decision at batch 1 (a multiply-add counts 2), as
    `torch.utils.flop_counter` counts the matrix products and convolutions. Its counter has no
    rule for the fused GRU/LSTM kernels, so they add their analytic count: per step and layer
    2·g·h·(in + h) for the gate products (g = 3 for a GRU, 4 for an LSTM). A recurrent student
    makes one step per decision."""
    from torch.utils.flop_counter import FlopCounterMode
    model = ckpt.model.eval()
    if getattr(model, 'graph_flops', None) is not None:   # an ONNX graph teacher: its linear layers, counted
        return int(model.graph_flops)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(example(ckpt))
    flops = int(counter.get_total_flops())
    rnn = getattr(model, 'gru', None) or getattr(model, 'rnn', None)
    if isinstance(rnn, (torch.nn.GRU, torch.nn.LSTM)):
        gates = 3 if isinstance(rnn, torch.nn.GRU) else 4
        width = rnn.input_size
        for _ in range(rnn.num_layers):
            flops += model.history * 2 * gates * rnn.hidden_size * (width + rnn.hidden_size)
            width = rnn.hidden_size
    return flops


def measure_latency(ckpt: Checkpoint, runs: int = 2000) -> dict[str, float]:
    """Inference latency of the torch model at batch 1, one thread, after warm-up: p50/p99 in
    microseconds. (The controller's backends, ONNX Runtime included, are measured by
    bench/controller_latency.py.)"""
    x = example(ckpt)
    model = ckpt.model.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def call():
        with torch.no_grad():
            model(x)

    try:
        for _ in range(min(200, runs)):
            call()
        times = np.empty(runs)
        for i in range(runs):
            t0 = time.perf_counter_ns()
            call()
            times[i] = time.perf_counter_ns() - t0
    finally:
        torch.set_num_threads(threads)
    return {'p50_us': float(np.percentile(times, 50) / 1e3), 'p99_us': float(np.percentile(times, 99) / 1e3)}


def _memory(ckpt: Checkpoint) -> str:
    """What a sensor policy remembers, for the table's input column."""
    model = ckpt.model
    if ckpt.obs_source == 'privileged':
        return 'privileged'
    if getattr(model, 'recurrent', False):
        return f'sensors, {model.cell.upper()} state'
    return f'sensors × {ckpt.history or 1}'


def evaluate_policies(task: str, teacher: Checkpoint, students: dict[str, Checkpoint], episodes: int,
                      progress: bool = True, latency_runs: int = 2000) -> list[dict[str, Any]]:
    """Teacher and every student on the same held-out seeds; one row each, teacher first."""
    from distill_ros.sim import DistillEnv
    env = DistillEnv(task)
    try:
        seeds = eval_seeds(episodes)
        rows = []
        for name, ckpt in [('teacher', teacher), *students.items()]:
            ckpt.check_env(env, f' on task {env.task.name}')
            results = evaluate_checkpoint(ckpt, env, seeds, progress=progress)
            summary = summarize(results)
            latency = measure_latency(ckpt, latency_runs)
            rows.append({
                'name': name, 'role': ckpt.role, 'checkpoint': str(ckpt.path or ''),
                'params': parameter_count(ckpt.model), 'flops': count_flops(ckpt),
                'privileged_input': ckpt.obs_source == 'privileged', 'history': ckpt.history or 1,
                'memory': _memory(ckpt),
                'episodes': summary['episodes'], 'mean_return': summary['mean_return'], 'ci95': summary['ci95'],
                'std_return': summary['std_return'], 'fall_rate': summary['fall_rate'],
                'mean_length': summary['mean_length'],
                'latency_p50_us': latency['p50_us'], 'latency_p99_us': latency['p99_us'],
                **{key: value for key, value in summary.items() if key in TRACKING_KEYS}})
    finally:
        env.close()
    best = rows[0]['mean_return']
    for row in rows:
        row['ratio'] = row['mean_return'] / best if best else float('nan')
        row['size_ratio'] = rows[0]['params'] / row['params']
    return rows


COLUMNS = [('policy', 'name', '{}'), ('input', 'privileged_input', None), ('parameters', 'params', '{:,}'),
           ('× smaller', 'size_ratio', '{:.1f}'), ('FLOPs', 'flops', '{:,}'),
           ('mean return ± 95% CI', None, None), ('ratio', 'ratio', '{:.3f}'), ('falls', 'fall_rate', '{:.0%}'),
           ('latency p50/p99 µs', None, None)]


# A velocity-command task's rows also carry its tracking error (evaluate.tracking_summary):
# (column, key, unit), the row holding key_mean and key_p95.
TRACKING_COLUMNS = [('v error mean/p95 m/s', 'lin_vel_error', 'm/s'),
                    ('yaw error mean/p95 rad/s', 'yaw_rate_error', 'rad/s')]
TRACKING_KEYS = tuple(f'{key}_{stat}' for _, key, _ in TRACKING_COLUMNS for stat in ('mean', 'p95'))


def has_tracking(rows: Sequence[dict[str, Any]]) -> bool:
    return any(TRACKING_KEYS[0] in row for row in rows)


def tracking_cells(row: dict[str, Any]) -> list[str]:
    """'mean / p95' of each tracking error of `row` ('' where it has none)."""
    return [f"{row[key + '_mean']:.3f} / {row[key + '_p95']:.3f}" if key + '_mean' in row else ''
            for _, key, _ in TRACKING_COLUMNS]


def _column_names(tracking: bool) -> list[str]:
    return [c[0] for c in COLUMNS] + ([name for name, _, _ in TRACKING_COLUMNS] if tracking else [])


def _cells(row: dict[str, Any], tracking: bool = False) -> list[str]:
    out = []
    for _, key, fmt in COLUMNS:
        if key == 'privileged_input':
            out.append('privileged' if row[key] else row.get('memory') or f'sensors × {row.get("history", 1)}')
        elif key is None and _ == 'mean return ± 95% CI':
            out.append(f"{row['mean_return']:.1f} ± {row['ci95']:.1f}")
        elif key is None:
            out.append(f"{row['latency_p50_us']:.0f} / {row['latency_p99_us']:.0f}")
        else:
            out.append(fmt.format(row[key]))
    return out + (tracking_cells(row) if tracking else [])


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    tracking = has_tracking(rows)
    names = _column_names(tracking)
    lines = ['| ' + ' | '.join(names) + ' |', '|' + '---|' * len(names)]
    lines += ['| ' + ' | '.join(_cells(row, tracking)) + ' |' for row in rows]
    return '\n'.join(lines)


def print_table(rows: Sequence[dict[str, Any]], title: str = '') -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table(title=title or None)
    tracking = has_tracking(rows)
    for name in _column_names(tracking):
        table.add_column(name, justify='right')
    for row in rows:
        table.add_row(*_cells(row, tracking))
    Console(width=200).print(table)


def read_curves(paths: Sequence[Path]) -> dict[str, list[tuple[int, float]]]:
    curves: dict[str, list[tuple[int, float]]] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            continue
        prefix = f'{path.parent.name}/' if len(paths) > 1 else ''
        for line in read_user_text(path, 'learning curve').splitlines():
            try:
                record = json.loads(line)
                curves.setdefault(prefix + record['run'], []).append((int(record['step']), float(record['val_loss'])))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    return curves


def pareto(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows no other row beats on both size (fewer parameters) and return."""
    front = []
    for row in sorted(rows, key=lambda r: (r['params'], -r['mean_return'])):
        if not front or row['mean_return'] > front[-1]['mean_return']:
            front.append(row)
    return front


def write_plots(rows: Sequence[dict[str, Any]], out: Path, curves: dict[str, list[tuple[int, float]]]) -> list[str]:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    written = []
    names = [r['name'] for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4))
    ax.bar(range(len(rows)), [r['mean_return'] for r in rows], yerr=[r['ci95'] for r in rows], capsize=4,
           color=['tab:gray' if r['privileged_input'] else 'tab:blue' for r in rows])
    ax.axhline(rows[0]['mean_return'], color='tab:gray', linestyle='--', linewidth=1, label='teacher')
    ax.set_xticks(range(len(rows)), names, rotation=30, ha='right')
    ax.set_ylabel('mean return (95 % CI)')
    ax.set_title('returns on the same held-out randomized episodes')
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / 'returns.png', dpi=120)
    plt.close(fig)
    written.append('returns.png')

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.scatter(r['params'], r['mean_return'], marker='*' if r['privileged_input'] else 'o', s=80)
        ax.annotate(r['name'], (r['params'], r['mean_return']), fontsize=7, xytext=(4, 4), textcoords='offset points')
    front = pareto(rows)
    ax.plot([r['params'] for r in front], [r['mean_return'] for r in front], 'k--', linewidth=1, label='Pareto front')
    ax.set_xscale('log')
    ax.set_xlabel('parameters')
    ax.set_ylabel('mean return')
    ax.set_title('size vs return')
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / 'pareto.png', dpi=120)
    plt.close(fig)
    written.append('pareto.png')

    if curves:
        fig, ax = plt.subplots(figsize=(7, 4))
        for run, points in sorted(curves.items()):
            steps, values = zip(*points)
            ax.plot(steps, values, label=run, linewidth=1)
        ax.set_yscale('log')
        ax.set_xlabel('optimizer step (per run)')
        ax.set_ylabel('validation loss')
        ax.set_title('learning curves')
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        fig.savefig(out / 'learning_curves.png', dpi=120)
        plt.close(fig)
        written.append('learning_curves.png')
    return written


def write_report(rows: Sequence[dict[str, Any]], out_dir: str | Path, curves: Sequence[str | Path] = (),
                 title: str = 'distill_ros report', notes: str = '') -> Path:
    """`out_dir/report.md`, `eval.json` and the PNG plots; returns the report's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'eval.json').write_text(json.dumps({'title': title, 'rows': list(rows)}, indent=2) + '\n')
    curve_data = read_curves([Path(c) for c in curves])
    plots = write_plots(rows, out, curve_data)
    teacher = rows[0]
    lines = [f'# {title}', '',
             f"{teacher['episodes']} held-out randomized episodes (evaluation seeds from 1,000,000; sensor noise, "
             'latency and domain randomization on), the same for every policy. Ratio: mean return / the '
             "teacher's. Latency: one decision at batch 1 on one thread (torch).", '',
             markdown_table(rows), '']
    if notes:
        lines += [notes, '']
    lines += ['![returns](returns.png)', '', '![size vs return](pareto.png)', '']
    if 'learning_curves.png' in plots:
        lines += ['![learning curves](learning_curves.png)', '']
    else:
        lines += ['(No learning curves were given or found, so there is no learning-curve plot.)', '']
    path = out / 'report.md'
    path.write_text('\n'.join(lines))
    return path


# ---------------------------------------------------------------------- commands

def _student_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition('=')
    if not sep or not name or not path:
        raise ValueError(f'--student {text!r}: expected NAME=CHECKPOINT_FOLDER')
    return name, path


def cmd_eval(args: argparse.Namespace) -> int:
    from distill_ros.students import student_path
    teacher = ckpt_io.load(teacher_folder(args.teacher, args.task))
    students = {name: ckpt_io.load(student_path(path)) for name, path in map(_student_arg, args.student)}
    rows = evaluate_policies(args.task, teacher, students, args.episodes, progress=not args.no_progress)
    print_table(rows, f'{args.task}: teacher vs students on {args.episodes} held-out episodes')
    path = write_report(rows, args.out, args.curves or [], title=f'Teacher vs students on {args.task}')
    print(f'report: {path}')
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    source = folder / 'eval.json'
    if not source.is_file():
        raise FileNotFoundError(f'{source} does not exist; run `distill-ros eval ... --out {folder}` first')
    data = load_user_json(source, 'evaluation results')
    if not isinstance(data, dict) or not isinstance(data.get('rows'), list):
        raise ValueError(f'{source}: expected {{"rows": [...], "title": ...}} as `distill-ros eval` writes it')
    rows = data['rows']
    print_table(rows, data.get('title', ''))
    path = write_report(rows, folder, args.curves or [], title=data.get('title', 'distill_ros report'))
    print(f'report: {path}')
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from distill_ros.policies.export import export_onnx, export_torchscript
    if not args.onnx and not args.torchscript:
        raise ValueError('nothing to export: give --onnx PATH and/or --torchscript PATH')
    from distill_ros.policies.export import EPISODE_STEPS, STATE_IN, STATE_OUT
    from distill_ros.policies.students import is_recurrent
    ckpt = ckpt_io.load(args.checkpoint)
    how = (f' step by step over a {EPISODE_STEPS}-step episode, state fed back ({STATE_IN} -> {STATE_OUT})'
           if is_recurrent(ckpt.model) else '')
    if args.onnx:
        worst = export_onnx(ckpt, args.onnx)
        print(f'{args.onnx}: ONNX matches torch to {worst:.2g}{how} (tolerance 1e-5)')
    if args.torchscript:
        worst = export_torchscript(ckpt, args.torchscript)
        print(f'{args.torchscript}: TorchScript matches torch to {worst:.2g}{how} (tolerance 1e-5)')
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register `distill-ros eval`, `report` and `export`."""
    e = sub.add_parser('eval', help='teacher vs students on the same held-out episodes: table, report, plots')
    e.add_argument('--task', default='cartpole')
    add_teacher_option(e)
    e.add_argument('--student', action='append', default=[], metavar='NAME=CHECKPOINT',
                   help='a student (repeat): a checkpoint folder, or the name of a shipped one (hopper)')
    e.add_argument('--episodes', type=int, default=100)
    e.add_argument('--curves', nargs='*', help='learning_curve.jsonl files to plot')
    e.add_argument('--out', required=True, help='report folder')
    e.add_argument('--no-progress', action='store_true')
    e.set_defaults(func=cmd_eval)
    r = sub.add_parser('report', help='rebuild report.md and the plots from FOLDER/eval.json')
    r.add_argument('folder')
    r.add_argument('--curves', nargs='*', help='learning_curve.jsonl files to plot')
    r.set_defaults(func=cmd_report)
    x = sub.add_parser('export', help='export a checkpoint to ONNX / TorchScript, verified against torch')
    x.add_argument('checkpoint')
    x.add_argument('--onnx', help='ONNX file to write')
    x.add_argument('--torchscript', help='TorchScript file to write')
    x.set_defaults(func=cmd_export)
