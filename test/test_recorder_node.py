"""sim_node + teacher_node + recorder_node as real processes: the dataset matches the in-process
rollout sample for sample, the bag replays into the same dataset, and SIGKILL loses only the
episode in flight."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')

from controller_checks import sample_age_task  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from helpers import wait_for_subscribers  # noqa: E402

from distill_ros.data.dataset import load_dataset  # noqa: E402
from distill_ros.distill.evaluate import privileged_actor  # noqa: E402
from distill_ros.policies import checkpoint as ckpt_io  # noqa: E402
from distill_ros.sim import PRIVILEGED, SENSOR, DistillEnv  # noqa: E402
from distill_ros.teachers import shipped_teacher  # noqa: E402

SIM = {'task': 'cartpole', 'mode': 'lockstep', 'command_type': 'JointState', 'lockstep_timeout': 0.5}
REMAP = ['-r', 'commands:=teacher/action']
# topic -> subscribers to wait for before the teacher starts the simulation (the sim also listens
# to teacher/action)
RECORDED = {'/sim/step': 1, '/privileged/state': 1, '/joint_states': 1, '/imu/data': 1, '/teacher/action': 2,
            '/teacher/distribution': 1}


@pytest.mark.parametrize('sample_age', [False, True], ids=['plain', 'sample-age'])
def test_recording_matches_rollout_and_bag_round_trip(ros, start_node, tmp_path, sample_age):
    """With `sensors.sample_age` the simulator stamps the sensors when they were read (the drawn
    latency earlier), the step reports carry the age, and the recording still pairs each step with
    the sample the policy saw: the same dataset as the in-process rollout (latency 1 then 0)."""
    seed, episodes, task = 20, 2, 'cartpole'
    if sample_age:
        task, seed = sample_age_task(tmp_path), 21
    recorder = start_node('recorder_node', {'task': task, 'dataset': str(tmp_path / 'live'),
                                            'bag': str(tmp_path / 'bag'), 'max_episodes': episodes})
    sim = start_node('sim_node', {**SIM, 'task': task, 'seed': seed, 'max_episodes': episodes}, ros_args=REMAP)
    wait_for_subscribers(ros, RECORDED)
    diagnostics: list = []
    ros.node.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
    teacher = start_node('teacher_node', {'task': 'cartpole', 'wait_for_subscribers': 2})
    assert ros.spin_until(lambda: sim.poll() is not None, timeout=120), sim.log()
    assert ros.spin_until(lambda: recorder.poll() is not None, timeout=30), recorder.log()
    assert sim.poll() == 0 and recorder.poll() == 0, recorder.log()
    assert teacher.poll() is None
    reports = [dict((kv.key, kv.value) for kv in s.values) for d in diagnostics for s in d.status
               if s.name.startswith('recorder_node')]
    assert reports and int(reports[-1]['samples']) > 0 and 'messages/joints' in reports[-1]

    live = load_dataset(tmp_path / 'live')
    assert not live.problems and [e['seed'] for e in live.episodes] == [seed, seed + 1]
    env, act = DistillEnv(task), privileged_actor(ckpt_io.load(shipped_teacher('cartpole')))
    if sample_age:
        ages = [live.episode(i)['sensor_obs'][:, -1] for i in range(episodes)]
        assert [set(a.tolist()) for a in ages] == [{env.dt}, {0.0}]
    for i in range(episodes):
        recorded = live.episode(i)
        obs, _ = env.reset(seed=seed + i)
        sensor, privileged, actions, rewards, done = [], [], [], [], False
        while not done:
            sensor.append(obs[SENSOR])
            privileged.append(obs[PRIVILEGED])
            actions.append(act(obs))
            obs, reward, terminated, truncated, _ = env.step(actions[-1])
            rewards.append(reward)
            done = terminated or truncated
        np.testing.assert_array_equal(recorded['sensor_obs'], sensor)
        np.testing.assert_array_equal(recorded['privileged_obs'], privileged)
        np.testing.assert_array_equal(recorded['action'], actions)
        np.testing.assert_array_equal(recorded['teacher_action'], actions)
        np.testing.assert_array_equal(recorded['reward'], rewards)
        assert recorded['terminated'][-1] or recorded['truncated'][-1]
        assert np.all(recorded['teacher_std'] > 0)

    # The bag written alongside replays into the same dataset.
    assert (tmp_path / 'bag' / 'metadata.yaml').is_file()
    subprocess.run([sys.executable, '-m', 'distill_ros.cli', 'bag2dataset', str(tmp_path / 'bag'), '--out',
                    str(tmp_path / 'replayed'), '--task', task], check=True)
    replayed = load_dataset(tmp_path / 'replayed')
    assert len(replayed) == len(live)
    for name in live.arrays:
        np.testing.assert_array_equal(replayed.arrays[name], live.arrays[name], err_msg=name)


def test_sigkill_keeps_every_finished_episode(ros, start_node, tmp_path):
    recorder = start_node('recorder_node', {'task': 'cartpole', 'dataset': str(tmp_path / 'ds'),
                                            'bag': str(tmp_path / 'bag')})
    sim = start_node('sim_node', {**SIM, 'seed': 5}, ros_args=REMAP)
    wait_for_subscribers(ros, RECORDED)
    start_node('teacher_node', {'task': 'cartpole', 'wait_for_subscribers': 2})
    manifest = tmp_path / 'ds' / 'manifest.json'

    def episodes_written() -> int:
        try:
            return len(load_dataset(tmp_path / 'ds', verify=False).episodes)
        except Exception:
            return 0

    deadline = time.monotonic() + 120
    while episodes_written() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.4)  # mid-episode
    recorder.proc.send_signal(signal.SIGKILL)
    recorder.proc.wait()
    sim.stop()
    assert manifest.is_file()
    ds = load_dataset(tmp_path / 'ds')
    assert len(ds.episodes) >= 2 and not ds.problems
    assert [e['seed'] for e in ds.episodes] == list(range(5, 5 + len(ds.episodes)))
    assert all(e['complete'] for e in ds.episodes)
    for i in range(len(ds.episodes)):
        episode = ds.episode(i)
        assert episode['terminated'][-1] or episode['truncated'][-1]
    check_killed_bag_is_recovered(tmp_path, ds)


def check_killed_bag_is_recovered(tmp_path, live):
    """The bag of the killed recorder (no metadata.yaml, no MCAP summary or footer): bag2dataset
    says how to recover it; bag-reindex keeps every complete message; the recovered bag replays
    into the episodes the live recorder wrote."""
    from distill_ros.data.bag import BagError, bag_to_dataset
    from distill_ros.data.dataset import DatasetSpec

    assert not (tmp_path / 'bag' / 'metadata.yaml').exists()
    spec = DatasetSpec.for_env(DistillEnv('cartpole'))
    with pytest.raises(BagError, match=r'an MCAP bag without metadata.yaml .*distill-ros bag-reindex'):
        bag_to_dataset(tmp_path / 'bag', tmp_path / 'x', spec, has_imu=True)
    result = subprocess.run([sys.executable, '-m', 'distill_ros.cli', 'bag-reindex', str(tmp_path / 'bag')],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"-> {tmp_path / 'bag-reindexed'}: recovered " in result.stdout and '/joint_states' in result.stdout
    stats = bag_to_dataset(tmp_path / 'bag-reindexed', tmp_path / 'recovered', spec, has_imu=True)
    # rosbags writes 1 MB chunks: two finished episodes (about 14k messages) put at least one on disk.
    assert stats.episodes >= 1, (result.stdout, stats)
    if stats.episodes:
        recovered = load_dataset(tmp_path / 'recovered')
        for i in range(len(recovered.episodes)):
            assert recovered.episodes[i]['seed'] == live.episodes[i]['seed']
            np.testing.assert_array_equal(recovered.episode(i)['sensor_obs'], live.episode(i)['sensor_obs'])


@pytest.mark.parametrize('params, expected', [
    ({}, "parameters 'dataset' and 'bag' are both empty"),
    ({'bag': '{tmp}'}, 'already exists; rosbag2 bags are written to a new folder'),
    ({'dataset': '{tmp}/ds', 'pairing': 'nearest'}, "parameter 'pairing' is 'nearest'"),
])
def test_bad_recorder_parameters_are_refused_at_start(start_node, tmp_path, params, expected):
    params = {k: v.replace('{tmp}', str(tmp_path)) for k, v in params.items()}
    recorder = start_node('recorder_node', params)
    assert recorder.wait(timeout=60) == 2
    assert expected in recorder.log(), recorder.log()
