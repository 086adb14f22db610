"""launch/dagger.launch.py's four nodes with the same parameter files and overrides, started as
processes (the launch_pytest twin is test_launch_dagger_launch_pytest.py): the student drives the
simulator over topics, the teacher labels every state it visits, the recorder records both."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distill_ros.paths import share_dir

pytest.importorskip('rclpy')
from helpers import wait_for_subscribers  # noqa: E402

from distill_ros.data.dataset import load_dataset  # noqa: E402
from distill_ros.policies import checkpoint as ckpt_io  # noqa: E402
from distill_ros.policies.teachers import shipped_student, shipped_teacher  # noqa: E402


def test_dagger_round_over_topics(ros, start_node, tmp_path):
    config = share_dir() / 'config'
    dataset, episodes = tmp_path / 'round1', 2
    start_node('recorder_node', {'max_episodes': episodes, 'dataset': str(dataset), 'teacher': True},
               ros_args=['--params-file', str(config / 'recorder.yaml')])
    start_node('teacher_node', {}, ros_args=['--params-file', str(config / 'teacher.yaml')])
    start_node('student_controller_node', {'checkpoint': str(shipped_student('cartpole')), 'trigger': 'sensor',
                                           'auto_activate': True, 'sensor_timeout': 5.0, 'sensor_check_timeout': 0.0,
                                           'publish_joint_commands': True, 'episode_topic': 'sim/episode'},
               ros_args=['--params-file', str(config / 'student_controller.yaml')])
    # Every subscription is in the graph (and matched, after the helper's grace period) before the
    # simulator starts: the recorder misses none of the teacher's labels.
    wait_for_subscribers(ros, {'/sim/step': 1, '/privileged/state': 2, '/joint_states': 2, '/imu/data': 2,
                               '/teacher/action': 1, '/teacher/distribution': 1})
    # The simulator holds its first observation until the recorder and the controller listen, takes
    # only commands stamped with the observation they answer (the controller's safe actions while it
    # waits for data carry other stamps), and never re-publishes an observation being answered.
    start_node('sim_node', {'mode': 'lockstep', 'command_type': 'JointState', 'max_episodes': episodes,
                            'seed': 500_000, 'wait_for_subscribers': 2, 'lockstep_timeout': 30.0},
               ros_args=['--params-file', str(config / 'sim.yaml'), '-r', 'commands:=joint_commands'])
    assert ros.spin_until(lambda: (dataset / 'manifest.json').is_file() and len(load_dataset(dataset)) > 0
                          and len(load_dataset(dataset).episode_starts) >= episodes, timeout=180)
    data = load_dataset(dataset)
    assert [e['seed'] for e in data.episodes] == [500_000, 500_001]
    teacher = ckpt_io.load(shipped_teacher('cartpole'))
    student = ckpt_io.load(shipped_student('cartpole'))
    # the teacher labelled every state the student visited
    with torch.no_grad():
        labels = teacher.model(torch.as_tensor(data.arrays['privileged_obs'], dtype=torch.float32)).numpy()
    np.testing.assert_allclose(data.arrays['teacher_mean'], labels, rtol=1e-5, atol=1e-5)
    # the student acted: each executed action is the student's on its own sensor history, a fresh
    # window at every episode start (episode_topic), exactly as in training and in-process DAgger
    for i in range(len(data.episode_starts)):
        episode = data.episode(i)
        buffer = student.history_buffer()
        for t in range(min(200, len(episode['action']))):
            expected = student.act(buffer.push(episode['sensor_obs'][t]))
            buffer.set_action(episode['action'][t])
            np.testing.assert_allclose(episode['action'][t], expected, rtol=1e-4, atol=1e-4,
                                       err_msg=f'episode {i} step {t}')
    assert not np.allclose(data.arrays['action'], data.arrays['teacher_action'])
