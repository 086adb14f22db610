#!/usr/bin/env python3
"""Recorder figures:

1. sustained rate: this script publishes joint_states, imu/data and privileged/state (plus the
   sim/step reports and episode announcements that make them samples) at --rate Hz for --duration s
   to a recorder_node process writing a dataset and an MCAP bag; drops = published - recorded,
   per topic (from the bag) and in samples (from the dataset);
2. bag -> dataset throughput against the raw `rosbags` read+deserialize rate on the same bag;
3. history-window sampling rate for training (the trainer's `HistorySampler.draw` + `windows`, steps
   with the previous action) from a dataset in the page cache.

    python bench/recorder.py                         # 1 kHz for 30 s, 1M-sample sampler test
    python bench/recorder.py --duration 3 --sampler-samples 100000   # CI-sized
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

os.environ.setdefault('ROS_DOMAIN_ID', '77')
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'


def publish(rate: float, duration: float, env) -> dict[str, int]:
    import rclpy
    from sensor_msgs.msg import Imu, JointState

    from distill_ros.nodes import messages as m
    from distill_ros.nodes.common import LATCHED, RELIABLE_DEEP

    rclpy.init()
    node = rclpy.create_node('bench_publisher')
    pubs = {'joints': node.create_publisher(JointState, 'joint_states', RELIABLE_DEEP),
            'imu': node.create_publisher(Imu, 'imu/data', RELIABLE_DEEP),
            'privileged': node.create_publisher(JointState, 'privileged/state', RELIABLE_DEEP),
            'step': node.create_publisher(JointState, 'sim/step', RELIABLE_DEEP),
            'episode': node.create_publisher(JointState, 'sim/episode', LATCHED)}
    deadline = time.monotonic() + 30
    while node.count_subscribers('/sim/step') < 1 or node.count_subscribers('/joint_states') < 1:
        rclpy.spin_once(node, timeout_sec=0.05)
        if time.monotonic() > deadline:
            raise RuntimeError('recorder_node did not subscribe within 30 s')
    time.sleep(1.0)
    obs, _ = env.reset(seed=0)
    reading = env.sensor_builder.reading(obs['sensor'])
    names = env.privileged_spec.element_names()
    step_names = ['reward', 'terminated', 'truncated', 'episode', 'step', 'action/slider']
    period_ns, steps = int(1e9 / rate), int(rate * duration)
    episode_len = 1000
    counts = dict.fromkeys(pubs, 0)
    start = time.monotonic_ns()
    for k in range(steps):
        target = start + k * period_ns
        while (now := time.monotonic_ns()) < target:
            if target - now > 200_000:
                time.sleep((target - now - 150_000) / 1e9)
        stamp = k * period_ns
        episode, step = divmod(k, episode_len)
        if step == 0:
            pubs['episode'].publish(m.named_vector(['episode', 'seed', 'latency_steps'], [episode, episode, 0], stamp))
            counts['episode'] += 1
        pubs['joints'].publish(m.joint_state(reading, stamp))
        pubs['imu'].publish(m.imu(reading, stamp, 'imu_link'))
        pubs['privileged'].publish(m.named_vector(names, obs['privileged'], stamp))
        last = step == episode_len - 1 or k == steps - 1
        pubs['step'].publish(m.named_vector(step_names, [1.0, 0.0, float(last), episode, step, 0.0], stamp))
        for key in ('joints', 'imu', 'privileged', 'step'):
            counts[key] += 1
    achieved = steps / ((time.monotonic_ns() - start) / 1e9)
    # Let the recorder drain what it still has queued (lag is not loss): wait until its
    # /diagnostics count of step messages stops growing.
    from diagnostic_msgs.msg import DiagnosticArray
    seen: list[int] = []

    def on_diagnostics(msg) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if 'messages/step' in values:
                seen.append(int(values['messages/step']))
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (len(seen) >= 3 and seen[-1] == seen[-3]):
        rclpy.spin_once(node, timeout_sec=0.1)
    counts['lag_s'] = len(seen) and max(0, len(seen) - 2)  # seconds of draining after the last publish
    node.destroy_node()
    rclpy.shutdown()
    counts['achieved_hz'] = achieved
    return counts


def bag_rates(bag: Path, spec, has_imu: bool, rounds: int) -> tuple[float, float, float, int]:
    """(rosbags read only, rosbags read + rosbags' own deserializer, bag2dataset) in msg/s."""
    from rosbags.rosbag2 import Reader

    from distill_ros.data.bag import bag_to_dataset, typestore

    store = typestore()

    def rosbags_decode(raw, typename):  # rosbags' generic decoder (lenient about trailing bytes)
        msgdef = store.get_msgdef(typename)
        return msgdef.deserialize_cdr_le(memoryview(raw)[4:], 0, msgdef.cls, store)

    read, decoded, ours = [], [], []
    for _ in range(rounds):
        for decode, rates in ((None, read), (rosbags_decode, decoded)):
            t0 = time.perf_counter()
            with Reader(bag) as reader:
                n = 0
                for connection, _, raw in reader.messages():
                    if decode is not None:
                        decode(raw, connection.msgtype)
                    n += 1
            rates.append(n / (time.perf_counter() - t0))
        out = Path(tempfile.mkdtemp())
        t0 = time.perf_counter()
        bag_to_dataset(bag, out / 'ds', spec, has_imu)
        ours.append(n / (time.perf_counter() - t0))
        shutil.rmtree(out)
    return statistics.median(read), statistics.median(decoded), statistics.median(ours), n


def sampler_rate(spec, samples: int, history: int, batch: int, work: Path) -> float:
    import torch

    from distill_ros.data.dataset import DatasetWriter, load_dataset
    from distill_ros.data.sampler import HistorySampler

    torch.set_num_threads(1)
    writer = DatasetWriter(work / 'big', spec)
    rng = np.random.default_rng(0)
    shard = 10_000
    for start in range(0, samples, shard):
        n = min(shard, samples - start)
        arrays = {name: (rng.normal(size=(n, *shape)) if dtype == 'float64' else np.zeros((n, *shape), dtype=dtype))
                  for name, (shape, dtype) in spec.fields().items()}
        arrays['stamp_ns'] = np.arange(n)
        writer.write_episode(arrays, {})
    ds = load_dataset(work / 'big')  # the page cache holds it now
    sampler = HistorySampler(ds, history=history, past_actions=True)
    rates = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(50):
            sampler.windows(sampler.draw(batch))
        rates.append(50 * batch / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rate', type=float, default=1000.0)
    parser.add_argument('--duration', type=float, default=30.0)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--sampler-samples', type=int, default=1_000_000)
    parser.add_argument('--history', type=int, default=8)
    parser.add_argument('--batch', type=int, default=4096)
    args = parser.parse_args()

    from distill_ros.data.dataset import DatasetSpec, load_dataset
    from distill_ros.sim import DistillEnv

    env = DistillEnv('cartpole')
    spec = DatasetSpec.for_env(env, teacher=False)
    work = Path(tempfile.mkdtemp(prefix='distill_ros_bench_'))
    exe = shutil.which('recorder_node')
    cmd = ([exe] if exe else [sys.executable, '-m', 'distill_ros.nodes.recorder_node']) + [
        '--ros-args', '-p', 'task:=cartpole', '-p', f'dataset:={work / "ds"}', '-p', f'bag:={work / "bag"}',
        '-p', 'teacher:=false']
    log = open(work / 'recorder.log', 'w')
    recorder = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        published = publish(args.rate, args.duration, env)
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
    meta = yaml.safe_load((work / 'bag' / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    in_bag = {t['topic_metadata']['name']: t['message_count'] for t in meta['topics_with_message_count']}
    topics = {'joints': '/joint_states', 'imu': '/imu/data', 'privileged': '/privileged/state', 'step': '/sim/step'}
    ds = load_dataset(work / 'ds')

    console = Console(width=160)
    table = Table(title=f'recorder_node at {args.rate:.0f} Hz for {args.duration:.0f} s '
                        f'(achieved publish rate {published["achieved_hz"]:.0f} Hz; recorder drained '
                        f'~{published["lag_s"]} s after the last message)')
    for column in ('topic', 'published', 'recorded (bag)', 'drops'):
        table.add_column(column, justify='right')
    for key, topic in topics.items():
        got = in_bag.get(topic, 0)
        table.add_row(topic, f'{published[key]:,}', f'{got:,}', f'{published[key] - got:,}')
    table.add_row('dataset samples', f'{published["step"]:,}', f'{len(ds):,}', f'{published["step"] - len(ds):,}')
    console.print(table)

    read, decoded, ours, n = bag_rates(work / 'bag', spec, True, args.rounds)
    table = Table(title=f'bag -> dataset on the recorded MCAP bag ({n:,} messages; median of {args.rounds})')
    for column in ('rosbags read (bytes)', 'rosbags read + deserialize', 'bag2dataset',
                   'ratio to read + deserialize (target >= 0.8)', 'ratio to bytes only'):
        table.add_column(column, justify='right')
    table.add_row(f'{read:,.0f} msg/s', f'{decoded:,.0f} msg/s', f'{ours:,.0f} msg/s', f'{ours / decoded:.2f}',
                  f'{ours / read:.2f}')
    console.print(table)

    rate = sampler_rate(spec, args.sampler_samples, args.history, args.batch, work)
    table = Table(title=f'history-window sampling from a {args.sampler_samples:,}-sample dataset in the page cache')
    for column in ('history', 'batch', 'samples/s (target >= 1M)'):
        table.add_column(column, justify='right')
    table.add_row(str(args.history), str(args.batch), f'{rate:,.0f}')
    console.print(table)
    shutil.rmtree(work)


if __name__ == '__main__':
    main()
