"""History windows for training, and approximate-time pairing for jittery hardware stamps."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from distill_ros.data.assembler import EpisodeAssembler
from distill_ros.data.dataset import DatasetSpec, DatasetWriter, load_dataset
from distill_ros.data.sampler import HistorySampler
from distill_ros.sim import DistillEnv


def test_windows_stay_inside_episodes_oldest_first(tmp_path):
    spec = DatasetSpec.for_env(DistillEnv('cartpole'), teacher=False)
    writer = DatasetWriter(tmp_path / 'ds', spec)
    for episode, n in enumerate([4, 6]):
        arrays = {name: np.zeros((n, *shape), dtype=dtype) for name, (shape, dtype) in spec.fields().items()}
        arrays['sensor_obs'][:, 0] = 100 * episode + np.arange(n)  # tag: episode and step
        arrays['stamp_ns'] = np.arange(n)
        writer.write_episode(arrays, {})
    sampler = HistorySampler(load_dataset(tmp_path / 'ds'), history=3, fields=('action',))
    w = sampler.windows(torch.tensor([0, 2, 4, 9]))[:, :, 0]
    assert w.tolist() == [[0, 0, 0], [0, 1, 2], [100, 100, 100], [103, 104, 105]]
    batch = sampler.sample(64)
    assert batch['obs_history'].shape == (64, 3, 12) and batch['action'].shape == (64, 1)
    newest = batch['obs_history'][:, -1, 0]
    assert torch.equal(newest, sampler.obs[batch['index'], 0])


def named(ns, names, values):
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=ns // 10**9, nanosec=ns % 10**9)),
                           name=names, position=values, velocity=[])


def test_approximate_pairing_tolerates_jitter_and_counts_the_rest():
    env = DistillEnv('cartpole')
    spec = DatasetSpec.for_env(env, teacher=False)
    rows = []

    class Sink:
        def write_episode(self, arrays, meta):
            rows.append((arrays, meta))

    def feed(assembler, jitter_ns):
        obs, _ = env.reset(seed=0)
        reading = env.sensor_builder.reading(obs['sensor'])
        rng = np.random.default_rng(0)
        assembler.add('episode', 0, {'episode': 0, 'seed': 0, 'latency_steps': 0})
        for k in range(10):
            t = k * 40_000_000
            joints = named(t + int(rng.integers(-jitter_ns, jitter_ns + 1)), list(reading.joint_position),
                           list(reading.joint_position.values()))
            assembler.add('joints', t + int(rng.integers(-jitter_ns, jitter_ns + 1)), joints)
            imu = SimpleNamespace(orientation=SimpleNamespace(x=0, y=0, z=0, w=1),
                                  angular_velocity=SimpleNamespace(x=0, y=0, z=0),
                                  linear_acceleration=SimpleNamespace(x=0, y=0, z=9.8))
            assembler.add('imu', t + int(rng.integers(-jitter_ns, jitter_ns + 1)), imu)
            assembler.add('privileged', t, (env.privileged_spec.element_names(), obs['privileged'].tolist()))
            assembler.add('step', t, (['reward', 'terminated', 'truncated', 'episode', 'action/slider'],
                                      [1.0, float(k == 9), 0.0, 0.0, 0.0]))
        return assembler.finish()

    stats = feed(EpisodeAssembler(spec, Sink(), 'approximate', tolerance_ns=1_000_000), jitter_ns=500_000)
    assert stats.samples == 10 and not stats.unpaired and rows[-1][1]['complete']
    stats = feed(EpisodeAssembler(spec, Sink(), 'exact'), jitter_ns=500_000)
    assert stats.samples < 10 and stats.unpaired['joints'] + stats.unpaired['imu'] >= 10 - stats.samples
