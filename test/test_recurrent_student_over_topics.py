"""A recurrent student deployed over topics: student_controller_node keeps the hidden state in the
node and resets it at each simulated episode (sim/episode), so what it commands over DDS is what
the student computes in process from each episode's start."""
from __future__ import annotations

import numpy as np
import pytest

from distill_ros.paths import share_dir

pytest.importorskip('rclpy')
from helpers import wait_for_subscribers  # noqa: E402

from distill_ros.data.dataset import load_dataset  # noqa: E402
from distill_ros.distill.config import parse_config  # noqa: E402
from distill_ros.distill.dagger import collect_teacher_dataset  # noqa: E402
from distill_ros.distill.trainer import train_student  # noqa: E402
from distill_ros.policies import checkpoint as ckpt_io  # noqa: E402
from distill_ros.policies.actor import Actor  # noqa: E402
from distill_ros.teachers import shipped_teacher  # noqa: E402


def test_controller_resets_the_recurrent_state_at_each_episode(ros, start_node, tmp_path):
    teacher = ckpt_io.load(shipped_teacher('cartpole'))
    data = collect_teacher_dataset('cartpole', teacher, tmp_path / 'data', episodes=3, progress=False,
                                   teacher_noise=1.0)
    cfg = parse_config({'student': {'type': 'gru', 'sizes': {'hidden_size': 16, 'hidden': [16]}},
                        'train': {'steps': 150, 'eval_every': 50, 'batch_size': 256, 'sequence_length': 16,
                                  'burn_in': 8}, 'dagger': {'rounds': 0}, 'eval': {'episodes': 0}})
    student_path = train_student(data, teacher, cfg, tmp_path / 'student', progress=False).path
    config = share_dir() / 'config'
    dataset, episodes = tmp_path / 'run', 2
    start_node('recorder_node', {'max_episodes': episodes, 'dataset': str(dataset), 'teacher': False},
               ros_args=['--params-file', str(config / 'recorder.yaml')])
    start_node('student_controller_node', {'checkpoint': str(student_path), 'trigger': 'sensor',
                                           'auto_activate': True, 'sensor_timeout': 5.0, 'sensor_check_timeout': 0.0,
                                           'publish_joint_commands': True, 'episode_topic': 'sim/episode'},
               ros_args=['--params-file', str(config / 'student_controller.yaml')])
    wait_for_subscribers(ros, {'/sim/step': 1, '/joint_states': 2, '/imu/data': 2})
    start_node('sim_node', {'mode': 'lockstep', 'command_type': 'JointState', 'max_episodes': episodes,
                            'seed': 700_000, 'wait_for_subscribers': 2,
                            'lockstep_timeout': 30.0},
               ros_args=['--params-file', str(config / 'sim.yaml'), '-r', 'commands:=joint_commands'])
    assert ros.spin_until(lambda: (dataset / 'manifest.json').is_file()
                          and len(load_dataset(dataset).episode_starts) >= episodes, timeout=180)
    recorded = load_dataset(dataset)
    student = ckpt_io.load(student_path)
    for i in range(len(recorded.episode_starts)):
        episode, actor = recorded.episode(i), Actor(student)   # a zero state at each episode's start
        assert len(episode['action']) > 5
        for t in range(len(episode['action'])):
            expected = np.clip(actor.act(episode['sensor_obs'][t][None])[0], student.action_low, student.action_high)
            actor.executed([0], episode['action'][t][None])
            np.testing.assert_allclose(episode['action'][t], expected, rtol=1e-4, atol=1e-4,
                                       err_msg=f'episode {i} step {t}')
