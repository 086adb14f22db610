"""launch/dagger.launch.py's graph (distill_ros/graphs.py) started as processes (the launch_pytest
twin is test_launch_dagger_launch_pytest.py): the student drives the simulator over topics, the
teacher labels every state it visits, the recorder records both, and the graph ends by itself."""
from __future__ import annotations

import json
import time

import pytest

pytest.importorskip('rclpy')
from helpers import check_dagger_round  # noqa: E402

from distill_ros.data.dataset import load_dataset  # noqa: E402
from distill_ros.students import shipped_student  # noqa: E402


def test_dagger_round_over_topics(start_graph, tmp_path):
    graph = start_graph('dagger', student=str(shipped_student('cartpole')), episodes=2, dataset=str(tmp_path / 'r1'))
    assert graph.wait(timeout=180) == {'recorder_node': 0, 'teacher_node': 0, 'student_controller_node': 0,
                                       'sim_node': 0}, graph.logs()
    check_dagger_round(tmp_path / 'r1', episodes=2)


def test_ctrl_c_ends_every_node_cleanly(start_graph, tmp_path):
    """A terminal Ctrl-C under ros2 launch reaches every node twice within milliseconds (the
    terminal's SIGINT to the process group, then launch's own): each still ends with status 0, no
    traceback, and the recorder keeps the episodes it finished."""
    graph = start_graph('dagger', student=str(shipped_student('cartpole')), episodes=100, dataset=str(tmp_path / 'r1'))
    deadline = time.monotonic() + 120
    manifest = tmp_path / 'r1' / 'manifest.json'
    while not (manifest.is_file() and json.loads(manifest.read_text())['episodes']):  # mid-run: one episode written
        assert time.monotonic() < deadline and not graph.failed(), graph.logs()
        time.sleep(0.2)
    assert graph.ctrl_c() == {'recorder_node': 0, 'teacher_node': 0, 'student_controller_node': 0,
                              'sim_node': 0}, graph.logs()
    assert 'Traceback' not in graph.logs()
    assert len(load_dataset(tmp_path / 'r1').episodes) >= 1
