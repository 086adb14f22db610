"""Student RL fine-tuning (`distill-ros finetune`): PPO from rsl_rl with the student as actor, a
privileged critic and a decaying teacher regularizer; same checkpoint format in and out."""
from __future__ import annotations

import json

import pytest
import torch

from distill_ros.cli import main
from distill_ros.distill.config import ConfigError, parse_config
from distill_ros.distill.dagger import collect_teacher_dataset
from distill_ros.distill.evaluate import eval_seeds, evaluate_checkpoint, summarize
from distill_ros.distill.finetune import (
    StudentActor,
    StudentEnvs,
    finetune,
    load_finetune_config,
    parse_finetune_config,
    teacher_weight,
)
from distill_ros.distill.trainer import train_student
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.students import make_student
from distill_ros.sim import DistillEnv
from distill_ros.teachers import shipped_teacher

QUICK = {'env': {'envs': 8, 'steps_per_env': 64}, 'ppo': {'iterations': 16, 'num_mini_batches': 2},
         'critic': {'warmup_iterations': 2, 'hidden': [64, 64]}, 'train': {'eval_every': 4, 'eval_episodes': 3}}


@pytest.fixture(scope='module')
def teacher():
    return ckpt_io.load(shipped_teacher('cartpole'))


@pytest.fixture(scope='module')
def weak_student(tmp_path_factory, teacher):
    """Deliberately under-trained: 30 optimizer steps on 3 teacher episodes."""
    folder = tmp_path_factory.mktemp('weak')
    data = collect_teacher_dataset('cartpole', teacher, folder / 'data', episodes=3, progress=False, teacher_noise=1.0)
    cfg = parse_config({'student': {'sizes': {'hidden': [32, 32]}}, 'train': {'steps': 30, 'eval_every': 30},
                        'dagger': {'rounds': 0}, 'eval': {'episodes': 0}})
    return train_student(data, teacher, cfg, folder / 'student', progress=False)


def held_out(ckpt) -> float:
    env = DistillEnv('cartpole')
    try:
        return summarize(evaluate_checkpoint(ckpt, env, eval_seeds(5)))['mean_return']
    finally:
        env.close()


def test_finetune_improves_an_under_trained_student(tmp_path, teacher, weak_student):
    before = held_out(weak_student)
    summary = finetune(weak_student, teacher, parse_finetune_config(QUICK), tmp_path, progress=False,
                       log=lambda s: None)
    tuned = ckpt_io.load(tmp_path / 'student')
    # the same kind of checkpoint: same architecture, layouts and normalization (frozen)
    assert tuned.model.config() == weak_student.model.config() and tuned.role == 'student'
    assert tuned.obs_spec == weak_student.obs_spec and tuned.past_actions == weak_student.past_actions
    for name in ('obs_mean', 'obs_var'):
        torch.testing.assert_close(getattr(tuned.model, name), getattr(weak_student.model, name))
    assert tuned.provenance['parent'] == str(weak_student.path) and tuned.metrics['finetune_env_steps'] == 16 * 512
    after = held_out(tuned)
    assert after >= before and after > 1.5 * before, (before, after)
    curve = [json.loads(line) for line in (tmp_path / 'learning_curve.jsonl').read_text().splitlines()]
    assert [r['iteration'] for r in curve] == list(range(1, 17))
    assert curve[0]['warmup'] and not curve[2]['warmup'] and curve[2]['teacher_loss'] is not None
    assert curve[-1]['teacher_weight'] == 0.0 and summary['env_steps'] == 16 * 512
    assert (tmp_path / 'tensorboard' / 'finetune').is_dir()


def test_finetune_resumes_where_it_stopped(tmp_path, teacher, weak_student):
    cfg = parse_finetune_config({**QUICK, 'ppo': {'iterations': 8, 'num_mini_batches': 2}})
    finetune(weak_student, teacher, parse_finetune_config({**QUICK, 'ppo': {'iterations': 4, 'num_mini_batches': 2}}),
             tmp_path, progress=False, log=lambda s: None)
    logs = []
    summary = finetune(weak_student, teacher, cfg, tmp_path, resume=True, progress=False, log=logs.append)
    assert any('resuming fine-tuning at iteration 4' in line for line in logs)
    curve = [json.loads(line) for line in (tmp_path / 'learning_curve.jsonl').read_text().splitlines()]
    assert [r['iteration'] for r in curve] == list(range(1, 9)) and summary['env_steps'] == 8 * 512


