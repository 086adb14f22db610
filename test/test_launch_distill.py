"""launch/distill.launch.py's graph (distill_ros/graphs.py) started as a process (the launch_pytest
twin is test_launch_distill_launch_pytest.py)."""
from __future__ import annotations

import json
import time

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


def test_ctrl_c_while_training_ends_distill_node_cleanly(start_graph, tmp_path):
    """Ctrl-C under ros2 launch (SIGINT twice) while the worker thread trains: status 0, not a crash
    of the interpreter under the torch thread (SIGSEGV, -11)."""
    dataset = make_dataset(tmp_path / 'data')
    config = tmp_path / 'long.yaml'
    config.write_text(json.dumps({**TINY_DISTILL, 'train': {'steps': 100_000, 'eval_every': 50, 'batch_size': 64}}))
    graph = start_graph('distill', dataset=str(dataset), config=str(config), out=str(tmp_path / 'out'))
    deadline = time.monotonic() + 60
    while 'distilling' not in graph['distill_node'].log():
        assert time.monotonic() < deadline and not graph.failed(), graph.logs()
        time.sleep(0.2)
    time.sleep(2.0)  # inside training
    assert graph.ctrl_c() == {'distill_node': 0}, graph.logs()
