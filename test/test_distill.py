"""Distillation: the losses against independent references, the history windows training and
deployment share, the trainer (early stopping, resume, DDP), DAgger's mixing and aggregation,
progressive stages, and a distilled cartpole student against a random policy."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import distributions as D

from distill_ros.data.dataset import DatasetWriter, load_dataset
from distill_ros.data.sampler import HistorySampler
from distill_ros.distill.config import ConfigError, load_config, parse_config
from distill_ros.distill.dagger import collect_episodes, collect_teacher_dataset, dataset_spec, run_dagger
from distill_ros.distill.evaluate import eval_seeds, evaluate_checkpoint, run_episodes, summarize
from distill_ros.distill.labels import teacher_labels
from distill_ros.distill.losses import bc_loss, feature_loss, gaussian_kl, logit_loss
from distill_ros.distill.runner import run_distill
from distill_ros.distill.trainer import concat_datasets, train_student
from distill_ros.observation import HistoryBuffer
from distill_ros.paths import config_path
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.actor import Actor
from distill_ros.policies.students import is_recurrent
from distill_ros.sim import DistillEnv
from distill_ros.students import shipped_student
from distill_ros.teachers import shipped_teacher

TINY = {'train': {'steps': 60, 'eval_every': 20, 'batch_size': 64, 'patience': 100},
        'student': {'sizes': {'hidden': [16, 16]}}, 'dagger': {'rounds': 0}, 'eval': {'episodes': 0}}


def tiny(**sections) -> dict:
    cfg = {k: dict(v) for k, v in TINY.items()}
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    return cfg


@pytest.fixture(scope='module')
def teacher():
    return ckpt_io.load(shipped_teacher('cartpole'))


@pytest.fixture(scope='module')
def data(tmp_path_factory, teacher):
    return collect_teacher_dataset('cartpole', teacher, tmp_path_factory.mktemp('data') / 'd', episodes=4,
                                   progress=False)


# ---------------------------------------------------------------- losses

def test_gaussian_kl_matches_torch_distributions_both_directions():
    g = torch.Generator().manual_seed(0)
    mp, mq = torch.randn(32, 3, generator=g), torch.randn(32, 3, generator=g)
    sp, sq = torch.rand(32, 3, generator=g) + 0.1, torch.rand(32, 3, generator=g) + 0.1
    p, q = D.Independent(D.Normal(mp, sp), 1), D.Independent(D.Normal(mq, sq), 1)
    torch.testing.assert_close(gaussian_kl(mp, sp, mq, sq), D.kl_divergence(p, q).mean())
    # forward = KL(teacher || student), reverse = KL(student || teacher)
    torch.testing.assert_close(logit_loss(mq, sq, mp, sp, 'forward'), D.kl_divergence(p, q).mean())
    torch.testing.assert_close(logit_loss(mq, sq, mp, sp, 'reverse'), D.kl_divergence(q, p).mean())
    assert float(gaussian_kl(mp, sp, mp, sp)) == pytest.approx(0.0, abs=1e-7)
    assert float(gaussian_kl(mp, sp, mq, sq)) > 0.1


def test_bc_and_feature_losses():
    a, b = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 2.0], [0.0, 3.0]])
    assert float(bc_loss(a, b, 'mse')) == pytest.approx((1.0 + 9.0) / 2)      # summed over actions, mean over batch
    assert float(bc_loss(a, b, 'huber')) == pytest.approx((0.5 + 2.5) / 2)    # delta 1: 0.5 x^2 inside, |x|-0.5 out
    assert float(bc_loss(a, a, 'huber')) == 0.0
    assert float(feature_loss(a, b)) == pytest.approx(10.0 / 4)
    with pytest.raises(ValueError, match="unknown behavioural cloning loss 'l1'"):
        bc_loss(a, b, 'l1')


# ---------------------------------------------------------------- config

def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r'unknown key train\.stepz'):
        parse_config({'train': {'stepz': 3}})
    with pytest.raises(ConfigError, match=r"losses\.kl\.direction is 'sideways'"):
        parse_config({'losses': {'kl': {'direction': 'sideways'}}})
    with pytest.raises(ConfigError, match=r'student\.history is 0'):
        parse_config({'student': {'history': 0}})
    with pytest.raises(ConfigError, match=r'progressive\.stages\[0\]\.type'):
        parse_config({'progressive': {'stages': [{'type': 'transformer'}]}})
    with pytest.raises(ConfigError, match=r'train\.batch_size: expected int'):
        parse_config({'train': {'batch_size': 'many'}})
    bad = tmp_path / 'bad.yaml'
    bad.write_text('train: [1, 2\n')
    with pytest.raises(ConfigError, match='not valid YAML'):
        load_config(bad)
    shipped = sorted((Path(__file__).resolve().parent.parent / 'config' / 'distill').glob('*.yaml'))
    assert {p.stem for p in shipped} >= {'default', 'bc', 'progressive', 'hopper', 'ant'}
    for path in shipped:
        load_config(path)


# ---------------------------------------------------------------- windows

def windows(data, history: int, past_actions: bool) -> torch.Tensor:
    """The window the trainer feeds a student at every sample of `data`."""
    return HistorySampler(data, history, past_actions).windows(torch.arange(len(data))).inputs


def test_training_windows_equal_the_runtime_history_buffer(data):
    """What the trainer feeds the student for sample i is exactly what HistoryBuffer gives at run time."""
    for history, past_actions in ((1, False), (5, True), (8, False)):
        trained = windows(data, history, past_actions)
        a = len(data.spec.action_names)
        for ep in range(2):
            episode = data.episode(ep)
            start = int(data.episode_starts[ep])
            buffer = HistoryBuffer(history, data.spec.sensor.size, a if past_actions else 0)
            for t in range(40):
                window = buffer.push(episode['sensor_obs'][t])
                buffer.set_action(episode['action'][t])
                np.testing.assert_allclose(trained[start + t].numpy(), window, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- trainer

def test_labels_are_the_teachers_distribution(data, teacher):
    labels = teacher_labels(teacher, data, 'latent')
    np.testing.assert_allclose(labels['mean'].numpy(), data.arrays['teacher_mean'], rtol=1e-5, atol=1e-5)
    assert labels['feature'].shape == (len(data), 512)
    with pytest.raises(ValueError, match="no feature 'hidden9'"):
        teacher_labels(teacher, data, 'hidden9')


def test_trainer_fits_and_resume_continues_exactly(tmp_path, data, teacher):
    cfg = parse_config(tiny(train={'steps': 40, 'eval_every': 20}))
    first = train_student(data, teacher, cfg, tmp_path / 'a', progress=False)
    curve = [json.loads(line) for line in (tmp_path / 'a' / 'learning_curve.jsonl').read_text().splitlines()]
    assert [r['step'] for r in curve] == [20, 40]
    assert set(curve[0]['losses']) == {'bc', 'kl', 'feature'}
    assert first.metrics['steps'] == 40 and first.role == 'student' and first.history == 8
    assert (tmp_path / 'a' / 'tensorboard').is_dir()
    # one run of 80 steps == 40 steps, then --resume to 80 (optimizer, generator and projection restored)
    cfg80 = parse_config(tiny(train={'steps': 80, 'eval_every': 20}))
    straight = train_student(data, teacher, cfg80, tmp_path / 'b', progress=False)
    resumed = train_student(data, teacher, cfg80, tmp_path / 'a', resume=True, progress=False)
    for k, v in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=1e-6)
    loaded = ckpt_io.load(tmp_path / 'a' / 'runs' / 'offline' / 'best')
    assert loaded.history == 8 and loaded.past_actions
    # continuing from a student trains a copy: the student passed in keeps its weights
    before = {k: v.clone() for k, v in first.model.state_dict().items()}
    continued = train_student(data, teacher, cfg, tmp_path / 'c', run='more', init=first, steps=20, progress=False)
    assert continued.model is not first.model
    for k, v in first.model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert any(not torch.equal(continued.model.state_dict()[k], before[k]) for k in before)


def test_cosine_learning_rate_schedule(tmp_path, data, teacher):
    """train.lr_schedule: cosine falls to lr * lr_final_ratio over the stage; with a ratio of 1 it is
    the constant rate, step for step; an unknown schedule is refused naming the key."""
    def run(name, **train):
        cfg = parse_config(tiny(train={'steps': 40, 'eval_every': 20, **train}))
        return train_student(data, teacher, cfg, tmp_path / name, progress=False).model.state_dict()
    constant, cosine = run('a'), run('c', lr_schedule='cosine')
    flat = run('b', lr_schedule='cosine', lr_final_ratio=1.0)
    for k, v in constant.items():
        torch.testing.assert_close(flat[k], v, rtol=0, atol=1e-7)
    assert any(not torch.allclose(cosine[k], v) for k, v in constant.items())
    with pytest.raises(ConfigError, match="train.lr_schedule is 'linear'"):
        parse_config(tiny(train={'lr_schedule': 'linear'}))


def test_estimator_head_regresses_the_privileged_state_and_resumes(tmp_path, data, teacher):
    """losses.estimator: the student's latent also predicts the (standardized) privileged state
    through a head that training drops; its weights travel with --resume."""
    cfg = parse_config(tiny(train={'steps': 40, 'eval_every': 20}, losses={'estimator': {'weight': 1.0}}))
    train_student(data, teacher, cfg, tmp_path / 'a', progress=False)
    curve = [json.loads(line) for line in (tmp_path / 'a' / 'learning_curve.jsonl').read_text().splitlines()]
    assert 'estimator' in curve[0]['losses'] and curve[-1]['losses']['estimator'] < curve[0]['losses']['estimator']
    state = load_file(str(tmp_path / 'a' / 'runs' / 'offline' / 'trainer_state.safetensors'))
    assert {'estimator.weight', 'estimator.bias'} <= set(state)
    assert 'estimator.weight' not in ckpt_io.load(tmp_path / 'a' / 'runs' / 'offline' / 'best').model.state_dict()
    cfg80 = parse_config(tiny(train={'steps': 80, 'eval_every': 20}, losses={'estimator': {'weight': 1.0}}))
    straight = train_student(data, teacher, cfg80, tmp_path / 'b', progress=False)
    resumed = train_student(data, teacher, cfg80, tmp_path / 'a', resume=True, progress=False)
    for k, v in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=1e-6)


def test_bc_regresses_the_teachers_mean_clipped_to_the_action_limits(tmp_path, data, teacher):
    """losses.bc.clip_labels: a teacher mean beyond a limit executes as the limit, so BC fits the
    clipped mean; without it the student learns the unclipped one."""
    import copy
    loud = copy.copy(teacher)   # the teacher's actions scaled up, limits at +-0.5
    loud.model = copy.deepcopy(teacher.model)
    with torch.no_grad():
        scale = 2.0 / loud.model(torch.as_tensor(data.arrays['privileged_obs'], dtype=torch.float32)).abs().mean()
        loud.model.head.weight.mul_(scale)
        loud.model.head.bias.mul_(scale)
    loud.action_low, loud.action_high = np.array([-0.5]), np.array([0.5])
    inputs = windows(data, 8, True)
    means = {}
    for clip in (True, False):
        losses = {'bc': {'clip_labels': clip}, 'kl': {'weight': 0.0}, 'feature': {'weight': 0.0}}
        cfg = parse_config(tiny(train={'steps': 300, 'eval_every': 100, 'lr': 3e-3}, losses=losses))
        student = train_student(data, loud, cfg, tmp_path / str(clip), progress=False)
        with torch.no_grad():
            means[clip] = student.model(inputs).abs().max().item()
    assert means[True] < 0.75 and means[False] > 1.5, means


def test_early_stopping_on_validation(tmp_path, data, teacher):
    cfg = parse_config(tiny(train={'steps': 2000, 'eval_every': 5, 'patience': 2, 'lr': 1.0}))
    student = train_student(data, teacher, cfg, tmp_path, progress=False)   # lr 1.0 diverges: stops early
    assert student.metrics['early_stopped'] and student.metrics['steps'] < 2000


def test_torchrun_two_processes_match_one(tmp_path, data, teacher):
    """The same job under torchrun (2 CPU processes, gloo, DDP) ends where the 1-process run ends."""
    cfg = tmp_path / 'cfg.yaml'
    cfg.write_text(json.dumps(tiny(train={'steps': 30, 'eval_every': 10, 'batch_size': 64})))
    script = Path(sys.executable).parent / 'distill-ros'
    common = ['distill', '--dataset', str(data.folder), '--teacher', str(teacher.path), '--config', str(cfg),
              '--no-progress']
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    one = subprocess.run([str(script), *common, '--out', str(tmp_path / 'one')], capture_output=True, text=True,
                         timeout=300, env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                          str(script), *common, '--out', str(tmp_path / 'two')], capture_output=True, text=True,
                         timeout=300, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(str(tmp_path / 'one' / 'student' / 'model.safetensors'))
    b = load_file(str(tmp_path / 'two' / 'student' / 'model.safetensors'))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    curve = [json.loads(line) for line in (tmp_path / 'two' / 'learning_curve.jsonl').read_text().splitlines()]
    assert len(curve) == 3                                  # only rank 0 writes
    assert curve[-1]['val_loss'] < curve[0]['val_loss']     # and it did train


# ---------------------------------------------------------------- recurrent students

RECURRENT = {'sizes': {'hidden_size': 16, 'hidden': [16]}}
TBPTT = {'sequence_length': 8, 'burn_in': 4}


@pytest.mark.parametrize('cell', ['gru', 'lstm'])
def test_recurrent_student_runs_as_it_was_trained(tmp_path, data, teacher, cell):
    """Trained on TBPTT sequences, it is deployed tick by tick with its state carried from the
    episode's start: both give the same actions over a whole episode."""
    cfg = parse_config(tiny(student={'type': cell, **RECURRENT}, train={'steps': 40, 'eval_every': 20, **TBPTT}))
    assert cfg.student.history == 1
    train_student(data, teacher, cfg, tmp_path, progress=False)
    student = ckpt_io.load(tmp_path / 'runs' / 'offline' / 'best')
    assert is_recurrent(student.model) and student.history == 1 and student.past_actions
    assert student.metrics['steps'] == 40
    steps = HistorySampler(data, 1, past_actions=True).steps
    start, episode = int(data.episode_starts[1]), data.episode(1)
    length = len(episode['action'])
    with torch.no_grad():
        sequence, _, _ = student.model.forward_sequence(steps[start:start + length][None])
    actor = Actor(student)
    for t in range(length):
        mean = actor.act(episode['sensor_obs'][t][None])[0]
        actor.executed([0], episode['action'][t][None])
        np.testing.assert_allclose(mean, sequence[0, t].numpy(), atol=1e-5, err_msg=f'step {t}')
    # the state is the memory: without a reset the first step of the episode comes out otherwise
    first = actor.act(episode['sensor_obs'][0][None])[0]
    assert not np.allclose(first, sequence[0, 0].numpy(), atol=1e-5)
    actor.reset()
    np.testing.assert_allclose(actor.act(episode['sensor_obs'][0][None])[0], sequence[0, 0].numpy(), atol=1e-5)
    # as the teacher of a later stage it labels whole episodes the same way
    labels = teacher_labels(student, data, 'memory')
    np.testing.assert_allclose(labels['mean'][start:start + length].numpy(), sequence[0].numpy(), atol=1e-5)
    assert labels['feature'].shape == (len(data), 16)


