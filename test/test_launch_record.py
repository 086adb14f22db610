"""launch/sim_teacher_record.launch.py's graph (distill_ros/graphs.py) started as processes (the
launch_pytest twin is test_launch_record_launch_pytest.py): it records and ends by itself."""
from __future__ import annotations

import pytest

pytest.importorskip('rclpy')
from helpers import check_recording  # noqa: E402


def test_record_graph_records_and_ends_by_itself(ros, start_graph, tmp_path):
    dataset = tmp_path / 'data'
    graph = start_graph('sim_teacher_record', episodes=2, dataset=str(dataset))
    # the simulator and the recorder finish; the teacher is then stopped as by ros2 launch
    assert graph.wait(timeout=180) == {'sim_node': 0, 'teacher_node': 0, 'recorder_node': 0}, graph.logs()
    check_recording(ros, dataset, episodes=2)
