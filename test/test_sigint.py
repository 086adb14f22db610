"""Ctrl-C in a terminal running `ros2 launch`: SIGINT reaches every process of the group, and the
launch forwards another to each node. Every node exits 0 with its final work done (the
controller's safe action, the recorder's flush), never a KeyboardInterrupt traceback."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from distill_ros.procs import node_command, ros_arguments

pytest.importorskip('rclpy')


def test_sigint_to_the_process_group_ends_every_node_cleanly(tmp_path):
    from helpers import make_dataset

    dataset = make_dataset(tmp_path / 'dataset', episodes=1)
    (tmp_path / 'long.yaml').write_text('train: {steps: 1000000, eval_every: 1000000}\ndagger: {rounds: 0}\n'
                                        'student: {sizes: {hidden: [16]}}\neval: {episodes: 0}\n')
    nodes = {
        'sim_node': {'task': 'cartpole', 'mode': 'realtime', 'realtime_factor': 2.0},
        'teacher_node': {'task': 'cartpole'},
        'recorder_node': {'task': 'cartpole', 'dataset': str(tmp_path / 'ds'), 'bag': str(tmp_path / 'bag')},
        'student_controller_node': {'checkpoint': 'cartpole', 'auto_activate': True, 'sensor_check_timeout': 30.0,
                                    'control_rate_hz': 25.0, 'publish_joint_commands': True},
        'distill_node': {'dataset': str(dataset), 'out': str(tmp_path / 'distill'),
                         'config': str(tmp_path / 'long.yaml')},
    }
    procs, logs, group = {}, {}, 0
    try:
        for name, params in nodes.items():
            logs[name] = tmp_path / f'{name}.log'
            with open(logs[name], 'w') as log:
                procs[name] = subprocess.Popen(node_command(name) + ros_arguments(params), stdout=log,
                                               stderr=subprocess.STDOUT, process_group=group)
            group = group or procs[name].pid
        ready = {'sim_node': 'realtime mode', 'teacher_node': 'on task cartpole', 'recorder_node': 'recording task',
                 'student_controller_node': 'active: commanding', 'distill_node': 'distilling'}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all(ready[n] in logs[n].read_text() for n in nodes):
            assert all(p.poll() is None for p in procs.values()), {n: logs[n].read_text() for n in nodes}
            time.sleep(0.2)
        assert all(ready[n] in logs[n].read_text() for n in nodes), {n: logs[n].read_text()[-2000:] for n in nodes}
        time.sleep(1.0)  # everything busy: commands flowing, the recorder writing, the student training
        os.killpg(group, signal.SIGINT)   # the terminal's Ctrl-C
        time.sleep(0.05)
        os.killpg(group, signal.SIGINT)   # ros2 launch forwarding it
        status = {}
        for name, proc in procs.items():
            try:
                status[name] = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                status[name] = 'still running 30 s after SIGINT'
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = {name: logs[name].read_text() for name in nodes}
    for name in nodes:
        assert status[name] == 0, (name, status[name], output[name][-3000:])
        assert 'Traceback' not in output[name] and 'KeyboardInterrupt' not in output[name], (name, output[name])
        assert 'context is invalid' not in output[name], (name, output[name])
    assert 'SIGINT: sending the safe action and exiting' in output['student_controller_node']
    assert 'recorded ' in output['recorder_node'], output['recorder_node']
    assert (tmp_path / 'bag' / 'metadata.yaml').is_file(), 'the recorder closed its bag'