def test_recurrent_student_resumes_exactly_and_refuses_a_window(tmp_path, data, teacher):
    cfg = parse_config(tiny(student={'type': 'gru', **RECURRENT}, train={'steps': 40, 'eval_every': 20, **TBPTT}))
    straight = train_student(data, teacher, cfg, tmp_path / 'b', progress=False)
    short = parse_config(tiny(student={'type': 'gru', **RECURRENT}, train={'steps': 20, 'eval_every': 20, **TBPTT}))
    train_student(data, teacher, short, tmp_path / 'a', progress=False)
    resumed = train_student(data, teacher, cfg, tmp_path / 'a', resume=True, progress=False)
    for k, v in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match=r'student.history is 8; expected 1 for a recurrent student'):
        parse_config({'student': {'type': 'lstm', 'history': 8}})
    with pytest.raises(ConfigError, match=r'train.sequence_length is 0; expected >= 1'):
        parse_config({'train': {'sequence_length': 0}})


def test_dagger_with_a_recurrent_student_acting_on_its_own_state(tmp_path, data, teacher):
    """beta falls to 0 after the first round (as rsl_rl's distillation): the recurrent student then
    executes every step, its state carried through each episode."""
    cfg = parse_config(tiny(student={'type': 'gru', **RECURRENT}, train=TBPTT,
                            dagger={'rounds': 2, 'episodes_per_round': 2, 'envs': 2, 'steps_per_round': 10,
                                    'beta': 0.5, 'beta_decay': 0.0, 'max_episode_steps': 80}))
    summary = run_distill(data, teacher, cfg, tmp_path, progress=False, log=lambda s: None)
    first, second = summary['dagger']
    assert first['beta'] == 0.5 and first['student_steps'] > 0 and first['teacher_steps'] > 0
    assert second['beta'] == 0.0 and second['teacher_steps'] == 0 and second['student_steps'] == second['samples']
    # what the student executed in round 2 is its own action, memory included
    round1 = ckpt_io.load(tmp_path / 'runs' / 'dagger1' / 'best')
    recorded = load_dataset(tmp_path / 'dagger' / 'round2')
    for i in range(len(recorded.episode_starts)):
        episode, actor = recorded.episode(i), Actor(round1)
        for t in range(len(episode['action'])):
            expected = np.clip(actor.act(episode['sensor_obs'][t][None])[0], round1.action_low, round1.action_high)
            actor.executed([0], episode['action'][t][None])
            np.testing.assert_allclose(episode['action'][t], expected, atol=1e-5, err_msg=f'episode {i} step {t}')


