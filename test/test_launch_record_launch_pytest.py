"""launch/sim_teacher_record.launch.py under real ROS 2 launch. Skipped where launch_pytest is not
installed (it is on no package registry reachable here); test_launch_record.py runs the same nodes
with the same parameter files as processes."""
from __future__ import annotations

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest (ROS 2 launch) is not installed; test_launch_record.py covers the same '
    'nodes and parameter files as processes')
from helpers import check_recording  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from distill_ros.paths import share_dir  # noqa: E402
from launch import LaunchDescription  # noqa: E402

DATASET = '/tmp/distill_ros_launch_record_test'


@launch_pytest.fixture
def record_launch():
    path = str(share_dir() / 'launch' / 'sim_teacher_record.launch.py')
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(path),
                                 launch_arguments={'episodes': '2', 'dataset': DATASET}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=record_launch)
def test_record_launch_writes_a_dataset(ros):
    check_recording(ros, DATASET, episodes=2)
