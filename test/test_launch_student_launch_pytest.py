"""launch/student.launch.py under real ROS 2 launch with its topic arguments. Skipped where
launch_pytest is not installed (it is on no package registry reachable here; docs/testing.md says
how to run it on a ROS 2 machine); test_launch_student.py starts the same graph as a process."""
from __future__ import annotations

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest (ROS 2 launch) is not installed; test_launch_student.py starts the same '
    'graph as a process')
from controller_checks import ROBOT_TOPICS, check_remapped_controller, lifecycle_state  # noqa: E402
from helpers import launch_file  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from launch import LaunchDescription  # noqa: E402


def student_launch_with(auto_activate: str):
    arguments = {'auto_activate': auto_activate, 'joint_states': ROBOT_TOPICS['joint_states'],
                 'imu': ROBOT_TOPICS['imu/data'], 'commands': ROBOT_TOPICS['commands']}
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(launch_file('student')),
                                 launch_arguments=arguments.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@launch_pytest.fixture
def student_launch():
    return student_launch_with('true')


@launch_pytest.fixture
def student_launch_unconfigured():
    return student_launch_with('false')


@pytest.mark.timeout(120)
@pytest.mark.launch(fixture=student_launch)
def test_student_launch_commands_on_remapped_topics(ros):
    check_remapped_controller(ros, ROBOT_TOPICS)
    assert lifecycle_state(ros, '/student_controller_node') == 'active'


@pytest.mark.timeout(120)
@pytest.mark.launch(fixture=student_launch_unconfigured)
def test_student_launch_waits_for_a_lifecycle_manager(ros):
    assert lifecycle_state(ros, '/student_controller_node') == 'unconfigured'
