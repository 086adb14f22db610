"""launch/sim.launch.py's graph (distill_ros/graphs.py) started as processes (always runs); the same
check under real `ros2 launch` is in test_launch_sim_launch_pytest.py."""
from __future__ import annotations

import pytest

pytest.importorskip('rclpy')
from helpers import check_sim_is_publishing  # noqa: E402


def test_sim_graph_publishes(ros, start_graph):
    graph = start_graph('sim')
    check_sim_is_publishing(ros)
    assert graph['sim_node'].poll() is None, graph.logs()
    assert not graph.finished()  # no max_episodes: it runs until stopped
