"""launch/sim_student.launch.py's graph (distill_ros/graphs.py) started as processes (the
launch_pytest twin is test_launch_sim_student_launch_pytest.py)."""
from __future__ import annotations

import pytest

pytest.importorskip('rclpy')
from controller_checks import check_balancing  # noqa: E402


def test_sim_student_graph_keeps_the_pole_up(ros, start_graph):
    graph = start_graph('sim_student')
    check_balancing(ros, min_steps=120, timeout=60)
    assert not graph.finished(), graph.logs()  # episodes 0: it runs until stopped
    assert graph.stop() == {'sim_node': 0, 'student_controller_node': 0}, graph.logs()  # Ctrl-C ends it cleanly
