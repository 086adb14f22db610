"""Checks shared by the launch_pytest tests and their process-based twins."""
from __future__ import annotations

from sensor_msgs.msg import JointState

from distill_ros.distill.seeds import DAGGER_SEED_BASE
from distill_ros.nodes.common import LATCHED, SENSOR_DATA


def check_sim_is_publishing(ros, joints=('slider', 'hinge')) -> None:
    """sim_node is up: joint states flow with the task's joint names and episode 0 was announced."""
    states: list[JointState] = []
    announcements: list[JointState] = []
    ros.node.create_subscription(JointState, 'joint_states', states.append, SENSOR_DATA)
    ros.node.create_subscription(JointState, 'sim/episode', announcements.append, LATCHED)
    assert ros.spin_until(lambda: len(states) >= 10 and announcements, timeout=30)
    assert tuple(states[-1].name) == tuple(joints)
    assert dict(zip(announcements[0].name, announcements[0].position))['episode'] == 0


def check_recording(ros, dataset, episodes: int) -> None:
    """The recording pipeline wrote `episodes` complete episodes of the teacher balancing the pole."""
    from distill_ros.data.dataset import load_dataset

    def written() -> int:
        try:
            return len(load_dataset(dataset, verify=False).episodes)
        except Exception:
            return 0
    assert ros.spin_until(lambda: written() >= episodes, timeout=120)
    ds = load_dataset(dataset)
    assert not ds.problems and len(ds.episodes) == episodes
    assert all(e['complete'] for e in ds.episodes)
    assert ds.arrays['reward'].sum() >= 900 * episodes  # the shipped teacher keeps the pole up


# A distillation config small enough for a test (seconds).
TINY_DISTILL = {'train': {'steps': 40, 'eval_every': 20, 'batch_size': 64},
                'student': {'sizes': {'hidden': [16, 16]}}, 'dagger': {'rounds': 0}, 'eval': {'episodes': 1}}


def make_dataset(folder, episodes: int = 2):
    """Cartpole teacher rollouts (in-process) in `folder`, unless it already holds a dataset."""
    from pathlib import Path

    from distill_ros.distill.dagger import collect_teacher_dataset
    from distill_ros.policies import checkpoint as ckpt_io
    from distill_ros.teachers import shipped_teacher
    folder = Path(folder)
    if not (folder / 'manifest.json').is_file():
        collect_teacher_dataset('cartpole', ckpt_io.load(shipped_teacher('cartpole')), folder, episodes=episodes,
                                progress=False)
    return folder


def wait_for_subscribers(ros, topics: dict[str, int], timeout: float = 30) -> None:
    """Until the graph shows the recorder's (and others') subscriptions, then a grace period so the
    publishers' side of each match is complete too."""
    def ready() -> bool:
        return all(ros.node.count_subscribers(t) >= n for t, n in topics.items())
    assert ros.spin_until(ready, timeout), {t: ros.node.count_subscribers(t) for t in topics}
    ros.spin_until(lambda: False, timeout=3.0)


def check_dagger_round(dataset, episodes: int, seed: int = DAGGER_SEED_BASE) -> None:
    """A DAgger round over topics with the shipped cartpole student and teacher: `episodes` complete
    episodes from `seed` on; the teacher labelled every state the student visited; every executed
    action is the student's on its own sensor history, a fresh window at every episode start
    (episode_topic), exactly as in training and in-process DAgger."""
    import numpy as np
    import torch

    from distill_ros.data.dataset import load_dataset
    from distill_ros.policies import checkpoint as ckpt_io
    from distill_ros.students import shipped_student
    from distill_ros.teachers import shipped_teacher
    data = load_dataset(dataset)
    assert not data.problems and len(data.episode_starts) == episodes
    assert all(e['complete'] for e in data.episodes)  # every state labelled: none went out before the teacher listened
    assert [e['seed'] for e in data.episodes] == [seed + i for i in range(episodes)]
    teacher = ckpt_io.load(shipped_teacher('cartpole'))
    student = ckpt_io.load(shipped_student('cartpole'))
    with torch.no_grad():
        labels = teacher.model(torch.as_tensor(data.arrays['privileged_obs'], dtype=torch.float32)).numpy()
    np.testing.assert_allclose(data.arrays['teacher_mean'], labels, rtol=1e-5, atol=1e-5)
    for i in range(len(data.episode_starts)):
        episode = data.episode(i)
        buffer = student.history_buffer()
        for t in range(min(200, len(episode['action']))):
            expected = student.act(buffer.push(episode['sensor_obs'][t]))
            buffer.set_action(episode['action'][t])
            np.testing.assert_allclose(episode['action'][t], expected, rtol=1e-4, atol=1e-4,
                                       err_msg=f'episode {i} step {t}')
    assert not np.allclose(data.arrays['action'], data.arrays['teacher_action'])


def launch_file(graph: str) -> str:
    """The installed (or source) launch file of a graph."""
    from distill_ros.paths import share_dir
    return str(share_dir() / 'launch' / f'{graph}.launch.py')
