"""`distill-ros demo`, the README's main command, end to end with tiny numbers: every stage runs
over real node processes, and the report has the teacher, the naive student and the distilled
students."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml

from distill_ros.paths import config_path
from distill_ros.teachers import shipped_teacher

pytest.importorskip('rclpy')


def test_demo_smoke(tmp_path):
    # cartpole with 40-step episodes: the real-time deploy stage takes seconds, not 40 s an episode
    task = yaml.safe_load(config_path('tasks', 'cartpole.yaml').read_text())
    task['env'].update(max_episode_steps=40, best_return=40)
    task_file = tmp_path / 'cartpole_short.yaml'
    task_file.write_text(yaml.safe_dump(task))
    out = tmp_path / 'demo'
    started = time.monotonic()
    demo = subprocess.run(
        [sys.executable, '-m', 'distill_ros.cli', 'demo', '--task', str(task_file),
         '--teacher', str(shipped_teacher('cartpole')), '--out', str(out), '--episodes', '2',
         '--dagger-episodes', '1', '--deploy-episodes', '1', '--eval-episodes', '2', '--steps', '20'],
        capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
    report = out / 'report' / 'report.md'
    assert str(report) in demo.stdout.replace('\n', '')
    rows = {row['name']: row for row in json.loads((out / 'report' / 'eval.json').read_text())['rows']}
    assert list(rows) == ['teacher', 'naive student (BC, current reading only)', 'student (BC+KL+feature)',
                          'student (+1 DAgger round)']
    naive, offline = rows['naive student (BC, current reading only)'], rows['student (BC+KL+feature)']
    assert naive['history'] == 1 and offline['history'] > 1 and naive['params'] < offline['params']
    assert rows['teacher']['mean_return'] == pytest.approx(40.0)  # the shipped teacher on the short task
    text = report.read_text()
    assert 'naive student' in text and 'The final student drove sim_node (real-time mode)' in text
    # every stage's graph ended by itself, each node's log in OUT/logs
    for graph, nodes in {'data': ('sim_node', 'teacher_node', 'recorder_node'),
                         'dagger_round1': ('sim_node', 'teacher_node', 'recorder_node', 'student_controller_node'),
                         'deploy': ('sim_node', 'recorder_node', 'student_controller_node')}.items():
        for node in nodes:
            assert (out / 'logs' / f'{graph}_{node}.log').is_file(), (graph, node)
    assert time.monotonic() - started < 240
