"""launch/sim_student.launch.py under real ROS 2 launch. Skipped where launch_pytest is not installed
(it is on no package registry reachable here); test_launch_sim_student.py runs the same nodes with
the same parameter files as processes."""
from __future__ import annotations

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest (ROS 2 launch) is not installed; test_launch_sim_student.py covers the '
    'same nodes and parameter files as processes')
from controller_checks import check_balancing  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from distill_ros.paths import share_dir  # noqa: E402
from launch import LaunchDescription  # noqa: E402


@launch_pytest.fixture
def sim_student_launch():
    path = str(share_dir() / 'launch' / 'sim_student.launch.py')
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(path)),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=sim_student_launch)
def test_sim_student_launch_keeps_the_pole_up(ros):
    check_balancing(ros, min_steps=120, timeout=60)
