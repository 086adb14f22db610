"""launch/student.launch.py's node with the packaged parameter file and the remappings a robot
uses (ros2_control broadcasters in, a forward_command_controller out), started as a process; the
launch_pytest twin is test_launch_student_launch_pytest.py."""
from __future__ import annotations

import pytest

from distill_ros.paths import share_dir

pytest.importorskip('rclpy')
from controller_checks import check_remapped_controller  # noqa: E402

REMAPS = {'joint_states': '/robot/joint_states', 'imu/data': '/imu_sensor_broadcaster/imu',
          'commands': '/forward_effort_controller/commands'}


def test_student_node_alone_with_remapped_topics(ros, start_node):
    params = share_dir() / 'config' / 'student_controller.yaml'
    remaps = [arg for old, new in REMAPS.items() for arg in ('-r', f'{old}:={new}')]
    ctl = start_node('student_controller_node', {'auto_activate': True},
                     ros_args=['--params-file', str(params), *remaps])
    check_remapped_controller(ros, REMAPS)
    assert ctl.poll() is None, ctl.log()
