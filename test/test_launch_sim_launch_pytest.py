"""launch/sim.launch.py under real ROS 2 launch. Skipped where launch_pytest is not installed (it
is on no package registry reachable here; docs/testing.md says how to run it on a ROS 2 machine);
test_launch_sim.py starts the same graph as processes."""
from __future__ import annotations

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest (ROS 2 launch) is not installed; test_launch_sim.py starts the same '
    'graph as processes')
from helpers import check_sim_is_publishing, launch_file  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from launch import LaunchDescription  # noqa: E402


@launch_pytest.fixture
def sim_launch():
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(launch_file('sim')),
                                 launch_arguments={'mode': 'realtime'}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.timeout(120)
@pytest.mark.launch(fixture=sim_launch)
def test_sim_launch_publishes(ros):
    check_sim_is_publishing(ros)
