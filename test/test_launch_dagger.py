"""launch/dagger.launch.py's graph (distill_ros/graphs.py) started as processes (the launch_pytest
twin is test_launch_dagger_launch_pytest.py): the student drives the simulator over topics, the
teacher labels every state it visits, the recorder records both, and the graph ends by itself."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip('rclpy')

from distill_ros.data.dataset import load_dataset  # noqa: E402
from distill_ros.policies import checkpoint as ckpt_io  # noqa: E402
from distill_ros.policies.teachers import shipped_student, shipped_teacher  # noqa: E402


def test_dagger_round_over_topics(start_graph, tmp_path):
    dataset, episodes = tmp_path / 'round1', 2
    graph = start_graph('dagger', student=str(shipped_student('cartpole')), episodes=episodes, dataset=str(dataset))
    assert graph.wait(timeout=180) == {'recorder_node': 0, 'teacher_node': 0, 'student_controller_node': 0,
                                       'sim_node': 0}, graph.logs()
    data = load_dataset(dataset)
    assert not data.problems and len(data.episode_starts) == episodes
    assert [e['seed'] for e in data.episodes] == [500_000, 500_001]  # the graph's default seed
    teacher = ckpt_io.load(shipped_teacher('cartpole'))
    student = ckpt_io.load(shipped_student('cartpole'))
    # the teacher labelled every state the student visited
    with torch.no_grad():
        labels = teacher.model(torch.as_tensor(data.arrays['privileged_obs'], dtype=torch.float32)).numpy()
    np.testing.assert_allclose(data.arrays['teacher_mean'], labels, rtol=1e-5, atol=1e-5)
    # the student acted: each executed action is the student's on its own sensor history, a fresh
    # window at every episode start (episode_topic), exactly as in training and in-process DAgger
    for i in range(len(data.episode_starts)):
        episode = data.episode(i)
        buffer = student.history_buffer()
        for t in range(min(200, len(episode['action']))):
            expected = student.act(buffer.push(episode['sensor_obs'][t]))
            buffer.set_action(episode['action'][t])
            np.testing.assert_allclose(episode['action'][t], expected, rtol=1e-4, atol=1e-4,
                                       err_msg=f'episode {i} step {t}')
    assert not np.allclose(data.arrays['action'], data.arrays['teacher_action'])
