"""A tiny real PPO run through the teacher-training path: checkpoints, curve, resume."""
from __future__ import annotations

import json

import pytest
import yaml

from distill_ros.paths import config_path
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.sim import DistillEnv
from distill_ros.teachers.train import TeacherConfig, load_teacher_config, train_teacher


def test_tiny_training_writes_loadable_checkpoints_and_resumes(tmp_path):
    cfg = TeacherConfig(total_steps=256, n_envs=2, hidden=[16, 16], value_hidden=[16], n_steps=64, batch_size=64,
                        n_epochs=1, eval_every=128, eval_episodes=2, lr_schedule='linear', target_kl=0.05)
    out = tmp_path / 'teacher'
    ckpt = train_teacher('cartpole', out, cfg, seed=1, progress=False)
    for name in ('best', 'last'):
        loaded = ckpt_io.load(out / name)
        assert loaded.obs_source == 'privileged' and loaded.model.hidden == [16, 16]
    assert ckpt.metrics['eval']['episodes'] == 2
    assert ckpt.provenance['task'] == 'cartpole' and ckpt.provenance['training_steps'] >= 256
    curve = [json.loads(line) for line in (out / 'learning_curve.jsonl').read_text().splitlines()]
    assert len(curve) >= 2 and curve[-1]['steps'] >= 256
    resumed = train_teacher('cartpole', out, TeacherConfig(**{**cfg.__dict__, 'total_steps': 512}), seed=1,
                            resume=True, progress=False)
    assert ckpt_io.load(out / 'last').provenance['training_steps'] >= 512
    assert resumed.path is not None


def test_teacher_input_includes_the_sensor_fields_the_task_adds(tmp_path):
    data = yaml.safe_load(config_path('tasks', 'cartpole.yaml').read_text())
    data['privileged']['sensor_fields'] = ['imu_angular_velocity']
    task = tmp_path / 'cartpole_gyro.yaml'
    task.write_text(yaml.safe_dump(data))
    cfg = TeacherConfig(total_steps=128, n_envs=1, hidden=[8], value_hidden=[8], n_steps=64, batch_size=64,
                        n_epochs=1, eval_every=128, eval_episodes=1)
    ckpt = train_teacher(str(task), tmp_path / 'teacher', cfg, seed=0, progress=False)
    assert ckpt.obs_spec.names == ['qpos', 'qvel', 'dynamics', 'imu_angular_velocity']
    assert ckpt.model.obs_dim == 7 + 3
    with pytest.raises(ckpt_io.CheckpointError, match='imu_angular_velocity'):
        ckpt.check_task(DistillEnv('cartpole').privileged_spec, ckpt.action_names)


def test_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / 'train.yaml'
    path.write_text('defaults: {total_steps: 10, learning_rat: 0.1}\n')
    with pytest.raises(ValueError, match=r"unknown teacher training keys \['learning_rat'\]"):
        load_teacher_config('cartpole', path)
    path.write_text('defaults: {lr_schedule: cosine}\n')
    with pytest.raises(ValueError, match="lr_schedule is 'cosine'; expected 'constant' or 'linear'"):
        load_teacher_config('cartpole', path)


def test_a_resumed_run_keeps_the_earlier_stages_best(tmp_path):
    """out/best is replaced on resume only by a checkpoint that beats the earlier stages' best."""
    cfg = TeacherConfig(total_steps=128, n_envs=2, hidden=[16, 16], value_hidden=[16], n_steps=64, batch_size=64,
                        n_epochs=1, eval_every=128, eval_episodes=2)
    out = tmp_path / 'teacher'
    train_teacher('cartpole', out, cfg, seed=1, progress=False)
    best = ckpt_io.load(out / 'best')
    best.metrics = {**best.metrics, 'eval': {**best.metrics['eval'], 'mean_return': 1e9}}   # an unbeatable stage 1
    ckpt_io.save(best, out / 'best')
    train_teacher('cartpole', out, TeacherConfig(**{**cfg.__dict__, 'total_steps': 384}), seed=1, resume=True,
                  progress=False)
    assert ckpt_io.load(out / 'last').provenance['training_steps'] >= 384
    assert ckpt_io.load(out / 'best').metrics['eval']['mean_return'] == 1e9


def test_ctrl_c_saves_the_resume_state_and_says_how_to_continue(tmp_path):
    """Ctrl-C during `distill-ros train-teacher`: exit status 130, one line saying where the state is
    and to continue with --resume, no traceback; --resume then continues from it."""
    import os
    import signal
    import subprocess
    import sys
    import time
    config = tmp_path / 'teacher.yaml'
    config.write_text(yaml.safe_dump({'cartpole': {'n_envs': 2, 'hidden': [16, 16], 'value_hidden': [16], 'n_steps': 64,
                                                   'batch_size': 64, 'n_epochs': 1, 'eval_every': 256,
                                                   'eval_episodes': 1, 'total_steps': 10_000_000}}))
    out = tmp_path / 'run'
    command = [sys.executable, '-m', 'distill_ros.cli', 'train-teacher', '--task', 'cartpole', '--config', str(config),
               '--out', str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    deadline = time.monotonic() + 120
    while not (out / 'resume' / 'ppo.zip').is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert 'Traceback' not in err and 'continue with --resume' in err, err
    assert json.loads((out / 'resume' / 'normalization.json').read_text())['obs_count'] > 256