# ---------------------------------------------------------------- DAgger

def test_dagger_mixes_as_specified_and_labels_every_state(tmp_path, data, teacher):
    student = train_student(data, teacher, parse_config(tiny()), tmp_path / 's', progress=False)
    spec = dataset_spec('cartpole')
    for beta in (0.0, 1.0, 0.5):
        writer = DatasetWriter(tmp_path / f'beta{beta}', spec)
        stats = collect_episodes('cartpole', teacher, [10, 11], writer, student=student, beta=beta, envs=2,
                                 max_episode_steps=100, progress=False)
        total = stats.teacher_steps + stats.student_steps
        assert total == stats.samples
        if beta == 0.0:
            assert stats.teacher_steps == 0
        elif beta == 1.0:
            assert stats.student_steps == 0
        else:  # binomial(total, 0.5): 5 sigma bounds
            assert abs(stats.teacher_steps - total / 2) < 2.5 * np.sqrt(total)
        recorded = load_dataset(tmp_path / f'beta{beta}')
        # the teacher labels every visited state, whoever acted
        with torch.no_grad():
            expected = teacher.model(torch.as_tensor(recorded.arrays['privileged_obs'], dtype=torch.float32)).numpy()
        np.testing.assert_allclose(recorded.arrays['teacher_mean'], expected, rtol=1e-5, atol=1e-5)
        acted_by_teacher = np.isclose(recorded.arrays['action'], recorded.arrays['teacher_action']).all(axis=1)
        if beta == 1.0:
            assert acted_by_teacher.all()
        if beta == 0.0:
            assert not acted_by_teacher.all()


