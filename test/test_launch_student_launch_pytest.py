"""launch/student.launch.py under real ROS 2 launch with its topic arguments. Skipped where
launch_pytest is not installed (it is on no package registry reachable here);
test_launch_student.py runs the same node, parameter file and remappings as a process."""
from __future__ import annotations

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest (ROS 2 launch) is not installed; test_launch_student.py covers the same '
    'node, parameter file and remappings as a process')
from controller_checks import check_remapped_controller  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from distill_ros.paths import share_dir  # noqa: E402
from launch import LaunchDescription  # noqa: E402

REMAPS = {'joint_states': '/robot/joint_states', 'imu/data': '/imu_sensor_broadcaster/imu',
          'commands': '/forward_effort_controller/commands'}


@launch_pytest.fixture
def student_launch():
    path = str(share_dir() / 'launch' / 'student.launch.py')
    arguments = {'auto_activate': 'true', 'joint_states': REMAPS['joint_states'], 'imu': REMAPS['imu/data'],
                 'commands': REMAPS['commands']}
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments=arguments.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=student_launch)
def test_student_launch_commands_on_remapped_topics(ros):
    check_remapped_controller(ros, REMAPS)
