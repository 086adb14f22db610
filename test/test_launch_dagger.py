"""launch/dagger.launch.py's graph (distill_ros/graphs.py) started as processes (the launch_pytest
twin is test_launch_dagger_launch_pytest.py): the student drives the simulator over topics, the
teacher labels every state it visits, the recorder records both, and the graph ends by itself."""
from __future__ import annotations

import pytest

pytest.importorskip('rclpy')
from helpers import check_dagger_round  # noqa: E402

from distill_ros.policies.teachers import shipped_student  # noqa: E402


def test_dagger_round_over_topics(start_graph, tmp_path):
    graph = start_graph('dagger', student=str(shipped_student('cartpole')), episodes=2, dataset=str(tmp_path / 'r1'))
    assert graph.wait(timeout=180) == {'recorder_node': 0, 'teacher_node': 0, 'student_controller_node': 0,
                                       'sim_node': 0}, graph.logs()
    check_dagger_round(tmp_path / 'r1', episodes=2)
