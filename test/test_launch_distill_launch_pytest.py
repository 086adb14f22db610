"""launch/distill.launch.py under real ROS 2 launch. Skipped where launch_pytest is not installed
(it is on no package registry reachable here); test_launch_distill.py runs the same node with the
same parameter file as a process."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest (ROS 2 launch) is not installed; test_launch_distill.py covers the same '
    'node and parameter file as a process')
from helpers import TINY_DISTILL, make_dataset  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from distill_ros.paths import share_dir  # noqa: E402
from distill_ros.policies import checkpoint as ckpt_io  # noqa: E402
from launch import LaunchDescription  # noqa: E402

ROOT = Path('/tmp/distill_ros_launch_distill_test')


@launch_pytest.fixture
def distill_launch():
    dataset = make_dataset(ROOT / 'data')
    config = ROOT / 'tiny.yaml'
    config.write_text(json.dumps(TINY_DISTILL))
    path = str(share_dir() / 'launch' / 'distill.launch.py')
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments={
            'dataset': str(dataset), 'config': str(config), 'out': str(ROOT / 'out')}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=distill_launch, shutdown=True)
def test_distill_launch_writes_a_student(ros):
    assert ros.spin_until(lambda: (ROOT / 'out' / 'student' / 'policy.json').is_file(), timeout=120)
    assert ckpt_io.load(ROOT / 'out' / 'student').role == 'student'
