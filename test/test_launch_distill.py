"""launch/distill.launch.py's graph (distill_ros/graphs.py) started as a process (the launch_pytest
twin is test_launch_distill_launch_pytest.py)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip('rclpy')
from helpers import TINY_DISTILL, make_dataset  # noqa: E402

from distill_ros.policies import checkpoint as ckpt_io  # noqa: E402


def test_distill_graph_writes_a_student(start_graph, tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    config = tmp_path / 'tiny.yaml'
    config.write_text(json.dumps(TINY_DISTILL))
    graph = start_graph('distill', dataset=str(dataset), config=str(config), out=str(tmp_path / 'out'))
    assert graph.wait(timeout=120) == {'distill_node': 0}, graph.logs()
    student = ckpt_io.load(tmp_path / 'out' / 'student')
    assert student.role == 'student'
    assert student.provenance['config']['student']['sizes'] == {'hidden': [16, 16]}  # the config argument was used
