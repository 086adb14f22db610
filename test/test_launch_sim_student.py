"""launch/sim_student.launch.py's two nodes with the same parameter files and overrides, started as
processes (the launch_pytest twin is test_launch_sim_student_launch_pytest.py)."""
from __future__ import annotations

import pytest

from distill_ros.paths import share_dir

pytest.importorskip('rclpy')
from controller_checks import check_balancing  # noqa: E402


def test_sim_student_nodes_with_packaged_params_files(ros, start_node):
    config = share_dir() / 'config'
    sim = start_node('sim_node', {'mode': 'realtime'}, ros_args=['--params-file', str(config / 'sim.yaml')])
    ctl = start_node('student_controller_node',
                     {'auto_activate': True, 'sensor_check_timeout': 30.0, 'episode_topic': 'sim/episode'},
                     ros_args=['--params-file', str(config / 'student_controller.yaml')])
    check_balancing(ros, min_steps=120, timeout=60)
    assert sim.poll() is None and ctl.poll() is None, f'{sim.log()}\n{ctl.log()}'
