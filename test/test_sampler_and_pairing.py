"""History windows for training, and approximate-time pairing for jittery hardware stamps."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from distill_ros.data.assembler import EpisodeAssembler
from distill_ros.data.dataset import DatasetSpec, DatasetWriter, load_dataset
from distill_ros.data.sampler import HistorySampler, episode_end_of, episode_rows, episode_start_of, sequence_rows
from distill_ros.sim import DistillEnv


def test_windows_stay_inside_episodes_oldest_first(tmp_path):
    spec = DatasetSpec.for_env(DistillEnv('cartpole'), teacher=False)
    writer = DatasetWriter(tmp_path / 'ds', spec)
    for episode, n in enumerate([4, 6]):
        arrays = {name: np.zeros((n, *shape), dtype=dtype) for name, (shape, dtype) in spec.fields().items()}
        arrays['sensor_obs'][:, 0] = 100 * episode + np.arange(n)  # tag: episode and step
        arrays['action'][:, 0] = 1000 + 100 * episode + np.arange(n)
        arrays['stamp_ns'] = np.arange(n)
        writer.write_episode(arrays, {})
    data = load_dataset(tmp_path / 'ds')
    sampler = HistorySampler(data, history=3)
    w = sampler.windows(torch.tensor([0, 2, 4, 9])).inputs[:, :, 0]
    assert w.tolist() == [[0, 0, 0], [0, 1, 2], [100, 100, 100], [103, 104, 105]]
    # with past actions each step ends with the action executed before it (zero at an episode's start)
    steps = HistorySampler(data, history=3, past_actions=True).windows(torch.tensor([2, 5])).inputs
    assert steps.shape == (2, 3, 12 + 1)
    assert steps[:, :, -1].tolist() == [[0, 1000, 1001], [0, 0, 1100]]
    # training draws: seeded, only from the given indices, each window ending at its sample
    train = np.arange(4, 10)
    pick = HistorySampler(data, history=3, indices=train, seed=5).draw(64)
    assert torch.equal(pick, HistorySampler(data, history=3, indices=train, seed=5).draw(64))
    assert set(pick.tolist()) <= set(train.tolist())
    batch = sampler.windows(pick)
    assert batch.inputs.shape == (64, 3, 12) and torch.equal(batch.index, pick)
    assert torch.equal(batch.inputs[:, -1, 0], sampler.steps[pick, 0])


def test_tbptt_sequences_respect_episode_boundaries():
    """Sequences for a recurrent student: burn-in before the loss steps but never before the
    episode's start; past the episode's end only padding, which the mask excludes."""
    starts = np.array([0, 10, 14])     # episodes of 10, 4 and 6 samples
    n = 20
    start_of, end_of = episode_start_of(starts, n), episode_end_of(starts, n)
    assert end_of.tolist() == [10] * 10 + [14] * 4 + [20] * 6
    t0 = torch.tensor([7, 3, 11, 18, 0])
    rows, mask = sequence_rows(t0, start_of[t0], end_of[t0], burn_in=4, length=3)
    assert rows.shape == mask.shape == (5, 7)
    assert rows.tolist() == [[3, 4, 5, 6, 7, 8, 9],        # full burn-in; the episode ends at 9
                             [0, 1, 2, 3, 4, 5, 6],        # burn-in cut at the episode's start
                             [10, 11, 12, 13, 13, 13, 13],  # starts at its episode; padded with row 13
                             [14, 15, 16, 17, 18, 19, 19],
                             [0, 1, 2, 3, 4, 5, 6]]
    assert [rows[i][mask[i]].tolist() for i in range(5)] == [[7, 8, 9], [3, 4, 5], [11, 12, 13], [18, 19], [0, 1, 2]]
    # every row of a sequence lies in the episode of its first loss step
    assert torch.all((rows >= start_of[t0][:, None]) & (rows < end_of[t0][:, None]))
    # whole episodes for validation: padded with each one's last row, masked
    rows, mask = episode_rows(starts, n, [1, 0])
    assert rows.shape == (2, 10) and rows[0].tolist() == [10, 11, 12, 13] + [13] * 6
    assert mask.sum(1).tolist() == [4, 10]


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