def test_dagger_aggregates_rounds_and_decays_beta(tmp_path, data, teacher):
    cfg = parse_config(tiny(dagger={'rounds': 2, 'episodes_per_round': 2, 'envs': 2, 'steps_per_round': 20,
                                    'beta': 0.6, 'beta_decay': 0.5, 'max_episode_steps': 60}))
    student = train_student(data, teacher, cfg, tmp_path, progress=False)
    seen = []

    def retrain(aggregate, init, k):
        seen.append(len(aggregate))
        return train_student(aggregate, teacher, cfg, tmp_path, run=f'dagger{k}', init=init, steps=20, progress=False)
    final, rounds = run_dagger('cartpole', teacher, student, data, cfg, tmp_path, retrain, progress=False,
                               log=lambda s: None)
    assert [r.beta for r in rounds] == [pytest.approx(0.6), pytest.approx(0.3)]
    round1 = len(load_dataset(tmp_path / 'dagger' / 'round1'))
    round2 = len(load_dataset(tmp_path / 'dagger' / 'round2'))
    assert seen == [len(data) + round1, len(data) + round1 + round2]   # data aggregates across rounds
    assert final.metrics['steps'] == 20


def test_dagger_keeps_the_student_that_scored_best_acting_alone(tmp_path, data, teacher):
    cfg = parse_config(tiny(dagger={'rounds': 2, 'episodes_per_round': 2, 'envs': 2, 'steps_per_round': 20,
                                    'beta': 0.0, 'max_episode_steps': 60, 'keep': 'best'}))
    student = train_student(data, teacher, cfg, tmp_path, progress=False)
    logs = []

    def retrain(aggregate, init, k):
        return train_student(aggregate, teacher, cfg, tmp_path, run=f'dagger{k}', init=init, steps=20, progress=False)
    kept, rounds = run_dagger('cartpole', teacher, student, data, cfg, tmp_path, retrain, progress=False,
                              log=logs.append)
    # three students scored on their own episodes: offline (round 1), dagger1 (round 2), dagger2 (final)
    assert [r.round for r in rounds] == [1, 2, 3]
    assert (tmp_path / 'dagger' / 'final_after_round2' / 'manifest.json').is_file()
    returns = [r.collect_return for r in rounds]
    best = int(np.argmax(returns))
    assert kept.path == [tmp_path / 'runs' / 'offline' / 'best', tmp_path / 'runs' / 'dagger1' / 'best',
                         tmp_path / 'runs' / 'dagger2' / 'best'][best]
    assert ('the offline student' if best == 0 else f'the student trained after round {best}') in logs[-1]
    # The same job extended to 3 rounds: rounds 1-2 are not collected again, and the last student
    # (after round 3) is scored on episodes of its own, not on the 2-round job's final ones.
    cfg.dagger.rounds = 3
    _, more = run_dagger('cartpole', teacher, student, data, cfg, tmp_path, retrain, progress=False,
                         log=logs.append)
    assert [r.round for r in more] == [1, 2, 3, 4] and [r.episodes for r in more[:2]] == [0, 0]
    assert more[3].episodes == 2 and (tmp_path / 'dagger' / 'final_after_round3' / 'manifest.json').is_file()
    with pytest.raises(ConfigError, match="dagger.keep is 'first'"):
        parse_config({'dagger': {'keep': 'first'}})


