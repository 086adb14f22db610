"""Evaluation rows, FLOPs, the report files, and the eval/report/export commands."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distill_ros.cli import main
from distill_ros.distill.report import count_flops, evaluate_policies, measure_latency, pareto, write_report
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.students import make_student
from distill_ros.sim import DistillEnv
from distill_ros.students import shipped_student
from distill_ros.teachers import shipped_teacher

PNG = b'\x89PNG\r\n\x1a\n'


def random_student(folder, kind='mlp', **sizes):
    env = DistillEnv('cartpole')
    model = make_student(kind, env.sensor_spec.size + 1, 1, 4, **sizes)
    ckpt = ckpt_io.Checkpoint(model=model, obs_source='sensor', obs_spec=env.sensor_spec,
                              action_names=env.action_names, action_low=np.array([-3.0]),
                              action_high=np.array([3.0]), task='cartpole', role='student', past_actions=True)
    ckpt_io.save(ckpt, folder)
    return ckpt_io.load(folder)


def test_flops_match_the_analytic_count(tmp_path):
    mlp = random_student(tmp_path / 'mlp', hidden=[32, 16])
    step = mlp.model.step_dim
    assert count_flops(mlp) == 2 * (4 * step * 32 + 32 * 16 + 16 * 1)      # 2 per multiply-add, per Linear
    gru = random_student(tmp_path / 'gru', 'gru-window', hidden_size=8)
    assert count_flops(gru) >= 4 * 2 * 3 * 8 * (step + 8)                     # the recurrence is counted
    latency = measure_latency(mlp, runs=50)
    assert 0 < latency['p50_us'] <= latency['p99_us']


def test_rows_report_and_plots(tmp_path):
    teacher = ckpt_io.load(shipped_teacher('cartpole'))
    students = {'shipped': ckpt_io.load(shipped_student('cartpole')), 'random': random_student(tmp_path / 'r')}
    rows = evaluate_policies('cartpole', teacher, students, episodes=2, progress=False, latency_runs=50)
    assert [r['name'] for r in rows] == ['teacher', 'shipped', 'random']
    assert rows[0]['ratio'] == 1.0 and rows[0]['privileged_input'] and not rows[1]['privileged_input']
    assert rows[1]['size_ratio'] >= 10 and rows[1]['ratio'] > 0.9        # the shipped student balances
    assert rows[2]['ratio'] < 0.2 and rows[2]['fall_rate'] == 1.0          # a random one falls
    curve = tmp_path / 'learning_curve.jsonl'
    curve.write_text('\n'.join(json.dumps({'run': 'offline', 'step': s, 'train_loss': 1 / s, 'val_loss': 2 / s,
                                           'losses': {}}) for s in (10, 20, 30)))
    path = write_report(rows, tmp_path / 'report', [curve], title='test')
    text = path.read_text()
    assert '| shipped | sensors × 8 |' in text and '| teacher | privileged |' in text
    for name in ('returns.png', 'pareto.png', 'learning_curves.png'):
        assert (tmp_path / 'report' / name).read_bytes()[:8] == PNG
    assert json.loads((tmp_path / 'report' / 'eval.json').read_text())['rows'][1]['name'] == 'shipped'
    assert [r['name'] for r in pareto(rows)] == ['random', 'shipped']


def test_export_command_writes_a_verified_onnx(tmp_path, capsys):
    import onnxruntime as ort
    with pytest.raises(SystemExit) as exit_info:
        main(['export', str(shipped_student('cartpole')), '--onnx', str(tmp_path / 's.onnx')])
    assert exit_info.value.code == 0
    assert 'ONNX matches torch' in capsys.readouterr().out
    student = ckpt_io.load(shipped_student('cartpole'))
    x = torch.randn(3, student.history, student.model.step_dim)
    session = ort.InferenceSession(str(tmp_path / 's.onnx'), providers=['CPUExecutionProvider'])
    with torch.no_grad():
        expected = student.model(x).numpy()
    np.testing.assert_allclose(session.run(None, {'obs': x.numpy()})[0], expected, atol=1e-5)


def test_eval_command_refuses_a_checkpoint_of_another_task(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['eval', '--task', 'hopper', '--teacher', str(shipped_teacher('hopper')),
              '--student', f'wrong={shipped_student("cartpole")}', '--episodes', '1', '--out', str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'on task hopper' in err and 'joint_position' in err
    with pytest.raises(SystemExit) as exit_info:
        main(['eval', '--student', 'no-equals-sign', '--out', str(tmp_path)])
    assert exit_info.value.code == 2
    assert 'expected NAME=CHECKPOINT_FOLDER' in capsys.readouterr().err
