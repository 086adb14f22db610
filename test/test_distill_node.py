"""distill_node as a real process: runs the job from YAML parameters, reports progress on
/diagnostics, writes the student and exits 0; a bad config ends it at start with status 2."""
from __future__ import annotations

import json

import pytest

pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402

from distill_ros.distill.dagger import collect_teacher_dataset  # noqa: E402
from distill_ros.nodes.distill_node import PROGRESS  # noqa: E402
from distill_ros.policies import checkpoint as ckpt_io  # noqa: E402
from distill_ros.teachers import shipped_teacher  # noqa: E402

STEPS = 300
TINY = {'train': {'steps': STEPS, 'eval_every': 10, 'batch_size': 64, 'patience': 1000},
        'student': {'sizes': {'hidden': [16, 16]}}, 'dagger': {'rounds': 0}, 'eval': {'episodes': 1}}


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp('node') / 'data'
    collect_teacher_dataset('cartpole', ckpt_io.load(shipped_teacher('cartpole')), folder, episodes=2, progress=False)
    return folder


def test_distill_node_trains_reports_and_exits_zero(ros, start_node, tmp_path, dataset):
    config = tmp_path / 'distill.yaml'
    config.write_text(json.dumps(TINY))
    diagnostics: list = []
    # The job starts once this subscription is matched (wait_for_subscribers), so no report is
    # published before it can arrive.
    ros.node.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, PROGRESS)
    node = start_node('distill_node', {'dataset': str(dataset), 'config': str(config), 'out': str(tmp_path / 'out'),
                                       'wait_for_subscribers': 1})
    assert ros.spin_until(lambda: node.poll() is not None, timeout=120), node.log()
    assert node.poll() == 0, node.log()
    ros.spin_until(lambda: any(s.message == 'done' for d in diagnostics for s in d.status), timeout=5)
    reports = [(s.message, dict((kv.key, kv.value) for kv in s.values)) for d in diagnostics for s in d.status
               if s.name.startswith('distill_node')]
    steps = [int(v['step']) for msg, v in reports if msg == 'training']
    assert steps and steps == sorted(steps) and max(steps) == STEPS, reports
    assert any(msg == 'done' and v['student'].endswith('student') for msg, v in reports), reports
    student = ckpt_io.load(tmp_path / 'out' / 'student')
    assert student.role == 'student' and student.obs_source == 'sensor'


@pytest.mark.parametrize('params, message', [
    ({'config': 'BAD'}, "parameter 'config'"),
    ({'out': None}, "parameter 'out': empty"),
    ({'dataset': '/nowhere'}, "parameter 'dataset': /nowhere is not a dataset"),
    ({'teacher': '/nowhere'}, "parameter 'teacher'"),
])
def test_distill_node_refuses_bad_parameters_at_start(start_node, tmp_path, dataset, params, message):
    if params.get('config') == 'BAD':
        bad = tmp_path / 'bad.yaml'
        bad.write_text('train: {stepz: 3}\n')
        params = {'config': str(bad)}
    merged = {'dataset': str(dataset), 'out': str(tmp_path / 'out'), **params}
    node = start_node('distill_node', {k: v for k, v in merged.items() if v is not None})
    assert node.wait(timeout=60) == 2, node.log()
    assert message in node.log(), node.log()
    assert not (tmp_path / 'out' / 'student').exists()