# ---------------------------------------------------------------- the whole job

def test_progressive_stages_each_distil_from_the_previous(tmp_path, data, teacher):
    cfg = parse_config(tiny(progressive={'stages': [{'sizes': {'hidden': [64, 64]}}, {'sizes': {'hidden': [32, 32]}}]},
                            eval={'episodes': 2}))
    summary = run_distill(data, teacher, cfg, tmp_path, progress=False, log=lambda s: None)
    stages = summary['stages']
    assert [s['run'] for s in stages] == ['stage1', 'stage2', 'stage3']
    assert stages[0]['params'] > stages[1]['params'] > stages[2]['params']
    second = ckpt_io.load(tmp_path / 'runs' / 'stage2' / 'best')
    assert second.provenance['teacher'] == str(tmp_path / 'runs' / 'stage1' / 'best')
    assert set(summary['eval']) >= {'teacher', 'stage1', 'stage2', 'stage3'}
    assert (tmp_path / 'student' / 'policy.json').is_file()


def test_distilled_cartpole_student_beats_random_by_far(tmp_path, data, teacher):
    cfg = parse_config(tiny(train={'steps': 600, 'eval_every': 200}, student={'sizes': {'hidden': [32, 32]}},
                            dagger={'rounds': 1, 'episodes_per_round': 4, 'steps_per_round': 400}))
    summary = run_distill(data, teacher, cfg, tmp_path, progress=False, log=lambda s: None)
    student = ckpt_io.load(summary['student'])
    env = DistillEnv('cartpole')
    seeds = eval_seeds(5)
    learned = summarize(evaluate_checkpoint(student, env, seeds))['mean_return']
    rng = np.random.default_rng(0)
    random = summarize(run_episodes(env, lambda obs: rng.uniform(-3, 3, size=1), seeds))['mean_return']
    assert random < 30
    assert learned > 5 * random and learned > 100, (learned, random)


