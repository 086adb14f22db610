"""launch/sim_student.launch.py's graph (distill_ros/graphs.py) started as processes (the
launch_pytest twin is test_launch_sim_student_launch_pytest.py)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('rclpy')
from controller_checks import check_balancing, diagnostics, quadruped_student  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from distill_ros.nodes.common import RELIABLE, RELIABLE_DEEP  # noqa: E402


def test_sim_student_graph_keeps_the_pole_up(ros, start_graph):
    graph = start_graph('sim_student')
    check_balancing(ros, min_steps=120, timeout=60)
    assert not graph.finished(), graph.logs()  # episodes 0: it runs until stopped
    assert graph.stop() == {'sim_node': 0, 'student_controller_node': 0}, graph.logs()  # Ctrl-C ends it cleanly


def test_sim_student_graph_drives_the_quadruped_from_cmd_vel(ros, start_graph, tmp_path):
    """The README's path (command_source cmd_vel): a Twist on cmd_vel is the simulator's command
    (privileged/state, hence its reward) and the student's (the observation, on /diagnostics) at
    once, and zero velocity for both once cmd_vel falls silent."""
    graph = start_graph('sim_student', task='quadruped', checkpoint=quadruped_student(tmp_path / 'student'),
                        control_rate_hz='50.0', command_source='cmd_vel')
    seen = diagnostics(ros)
    sim_command: list[list[float]] = []

    def on_privileged(msg: JointState) -> None:
        values = dict(zip(msg.name, msg.position))
        sim_command.append([values['command/vx'], values['command/vy'], values['command/yaw_rate']])
    ros.node.create_subscription(JointState, 'privileged/state', on_privileged, RELIABLE_DEEP)
    twist_pub = ros.node.create_publisher(Twist, 'cmd_vel', RELIABLE)
    twist = Twist()
    twist.linear.x, twist.linear.y, twist.angular.z = 0.6, 0.2, -0.4

    def student_command() -> str | None:
        return seen[-1][2].get('command') if seen else None
    teleop = ros.node.create_timer(0.05, lambda: twist_pub.publish(twist))
    assert ros.spin_until(lambda: sim_command and sim_command[-1] == [0.6, 0.2, -0.4]
                          and student_command() == '0.6000 0.2000 -0.4000', timeout=90), \
        (sim_command[-1:], seen[-1:], graph.logs())
    teleop.cancel()
    assert ros.spin_until(lambda: sim_command[-1] == [0.0, 0.0, 0.0] and student_command() == '0.0000 0.0000 0.0000',
                          timeout=10), (sim_command[-1:], seen[-1:])
    assert graph.stop() == {'sim_node': 0, 'student_controller_node': 0}, graph.logs()


def test_the_shipped_quadruped_student_walks_where_cmd_vel_says(ros, start_graph):
    """The README's command: the shipped quadruped student in the simulated robot, at its trained
    50 Hz (control_rate_hz unset), follows a forward Twist on cmd_vel over topics: the base's true
    forward velocity (privileged/state) reaches the command and the robot does not fall."""
    graph = start_graph('sim_student', task='quadruped', checkpoint='quadruped', command_source='cmd_vel')
    velocity: list[float] = []   # the base's forward velocity (world frame; the robot starts facing +x)
    episodes: set[float] = set()

    def on_privileged(msg: JointState) -> None:
        values = dict(zip(msg.name, msg.position))
        velocity.append(values['qvel/root/vx'])
    ros.node.create_subscription(JointState, 'privileged/state', on_privileged, RELIABLE_DEEP)
    ros.node.create_subscription(JointState, 'sim/step',
                                 lambda msg: episodes.add(dict(zip(msg.name, msg.position))['episode']), RELIABLE_DEEP)
    twist_pub = ros.node.create_publisher(Twist, 'cmd_vel', RELIABLE)
    twist = Twist()
    twist.linear.x = 0.5
    ros.node.create_timer(0.05, lambda: twist_pub.publish(twist))
    # 4 s of walking at 50 Hz: the last 2 s average near the command, all in the first episode
    assert ros.spin_until(lambda: len(velocity) >= 200, timeout=120), graph.logs()
    walked = float(np.mean(velocity[100:200]))
    assert abs(walked - 0.5) < 0.15, (walked, graph.logs())
    assert episodes == {0.0}, ('the robot fell', episodes)
    assert graph.stop() == {'sim_node': 0, 'student_controller_node': 0}, graph.logs()
