"""launch/sim.launch.py's node and parameter file, started as a process (always runs); the same
check under real `ros2 launch` is in test_launch_sim_launch_pytest.py."""
from __future__ import annotations

import pytest

from distill_ros.paths import share_dir

pytest.importorskip('rclpy')
from helpers import check_sim_is_publishing  # noqa: E402


def test_sim_with_packaged_params_file(ros, start_node):
    params = share_dir() / 'config' / 'sim.yaml'
    sim = start_node('sim_node', {'mode': 'realtime'}, ros_args=['--params-file', str(params)])
    check_sim_is_publishing(ros)
    assert sim.poll() is None, sim.log()