@pytest.mark.parametrize('task', ['cartpole', 'hopper', 'ant', 'quadruped'])
def test_shipped_student_is_a_small_sensor_only_checkpoint(task):
    student = ckpt_io.load(shipped_student(task))
    teacher = ckpt_io.load(shipped_teacher(task))
    env = DistillEnv(task)
    student.check_task(env.sensor_spec, env.action_names)
    assert student.obs_source == 'sensor' and student.role == 'student'
    n_student = sum(p.numel() for p in student.model.parameters())
    n_teacher = sum(p.numel() for p in teacher.model.parameters())
    assert n_teacher >= 10 * n_student
    assert student.provenance['git_revision'] and 'config' in student.provenance
    if task == 'hopper':   # the recipe of config/distill/hopper.yaml (a TCN over 64 steps), with how to redo it
        recipe = load_config(config_path('distill', 'hopper.yaml'))
        assert student.provenance['config']['student']['type'] == recipe.student.type == 'tcn'
        assert student.history == recipe.student.history >= 50 and not is_recurrent(student.model)
        assert student.obs_spec.names[-1] == 'sample_age'   # it knows how old its sensors are (the task's)
        assert student.provenance['config']['dagger']['rounds'] == recipe.dagger.rounds
        assert any('config/distill/hopper.yaml' in line for line in student.provenance['reproduce'])
        # then RL fine-tuning with config/finetune/hopper.yaml
        from distill_ros.distill.finetune import load_finetune_config, parse_finetune_config
        # (read through the parser, so keys added since with their defaults compare equal)
        assert parse_finetune_config(student.provenance['finetune_config']).to_dict() == load_finetune_config(
            config_path('finetune', 'hopper.yaml')).to_dict()
        assert any('config/finetune/hopper.yaml' in line for line in student.provenance['reproduce'])
    if task == 'quadruped':   # the recipe of config/distill/quadruped.yaml (hopper's, a smaller latent)
        recipe = load_config(config_path('distill', 'quadruped.yaml'))
        assert student.provenance['config']['student'] == recipe.to_dict()['student']
        assert student.provenance['config']['dagger']['rounds'] == recipe.dagger.rounds
        assert any('config/distill/quadruped.yaml' in line for line in student.provenance['reproduce'])
    if task == 'ant':      # the recipe of config/distill/ant.yaml
        recipe = load_config(config_path('distill', 'ant.yaml'))
        assert student.provenance['config']['student']['type'] == recipe.student.type
        assert student.history == recipe.student.history and student.provenance['config']['dagger']['rounds'] == 8
        assert any('config/distill/ant.yaml' in line for line in student.provenance['reproduce'])


