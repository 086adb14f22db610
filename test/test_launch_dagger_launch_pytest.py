"""launch/dagger.launch.py under real ROS 2 launch. Skipped where launch_pytest is not installed
(it is on no package registry reachable here); test_launch_dagger.py runs the same nodes with the
same parameter files as processes."""
from __future__ import annotations

from pathlib import Path

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest (ROS 2 launch) is not installed; test_launch_dagger.py covers the same '
    'nodes and parameter files as processes')
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from distill_ros.data.dataset import load_dataset  # noqa: E402
from distill_ros.paths import share_dir  # noqa: E402
from distill_ros.policies.teachers import shipped_student  # noqa: E402
from launch import LaunchDescription  # noqa: E402

DATASET = Path('/tmp/distill_ros_launch_dagger_test')


@launch_pytest.fixture
def dagger_launch():
    path = str(share_dir() / 'launch' / 'dagger.launch.py')
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments={
            'student': str(shipped_student('cartpole')), 'episodes': '2', 'dataset': str(DATASET)}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=dagger_launch)
def test_dagger_launch_records_student_episodes(ros):
    def done() -> bool:
        return (DATASET / 'manifest.json').is_file() and len(load_dataset(DATASET).episode_starts) >= 2
    assert ros.spin_until(done, timeout=180)