def test_kl_regularizer_toward_the_teacher_distribution(tmp_path, teacher, weak_student):
    cfg = parse_finetune_config({**QUICK, 'ppo': {'iterations': 4, 'num_mini_batches': 2},
                                 'critic': {'warmup_iterations': 1, 'hidden': [32]},
                                 'teacher': {'kind': 'kl', 'until': 1.0}})
    finetune(weak_student, teacher, cfg, tmp_path, progress=False, log=lambda s: None)
    curve = [json.loads(line) for line in (tmp_path / 'learning_curve.jsonl').read_text().splitlines()]
    assert curve[0]['teacher_loss'] is None and all(r['teacher_loss'] > 0 for r in curve[1:])
    assert [round(r['teacher_weight'], 2) for r in curve] == [1.0, 0.75, 0.5, 0.25]


@pytest.mark.parametrize('cell', ['gru', 'lstm'])
def test_recurrent_actor_in_rsl_rl_batches_equals_its_rollout(cell):
    """The update recomputes a recurrent student's actions over padded trajectories from the states
    saved at their starts: they equal the actions of the step-by-step rollout."""
    from rsl_rl.utils import split_and_pad_trajectories
    from tensordict import TensorDict
    torch.manual_seed(0)
    student = make_student(cell, 6, 2, 1, hidden_size=8)
    actor = StudentActor(student)
    steps, envs = 12, 3
    x = torch.randn(steps, envs, 6)
    dones = torch.zeros(steps, envs)
    dones[4, 0] = dones[7, 2] = 1
    means, saved = [], []
    with torch.no_grad():
        for t in range(steps):
            saved.append(actor.get_hidden_state() if t else None)
            means.append(actor(TensorDict({'student': x[t]}, batch_size=[envs])))
            actor.reset(dones[t])
    rollout = torch.stack(means)
    padded, masks = split_and_pad_trajectories(TensorDict({'student': x}, batch_size=[steps, envs]), dones[..., None])
    # the state at each trajectory's start: zero at the rollout's start and after each done
    state = torch.zeros(1, masks.shape[1], student.state_size)
    if cell == 'lstm':
        state = (state[..., :8], state[..., 8:])
    with torch.no_grad():
        batch = actor(padded, masks=masks, hidden_state=state)
    torch.testing.assert_close(batch, rollout, rtol=1e-5, atol=1e-5)


def test_teacher_weight_decays_to_zero_and_bad_configs_are_refused(tmp_path):
    cfg = parse_finetune_config({'ppo': {'iterations': 100}, 'teacher': {'weight': 2.0, 'until': 0.5}})
    assert [teacher_weight(cfg, k) for k in (0, 25, 50, 99)] == [2.0, 1.0, 0.0, 0.0]
    assert load_finetune_config().ppo.iterations >= 1   # the shipped default parses
    for bad, message in (({'ppo': {'clip': 0.2}}, 'unknown key ppo.clip'),
                         ({'teacher': {'kind': 'l2'}}, "teacher.kind is 'l2'"),
                         ({'ppo': {'num_mini_batches': 3}}, 'ppo.num_mini_batches is 3; expected a divisor'),
                         ({'critic': {'hidden': []}}, 'critic.hidden is'),
                         ({'ppo': {'gamma': 1.5}}, r'ppo.gamma is 1.5; expected in \(0, 1\]')):
        with pytest.raises(ConfigError, match=message):
            parse_finetune_config(bad)
    config = tmp_path / 'ft.yaml'
    config.write_text('ppo:\n  learning_rate: -1\n')
    with pytest.raises(ConfigError, match=r'ft.yaml: ppo.learning_rate is -1.0; expected > 0'):
        load_finetune_config(config)


def test_finetune_command_refuses_a_bad_config_naming_the_key(tmp_path, weak_student, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['finetune', '--student', str(weak_student.path), '--out', str(tmp_path / 'o'),
              '--set', 'teacher.wieght=1.0'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'unknown key teacher.wieght' in err and 'Traceback' not in err
    assert not (tmp_path / 'o' / 'student').exists()


def test_fall_penalty_lands_on_the_falling_step_only(teacher, weak_student):
    """A fall (termination) costs env.fall_penalty in PPO's reward; the reported return stays the task's."""
    envs = StudentEnvs('cartpole', weak_student, teacher, 2, seed_base=7, fall_penalty=50.0)
    plain = StudentEnvs('cartpole', weak_student, teacher, 2, seed_base=7)
    try:
        falls = 0
        for _ in range(400):                  # a constant push topples the pole within a few dozen steps
            push = torch.full((2, 1), 1.0)
            _, penalised, dones, extras = envs.step(push)
            _, reward, _, _ = plain.step(push)
            fell = dones * (1 - extras['time_outs'].float())
            torch.testing.assert_close(penalised, reward - 50.0 * fell)
            falls += int(fell.sum())
        assert falls > 0
        assert envs.finished == plain.finished   # the returns it reports are the task's own
    finally:
        envs.close()
        plain.close()
