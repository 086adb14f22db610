"""launch/sim.launch.py under real ROS 2 launch. Skipped where launch_pytest is not installed (it
is on no package registry reachable here); test_launch_sim.py runs the same check on processes."""
from __future__ import annotations

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest (ROS 2 launch) is not installed; test_launch_sim.py covers the same '
    'node and parameters as processes')
from helpers import check_sim_is_publishing  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from distill_ros.paths import share_dir  # noqa: E402
from launch import LaunchDescription  # noqa: E402


@launch_pytest.fixture
def sim_launch():
    path = str(share_dir() / 'launch' / 'sim.launch.py')
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments={'mode': 'realtime'}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=sim_launch)
def test_sim_launch_publishes(ros):
    check_sim_is_publishing(ros)
