"""Checks shared by the launch_pytest tests and their process-based twins."""
from __future__ import annotations

from sensor_msgs.msg import JointState

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
    from distill_ros.policies.teachers import shipped_teacher
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
