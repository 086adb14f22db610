"""launch/dagger.launch.py under real ROS 2 launch: it runs its round and ends by itself. Skipped
where launch_pytest is not installed (it is on no package registry reachable here; docs/testing.md
says how to run it on a ROS 2 machine); test_launch_dagger.py starts the same graph as processes."""
from __future__ import annotations

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest (ROS 2 launch) is not installed; test_launch_dagger.py starts the same '
    'graph as processes')
from helpers import check_dagger_round, launch_file  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from distill_ros.students import shipped_student  # noqa: E402
from launch import LaunchDescription  # noqa: E402


@launch_pytest.fixture(auto_shutdown=False)  # the launch ends by itself; the test checks what it left
def dagger_launch(tmp_path):
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(launch_file('dagger')), launch_arguments={
            'student': str(shipped_student('cartpole')), 'episodes': '2', 'dataset': str(tmp_path / 'r1')}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.timeout(300)
@pytest.mark.launch(fixture=dagger_launch, shutdown=True)  # runs once the launch has ended (status 0)
def test_dagger_launch_records_a_round_and_ends(tmp_path):
    check_dagger_round(tmp_path / 'r1', episodes=2)
