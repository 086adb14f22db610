#!/usr/bin/env python3
"""Labelling throughput of an imported ONNX teacher against the same network as a native checkpoint.

The shipped teacher of a task (a GaussianMLP) is rebuilt as an rsl_rl 5 actor with the same weights
and normalization, exported by rsl_rl's own `OnPolicyRunner.export_policy_to_onnx` (normalizer
inside the graph, batch fixed at 1, as Isaac Lab exports it), imported with `import_teacher` (so it
runs in onnxruntime as an `OnnxPolicy`) and saved and loaded as a checkpoint. Both teachers then
answer batches of privileged states through the calls the package makes:

    batch 1      teacher_node: one state per message (`model.distribution`)
    batch 4..64  collection and DAgger rounds: one state per environment stepped together (`Actor.act`)
    batch 8192   DAgger / distillation labelling: `labels.teacher_labels` chunks (`forward_features`,
                 '+ latent' also reads the feature that feature matching regresses onto)

Figures are teacher actions per second (best of 3 runs of `--seconds` each, on `--threads` threads);
'one at a time' is the same graph run state by state, what a graph whose batch size is fixed inside
falls back to.

    python bench/teacher_import.py                               # hopper, 1 thread
    python bench/teacher_import.py --seconds 0.2 --batches 1 4 8192   # quick
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.sim import DistillEnv
from distill_ros.teachers import shipped_teacher
from distill_ros.teachers.importers import import_teacher


def rsl_rl_twin(native):
    """An rsl_rl MLPModel computing what `native` (a GaussianMLP) computes (up to its input clip)."""
    from rsl_rl.models import MLPModel
    from tensordict import TensorDict

    net = native.model
    obs = TensorDict({'policy': torch.zeros(1, net.obs_dim)}, batch_size=[1])
    twin = MLPModel(obs, {'actor': ['policy']}, 'actor', net.action_dim, hidden_dims=net.hidden,
                    activation=net.activation, obs_normalization=True,
                    distribution_cfg={'class_name': 'rsl_rl.modules.distribution:GaussianDistribution'})
    linears = [m for m in twin.mlp if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for theirs, ours in zip(linears, [*net.layers, net.head]):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
        norm = twin.obs_normalizer   # rsl_rl: (x - mean) / (std + eps)
        norm._mean.copy_(net.obs_mean[None])
        norm._std.copy_(torch.sqrt(net.obs_var + 1e-8)[None] - norm.eps)
    return twin.eval()


def rate(call, x: torch.Tensor, seconds: float, repeats: int = 3) -> float:
    """Best of `repeats`: rows of `x` answered per second."""
    call(x)   # warm-up (an ONNX teacher makes its session here)
    best = 0.0
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds or n == 0:
            call(x)
            n += 1
        best = max(best, n * len(x) / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--task', default='hopper')
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 4, 16, 64, 8192])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--seconds', type=float, default=0.5, help='time per measurement')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)   # before the first call: the onnxruntime session takes the same count
    env = DistillEnv(args.task)
    native = ckpt_io.load(shipped_teacher(env.task.name))
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter('ignore')
        from rsl_rl.runners import OnPolicyRunner
        twin = rsl_rl_twin(native)
        OnPolicyRunner.export_policy_to_onnx(SimpleNamespace(alg=SimpleNamespace(get_policy=lambda: twin)), tmp)
        ckpt_io.save(import_teacher('onnx', Path(tmp) / 'policy.onnx', env, action_std=0.1), Path(tmp) / 'teacher')
        imported = ckpt_io.load(Path(tmp) / 'teacher')
        serial = ckpt_io.load(Path(tmp) / 'teacher').model
        serial.batched = False   # what a graph whose export fixed its batch size inside falls back to
    rng = np.random.default_rng(0)
    z = rng.normal(size=(max(args.batches), native.model.obs_dim))   # around the teacher's statistics
    states = torch.as_tensor(native.model.obs_mean.numpy() + z * np.sqrt(native.model.obs_var.numpy()),
                             dtype=torch.float32)
    with torch.no_grad():
        gap = float((native.model(states[:1024]) - imported.model(states[:1024])).abs().max())
    console = Console(width=110)
    table = Table(title=f'{args.task} teacher ({native.model.obs_dim}→{"×".join(map(str, native.model.hidden))}→'
                        f'{native.model.action_dim}, {native.model.activation}): teacher actions per second, '
                        f'{args.threads} thread(s)')
    for column in ('batch', 'used by', 'native (torch)', 'ONNX (onnxruntime)', 'ONNX/native', 'ONNX 1 at a time'):
        table.add_column(column, justify='right')

    def labels(model, feature: bool):
        def call(x):
            with torch.no_grad():
                mean, features = model.forward_features(x)
                if feature:
                    features['latent']
            return mean
        return call

    def serial_call(x):
        with torch.no_grad():
            return serial(x)

    rows = [(b, labels(native.model, False), labels(imported.model, False)) for b in args.batches]
    rows.append((max(args.batches), labels(native.model, True), labels(imported.model, True)))
    for i, (batch, native_call, onnx_call) in enumerate(rows):
        x = states[:batch]
        used = 'teacher_node' if batch == 1 else 'collect envs' if batch <= 64 else 'labelling'
        latent = i == len(rows) - 1
        a, b = rate(native_call, x, args.seconds), rate(onnx_call, x, args.seconds)
        serial_rate = rate(serial_call, x, args.seconds, repeats=1) if batch > 1 and not latent else None
        table.add_row(f'{batch}{" + latent" if latent else ""}', used, f'{a:,.0f}', f'{b:,.0f}', f'{b / a:.2f}',
                      f'{serial_rate:,.0f}' if serial_rate else '')
    console.print(table)
    console.print(f'largest action difference between the two on 1024 states: {gap:.1e}; imported graph: '
                  f'{imported.model.graph_parameters:,} parameters, batched {imported.model.batched}')


if __name__ == '__main__':
    main()
