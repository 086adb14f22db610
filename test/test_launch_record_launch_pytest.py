"""launch/sim_teacher_record.launch.py under real ROS 2 launch: it records and ends by itself.
Skipped where launch_pytest is not installed (it is on no package registry reachable here;
docs/testing.md says how to run it on a ROS 2 machine); test_launch_record.py starts the same graph
as processes."""
from __future__ import annotations

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest (ROS 2 launch) is not installed; test_launch_record.py starts the same '
    'graph as processes')
from helpers import check_recording, launch_file  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from launch import LaunchDescription  # noqa: E402


@launch_pytest.fixture(auto_shutdown=False)  # the launch ends by itself; the test checks what it left
def record_launch(tmp_path):
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(launch_file('sim_teacher_record')),
                                 launch_arguments={'episodes': '2', 'dataset': str(tmp_path / 'data')}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.timeout(300)
@pytest.mark.launch(fixture=record_launch, shutdown=True)  # runs once the launch has ended (status 0)
def test_record_launch_writes_a_dataset_and_ends(ros, tmp_path):
    check_recording(ros, tmp_path / 'data', episodes=2)