def test_a_student_is_named_by_folder_or_shipped_name(tmp_path, monkeypatch):
    """`eval --student best=hopper` and the controller's `checkpoint:=hopper` take a shipped student by name."""
    from distill_ros.policies.checkpoint import CheckpointError
    from distill_ros.students import student_path
    monkeypatch.chdir(tmp_path)
    assert student_path('hopper') == shipped_student('hopper')
    (tmp_path / 'hopper').mkdir()                      # a folder of that name here wins
    assert student_path('hopper') == Path('hopper')
    with pytest.raises(CheckpointError, match="'nosuch' is not a folder here, nor the name of a shipped student"):
        student_path('nosuch')


def test_distill_command_refuses_bad_input(tmp_path, data, teacher, capsys):
    from distill_ros.cli import main
    bad = tmp_path / 'bad.yaml'
    bad.write_text('losses: {kl: {direction: sideways}}\n')
    with pytest.raises(SystemExit) as exit_info:
        main(['distill', '--dataset', str(data.folder), '--teacher', str(teacher.path), '--config', str(bad),
              '--out', str(tmp_path / 'o')])
    assert exit_info.value.code == 2
    assert "losses.kl.direction is 'sideways'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(['distill', '--dataset', str(tmp_path / 'nowhere'), '--teacher', str(teacher.path),
              '--out', str(tmp_path / 'o')])
    assert exit_info.value.code == 2
    assert 'manifest.json is missing' in capsys.readouterr().err
    hopper = ckpt_io.load(shipped_teacher('hopper'))
    with pytest.raises(ValueError, match="trained on task 'hopper'"):
        run_distill(data, hopper, parse_config(tiny()), tmp_path / 'h', progress=False)


def test_aggregating_datasets_of_other_layouts_is_refused(tmp_path, data, teacher):
    other = collect_teacher_dataset('hopper', ckpt_io.load(shipped_teacher('hopper')), tmp_path / 'h', episodes=1,
                                    progress=False)
    with pytest.raises(ValueError, match='another layout'):
        concat_datasets([data, other])
