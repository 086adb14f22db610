"""launch/student.launch.py's graph (distill_ros/graphs.py) with the topic arguments a robot uses
(ros2_control broadcasters in, a forward_command_controller out), started as a process; the
launch_pytest twin is test_launch_student_launch_pytest.py."""
from __future__ import annotations

import pytest

pytest.importorskip('rclpy')
from controller_checks import ROBOT_TOPICS, check_remapped_controller  # noqa: E402


def test_student_graph_with_robot_topics(ros, start_graph):
    graph = start_graph('student', auto_activate=True, joint_states=ROBOT_TOPICS['joint_states'],
                        imu=ROBOT_TOPICS['imu/data'], commands=ROBOT_TOPICS['commands'])
    check_remapped_controller(ros, ROBOT_TOPICS)
    assert graph['student_controller_node'].poll() is None, graph.logs()
