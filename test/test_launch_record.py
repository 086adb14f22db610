"""launch/sim_teacher_record.launch.py's three nodes with the same parameter files and overrides,
started as processes (the launch_pytest twin is test_launch_record_launch_pytest.py)."""
from __future__ import annotations

import pytest

from distill_ros.paths import share_dir

pytest.importorskip('rclpy')
from helpers import check_recording  # noqa: E402


def test_record_nodes_with_packaged_params_files(ros, start_node, tmp_path):
    config = share_dir() / 'config'
    dataset = tmp_path / 'data'
    start_node('recorder_node', {'max_episodes': 2, 'dataset': str(dataset)},
               ros_args=['--params-file', str(config / 'recorder.yaml')])
    start_node('sim_node', {'mode': 'lockstep', 'command_type': 'JointState', 'max_episodes': 2, 'seed': 0,
                            'wait_for_subscribers': 1},
               ros_args=['--params-file', str(config / 'sim.yaml'), '-r', 'commands:=teacher/action'])
    # The teacher answers once the simulator and the recorder both take its actions.
    start_node('teacher_node', {'wait_for_subscribers': 2}, ros_args=['--params-file', str(config / 'teacher.yaml')])
    check_recording(ros, dataset, episodes=2)
