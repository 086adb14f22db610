"""What can a student recover of the privileged state? Probes on held-out episodes, per field.

    python bench/observability.py --dataset DATA [DATA ...] --student runs/x/student [--student ...]

For each privileged element (true joint positions and velocities, contact forces, dynamics
scales), a ridge-regression probe is fitted from a representation to the element and scored by R²
on held-out episodes (split by whole episodes): 1 = recovered exactly, 0 = no better than its mean.

Representations: the current sensor reading alone (what a memoryless student sees), the raw
8-step window with past actions, and the `latent` of each student given (its memory included: a
window student's window, a recurrent student's state carried from each episode's start). Where
the student's latent cannot recover a field the teacher relies on, imitation has to guess it; this
is the diagnosis docs/results.md reports for hopper.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from distill_ros.data.dataset import load_dataset
from distill_ros.data.sampler import HistorySampler
from distill_ros.distill.labels import teacher_labels
from distill_ros.distill.trainer import concat_datasets, split_episodes
from distill_ros.policies import checkpoint as ckpt_io


def ridge_r2(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, alpha: float = 1e-2) -> np.ndarray:
    """R² per column of y on `test`, of a ridge regression on standardized `x` fitted on `train`."""
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-8
    z = (x - mu) / sd
    z = np.concatenate([z, np.ones((len(z), 1))], axis=1)
    a = z[train].T @ z[train] + alpha * len(train) * np.eye(z.shape[1])
    w = np.linalg.solve(a, z[train].T @ y[train])
    residual = ((z[test] @ w - y[test]) ** 2).mean(0)
    variance = y[test].var(0) + 1e-12
    return 1.0 - residual / variance


def latent(ckpt, data) -> np.ndarray:
    """The student's `latent` at every sample, its memory included (the trainer's labelling of a
    sensor-policy teacher: windows, or whole episodes from a zero state for a recurrent one)."""
    return teacher_labels(ckpt, data, 'latent')['feature'].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset', nargs='+', required=True, help='dataset folders (aggregated)')
    parser.add_argument('--student', action='append', default=[], metavar='NAME=CHECKPOINT')
    parser.add_argument('--out', help='write the table (markdown) here')
    args = parser.parse_args()
    data = concat_datasets([load_dataset(d) for d in args.dataset])
    train, test = split_episodes(data, 0.3, 0)
    privileged = data.arrays['privileged_obs'].astype(np.float64)
    names = data.spec.privileged.element_names()
    keep = privileged[train].std(0) > 1e-9   # constant elements (e.g. a fixed parameter) say nothing
    reps = {'current sensors': data.arrays['sensor_obs'].astype(np.float64)}
    windows = HistorySampler(data, 8, past_actions=True).windows(torch.arange(len(data))).inputs
    reps['8-step window + past actions'] = windows.reshape(len(data), -1).numpy().astype(np.float64)
    for item in args.student:
        name, _, path = item.partition('=')
        reps[f'{name} latent'] = latent(ckpt_io.load(path), data).astype(np.float64)
    scores = {rep: ridge_r2(x, privileged[:, keep], train, test) for rep, x in reps.items()}
    head = '| privileged element | ' + ' | '.join(reps) + ' |'
    lines = [f'R² of a ridge probe on held-out episodes ({len(test)} samples of {len(data)}); 1 = recovered.', '',
             head, '|' + '---|' * (len(reps) + 1)]
    for j, name in enumerate(n for n, k in zip(names, keep) if k):
        lines.append(f'| {name} | ' + ' | '.join(f'{scores[rep][j]:.2f}' for rep in reps) + ' |')
    lines.append('| **mean** | ' + ' | '.join(f'**{scores[rep].mean():.2f}**' for rep in reps) + ' |')
    table = '\n'.join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + '\n')


if __name__ == '__main__':
    main()
