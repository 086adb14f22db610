"""launch/distill.launch.py under real ROS 2 launch: distill_node writes a student and the launch
ends with it. Skipped where launch_pytest is not installed (it is on no package registry reachable
here; docs/testing.md says how to run it on a ROS 2 machine); test_launch_distill.py starts the same
graph as a process."""
from __future__ import annotations

import json

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest (ROS 2 launch) is not installed; test_launch_distill.py starts the same '
    'graph as a process')
from helpers import TINY_DISTILL, launch_file, make_dataset  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from distill_ros.policies import checkpoint as ckpt_io  # noqa: E402
from launch import LaunchDescription  # noqa: E402


# auto_shutdown=False: the launch ends when distill_node exits; with the default, launch_pytest shuts
# it down before a shutdown test runs, killing distill_node while it starts.
@launch_pytest.fixture(auto_shutdown=False)
def distill_launch(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    config = tmp_path / 'tiny.yaml'
    config.write_text(json.dumps(TINY_DISTILL))
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(launch_file('distill')), launch_arguments={
            'dataset': str(dataset), 'config': str(config), 'out': str(tmp_path / 'out')}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.timeout(300)
@pytest.mark.launch(fixture=distill_launch, shutdown=True)  # runs once the launch has ended (status 0)
def test_distill_launch_writes_a_student_and_ends(tmp_path):
    student = ckpt_io.load(tmp_path / 'out' / 'student')
    assert student.role == 'student'
    assert student.provenance['config']['student']['sizes'] == {'hidden': [16, 16]}  # the config argument was used
