"""launch/distill.launch.py's node with the same parameter file and arguments, started as a process
(the launch_pytest twin is test_launch_distill_launch_pytest.py)."""
from __future__ import annotations

import json

import pytest

from distill_ros.paths import share_dir

pytest.importorskip('rclpy')
from helpers import TINY_DISTILL, make_dataset  # noqa: E402

from distill_ros.policies import checkpoint as ckpt_io  # noqa: E402


def test_distill_node_with_packaged_params_file(start_node, tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    config = tmp_path / 'tiny.yaml'
    config.write_text(json.dumps(TINY_DISTILL))
    node = start_node('distill_node', {'dataset': str(dataset), 'config': str(config), 'out': str(tmp_path / 'out')},
                      ros_args=['--params-file', str(share_dir() / 'config' / 'distill_node.yaml')])
    assert node.wait(timeout=120) == 0, node.log()
    assert ckpt_io.load(tmp_path / 'out' / 'student').role == 'student'
