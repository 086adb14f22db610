"""Outside teachers (ONNX, TorchScript, stable-baselines3) converted into the checkpoint format."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.sim import DistillEnv
from distill_ros.teachers.importers import CheckpointError, import_teacher


def outside_policy(inputs: int, outputs: int, activation=nn.ELU) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(inputs, 32), activation(), nn.Linear(32, 16), activation(),
                         nn.Linear(16, outputs)).eval()


@pytest.fixture
def hopper():
    return DistillEnv('hopper')


def permuted_names(env: DistillEnv) -> list[str]:
    return list(reversed(env.privileged_spec.element_names()))


def test_onnx_with_inputs_mapped_by_name(hopper, tmp_path):
    names = permuted_names(hopper)
    policy = outside_policy(len(names), 3)
    path = tmp_path / 'policy.onnx'
    torch.onnx.export(policy, (torch.zeros(1, len(names)),), str(path), input_names=['obs'], dynamo=False)
    ckpt = import_teacher('onnx', path, hopper, names, action_std=0.2)
    obs = np.random.default_rng(1).normal(size=(8, hopper.privileged_spec.size))
    with torch.no_grad():
        expected = policy(torch.as_tensor(obs[:, ::-1].copy(), dtype=torch.float32)).numpy()
    np.testing.assert_allclose(ckpt.model(torch.as_tensor(obs, dtype=torch.float32)).detach().numpy(), expected,
                               atol=1e-5)
    assert ckpt.model.activation == 'elu'
    np.testing.assert_allclose(ckpt.model.log_std.exp().detach().numpy(), 0.2, rtol=1e-6)
    ckpt_io.save(ckpt, tmp_path / 'ckpt')
    ckpt_io.load(tmp_path / 'ckpt').check_task(hopper.privileged_spec, hopper.action_names)


def test_torchscript(hopper, tmp_path):
    size = hopper.privileged_spec.size
    policy = outside_policy(size, 3, nn.Tanh)
    path = tmp_path / 'policy.pt'
    torch.jit.script(policy).save(str(path))
    with pytest.raises(CheckpointError, match='a TorchScript file is a program, and importing it runs its code; '
                                              'pass --trust-code'):
        import_teacher('torchscript', path, hopper)
    ckpt = import_teacher('torchscript', path, hopper, trust_code=True)
    x = torch.randn(4, size)
    torch.testing.assert_close(ckpt.model(x), policy(x), atol=1e-5, rtol=1e-5)


def test_wrong_sizes_and_unknown_names_are_refused(hopper, tmp_path):
    policy = outside_policy(5, 3)
    path = tmp_path / 'small.pt'
    torch.jit.script(policy).save(str(path))
    with pytest.raises(CheckpointError, match='takes 5 inputs but the task.s privileged observation has 21'):
        import_teacher('torchscript', path, hopper, trust_code=True)
    with pytest.raises(CheckpointError, match=r"input names \['base_height'\] are not privileged observation"):
        import_teacher('torchscript', path, hopper, ['qvel/rootx', 'qpos/rootz', 'base_height', 'qvel/rootz',
                                                     'qpos/rooty'], trust_code=True)
    wide = outside_policy(21, 4)
    torch.jit.script(wide).save(str(tmp_path / 'wide.pt'))
    with pytest.raises(CheckpointError, match='outputs 4 actions; task hopper has 3'):
        import_teacher('torchscript', tmp_path / 'wide.pt', hopper, trust_code=True)


def test_sb3_ppo_zip_matches_sb3_prediction(tmp_path):
    from stable_baselines3 import PPO

    from distill_ros.teachers.train import PrivilegedView

    env = PrivilegedView(DistillEnv('cartpole'))
    model = PPO('MlpPolicy', env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device='cpu',
                policy_kwargs=dict(net_arch=dict(pi=[24, 24], vf=[8])))
    model.learn(64)
    model.save(tmp_path / 'ppo.zip')
    out = tmp_path / 'converted'
    subprocess.run([sys.executable, '-m', 'distill_ros.cli', 'import-teacher', 'sb3', str(tmp_path / 'ppo.zip'),
                    '--task', 'cartpole', '--out', str(out)], check=True)
    ckpt = ckpt_io.load(out)
    obs = np.random.default_rng(0).normal(size=(16, 7)).astype(np.float32)
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(ckpt.act(obs), expected, atol=1e-5)
    np.testing.assert_allclose(ckpt.model.log_std.detach().numpy(), model.policy.log_std.detach().numpy(), atol=1e-6)


# ------------------------------------------- rsl_rl / Isaac Lab exports (normalizer inside the graph)

def rsl_rl_actor(obs_dim: int, action_dim: int, recurrent: str | None = None):
    """An rsl_rl 5 actor as Isaac Lab trains one: ELU MLP, empirical observation normalization with
    statistics far from (0, 1), Gaussian head."""
    from rsl_rl.models import MLPModel, RNNModel
    from tensordict import TensorDict

    torch.manual_seed(0)
    obs = TensorDict({'policy': torch.zeros(4, obs_dim)}, batch_size=[4])
    kwargs = dict(hidden_dims=[64, 32], activation='elu', obs_normalization=True,
                  distribution_cfg={'class_name': 'rsl_rl.modules.distribution:GaussianDistribution', 'init_std': 0.5})
    model = (RNNModel(obs, {'actor': ['policy']}, 'actor', action_dim, rnn_type=recurrent, rnn_hidden_dim=16, **kwargs)
             if recurrent else MLPModel(obs, {'actor': ['policy']}, 'actor', action_dim, **kwargs))
    model.train()
    g = torch.Generator().manual_seed(1)
    scale, offset = torch.rand(obs_dim, generator=g) * 5 + 0.1, torch.randn(obs_dim, generator=g) * 3
    for _ in range(4):
        model.update_normalization(TensorDict({'policy': torch.randn(256, obs_dim, generator=g) * scale + offset},
                                              batch_size=[256]))
    return model.eval()


def rsl_rl_export(model, folder) -> tuple[str, str]:
    """policy.onnx and policy.pt written by rsl_rl's own OnPolicyRunner export functions."""
    from types import SimpleNamespace

    from rsl_rl.runners import OnPolicyRunner

    runner = SimpleNamespace(alg=SimpleNamespace(get_policy=lambda: model))   # what the exporters use of a runner
    OnPolicyRunner.export_policy_to_onnx(runner, str(folder))
    OnPolicyRunner.export_policy_to_jit(runner, str(folder))
    return str(folder / 'policy.onnx'), str(folder / 'policy.pt')


def rsl_rl_actions(model, states: np.ndarray) -> np.ndarray:
    from tensordict import TensorDict
    with torch.no_grad():
        return model(TensorDict({'policy': torch.as_tensor(states, dtype=torch.float32)},
                                batch_size=[len(states)])).numpy()


@pytest.fixture(scope='module')
def rsl_rl_hopper(tmp_path_factory):
    """An rsl_rl hopper teacher whose inputs are the privileged elements in its own (shuffled) order."""
    folder = tmp_path_factory.mktemp('rsl_rl')
    names = DistillEnv('hopper').privileged_spec.element_names()
    order = np.random.default_rng(7).permutation(len(names))
    model = rsl_rl_actor(len(names), 3)
    onnx_path, jit_path = rsl_rl_export(model, folder)
    (folder / 'inputs.txt').write_text('\n'.join(names[i] for i in order) + '\n')
    return {'model': model, 'order': order, 'onnx': onnx_path, 'jit': jit_path, 'names': folder / 'inputs.txt'}


@pytest.mark.parametrize('kind', ['onnx', 'torchscript'])
def test_rsl_rl_export_imports_by_name_and_acts_as_rsl_rl(rsl_rl_hopper, kind, tmp_path):
    """The files rsl_rl's export_policy_to_onnx / export_policy_to_jit write, inputs in rsl_rl's own
    order mapped by name: the checkpoint's actions are rsl_rl's on the same states, at any batch size."""
    r = rsl_rl_hopper
    argv = ['import-teacher', kind, r['onnx'] if kind == 'onnx' else r['jit'], '--task', 'hopper',
            '--out', str(tmp_path / 'teacher'), '--input-names', str(r['names']), '--action-std', '0.3']
    result = subprocess.run([sys.executable, '-m', 'distill_ros.cli', *argv,
                             *(['--trust-code'] if kind == 'torchscript' else [])],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 'runs as an ONNX graph in onnxruntime' in result.stdout
    ckpt = ckpt_io.load(tmp_path / 'teacher')
    assert ckpt.model.batched and (tmp_path / 'teacher' / 'model.onnx').is_file()
    ckpt.check_task(DistillEnv('hopper').privileged_spec, ['thigh_joint', 'leg_joint', 'foot_joint'])
    states = np.random.default_rng(2).normal(size=(300, 21)) * 4
    expected = rsl_rl_actions(r['model'], states[:, r['order']])
    with torch.no_grad():
        mean, std = ckpt.model.distribution(torch.as_tensor(states, dtype=torch.float32))
        one = ckpt.model.distribution(torch.as_tensor(states[5], dtype=torch.float32))[0]   # as teacher_node calls it
    np.testing.assert_allclose(mean.numpy(), expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(one.numpy(), expected[5], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(std.numpy(), 0.3, rtol=1e-6)
    np.testing.assert_allclose(ckpt.act(states[:7]), np.clip(expected[:7], -1, 1), atol=1e-5)
    # `latent` is rsl_rl's last hidden activation (what its action layer reads)
    from tensordict import TensorDict
    with torch.no_grad():
        x = torch.as_tensor(states[:, r['order']], dtype=torch.float32)
        normalized = r['model'].get_latent(TensorDict({'policy': x}, batch_size=[len(x)]))
        hidden = nn.Sequential(*list(r['model'].mlp)[:-1])(normalized)
        _, features = ckpt.model.forward_features(torch.as_tensor(states, dtype=torch.float32))
    np.testing.assert_allclose(features['latent'].numpy(), hidden.numpy(), atol=1e-5, rtol=1e-5)
    assert ckpt.provenance['import_kind'] == kind and ckpt.provenance['graph']['runs_in'] == 'onnxruntime'
    from distill_ros.policies.mlp import parameter_count
    assert parameter_count(ckpt.model) == sum(p.numel() for n, p in r['model'].named_parameters()
                                              if n.startswith('mlp.')) + 2 * 21   # + normalizer mean and scale


def test_rsl_rl_recurrent_exports_are_refused_by_name(tmp_path):
    for cell in ('gru', 'lstm'):
        onnx_path, jit_path = rsl_rl_export(rsl_rl_actor(21, 3, recurrent=cell), tmp_path / cell)
        with pytest.raises(CheckpointError, match=r"a recurrent policy: inputs \['h_in'.*carry a hidden state fed "
                                                  r"back from outputs .*'h_out'.*export an MLP actor instead"):
            import_teacher('onnx', onnx_path, DistillEnv('hopper'))
        with pytest.raises(CheckpointError, match=r"a recurrent policy: the module keeps a state between calls "
                                                  r"\(buffers \['hidden_state'"):
            import_teacher('torchscript', jit_path, DistillEnv('hopper'), trust_code=True)


def test_graph_sizes_that_do_not_fit_the_names_are_refused_with_both_sizes(rsl_rl_hopper, hopper):
    names = rsl_rl_hopper['names'].read_text().split()
    with pytest.raises(CheckpointError, match=r'20 input names given for a policy with 21 inputs \(obs: 21\)'):
        import_teacher('onnx', rsl_rl_hopper['onnx'], hopper, names[:20])
    with pytest.raises(CheckpointError, match="takes 21 inputs .obs: 21. but the task.s privileged observation has 7"):
        import_teacher('onnx', rsl_rl_hopper['onnx'], DistillEnv('cartpole'))
    with pytest.raises(CheckpointError, match=r"output 'value' is not one of the graph's outputs \['actions'\]"):
        import_teacher('onnx', rsl_rl_hopper['onnx'], hopper, names, output='value')


class TwoInputs(nn.Module):
    """Not an MLP: two inputs, clipping, SiLU and Softsign, two outputs (value, action)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.a, self.b = nn.Linear(9, 24), nn.Linear(12, 24)
        self.head, self.value = nn.Linear(24, 3), nn.Linear(24, 1)

    def forward(self, proprio, extras):
        h = nn.functional.silu(self.a(torch.clamp(proprio, -2, 2))) + nn.functional.softsign(self.b(extras))
        return self.value(h), torch.clamp(self.head(h), -0.8, 0.8)


def test_any_onnx_graph_with_several_inputs_and_outputs_runs_as_it_is(hopper, tmp_path):
    names = permuted_names(hopper)
    policy = TwoInputs().eval()
    path = tmp_path / 'two.onnx'
    torch.onnx.export(policy, (torch.zeros(1, 9), torch.zeros(1, 12)), str(path), input_names=['proprio', 'extras'],
                      output_names=['value', 'action'], dynamo=False)   # batch fixed at 1, as many exports
    with pytest.raises(CheckpointError, match=r'20 input names given for a policy with 21 inputs '
                                              r'\(proprio: 9, extras: 12\)'):
        import_teacher('onnx', path, hopper, names[:20])
    with pytest.raises(CheckpointError, match=r"outputs 1 actions \(output 'value'\); task hopper has 3"):
        import_teacher('onnx', path, hopper, names)   # the first output is not the action
    ckpt = import_teacher('onnx', path, hopper, names, output='action')
    assert ckpt.model.batched
    obs = np.random.default_rng(4).normal(size=(50, 21)).astype(np.float32) * 3
    theirs = obs[:, ::-1].copy()
    with torch.no_grad():
        expected = policy(torch.as_tensor(theirs[:, :9]), torch.as_tensor(theirs[:, 9:]))[1].numpy()
        got = ckpt.model(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(got).max() == pytest.approx(0.8)   # its own clipping ran
    ckpt_io.save(ckpt, tmp_path / 'ckpt')
    np.testing.assert_allclose(ckpt_io.load(tmp_path / 'ckpt').model(torch.as_tensor(obs)).numpy(), expected,
                               atol=1e-5)


class FixedBatch(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.net = nn.Sequential(nn.Linear(21, 16), nn.GELU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x).reshape(1, 3)   # the export bakes in batch 1


def test_a_graph_with_its_batch_size_fixed_inside_runs_one_state_at_a_time(hopper, tmp_path):
    policy = FixedBatch().eval()
    torch.onnx.export(policy, (torch.zeros(1, 21),), str(tmp_path / 'fixed.onnx'), dynamo=False)
    ckpt = import_teacher('onnx', tmp_path / 'fixed.onnx', hopper)
    assert not ckpt.model.batched
    obs = torch.randn(6, 21)
    torch.testing.assert_close(ckpt.model(obs), torch.cat([policy(obs[i:i + 1]) for i in range(6)]),
                               atol=1e-5, rtol=1e-5)


def test_a_changed_graph_is_refused_at_load(rsl_rl_hopper, hopper, tmp_path):
    ckpt = import_teacher('onnx', rsl_rl_hopper['onnx'], hopper, rsl_rl_hopper['names'].read_text().split())
    ckpt_io.save(ckpt, tmp_path / 'ckpt')
    (tmp_path / 'ckpt' / 'model.onnx').write_bytes(open(rsl_rl_hopper['onnx'], 'rb').read())
    with pytest.raises(CheckpointError, match=r'model.onnx: sha256 .* differs from the .* recorded in policy.json'):
        ckpt_io.load(tmp_path / 'ckpt')
    (tmp_path / 'ckpt' / 'model.onnx').unlink()
    with pytest.raises(CheckpointError, match='model.onnx is missing'):
        ckpt_io.load(tmp_path / 'ckpt')


def test_an_imported_graph_teacher_collects_labels_distils_and_runs_dagger(tmp_path):
    """Collection (a batch of environments), teacher_labels with feature matching on the graph's
    `latent` and on a tensor named in the graph, a short distillation and a DAgger round."""
    from distill_ros.data.dataset import DatasetWriter, load_dataset
    from distill_ros.distill.config import parse_config
    from distill_ros.distill.dagger import collect_episodes, collect_teacher_dataset, dataset_spec
    from distill_ros.distill.labels import teacher_labels
    from distill_ros.distill.trainer import train_student
    from distill_ros.policies.export import export_onnx

    env = DistillEnv('cartpole')
    model = rsl_rl_actor(env.privileged_spec.size, 1)
    onnx_path, _ = rsl_rl_export(model, tmp_path)
    teacher = import_teacher('onnx', onnx_path, env, action_std=0.2)
    ckpt_io.save(teacher, tmp_path / 'teacher')
    teacher = ckpt_io.load(tmp_path / 'teacher')
    data = collect_teacher_dataset('cartpole', teacher, tmp_path / 'data', episodes=3, envs=2, progress=False)
    states = data.arrays['privileged_obs']
    np.testing.assert_allclose(data.arrays['teacher_mean'], rsl_rl_actions(model, states), atol=1e-5)
    labels = teacher_labels(teacher, data, 'latent')
    assert labels['feature'].shape == (len(data), 32)
    np.testing.assert_allclose(labels['std'].numpy(), 0.2, rtol=1e-6)
    named = teacher_labels(teacher, data, 'linear')   # the first layer's output, by its ONNX name
    assert named['feature'].shape == (len(data), 64)
    with pytest.raises(ValueError, match="no feature 'hidden9'; it has .*'latent'"):
        teacher_labels(teacher, data, 'hidden9')
    cfg = parse_config({'train': {'steps': 20, 'eval_every': 10, 'batch_size': 64, 'patience': 100},
                        'student': {'sizes': {'hidden': [16]}}, 'dagger': {'rounds': 0}, 'eval': {'episodes': 0}})
    student = train_student(data, teacher, cfg, tmp_path / 'run', progress=False)
    writer = DatasetWriter(tmp_path / 'dagger', dataset_spec('cartpole'))
    stats = collect_episodes('cartpole', teacher, [20, 21], writer, student=student, beta=0.5, envs=2,
                             max_episode_steps=50, progress=False)
    assert stats.student_steps > 0 and stats.teacher_steps > 0
    round1 = load_dataset(tmp_path / 'dagger')
    np.testing.assert_allclose(round1.arrays['teacher_mean'], rsl_rl_actions(model, round1.arrays['privileged_obs']),
                               atol=1e-5)
    from distill_ros.distill.report import count_flops
    assert count_flops(teacher) == 2 * (7 * 64 + 64 * 32 + 32 * 1)   # its linear layers at batch 1
    export_onnx(teacher, tmp_path / 'teacher.onnx')   # the graph it runs, input `obs` in the task's layout
    assert (tmp_path / 'teacher.onnx').read_bytes() == (tmp_path / 'teacher' / 'model.onnx').read_bytes()


def test_policy_outputs_named_by_joint_are_reordered_to_the_actuators_and_a_bad_naming_is_refused(hopper, tmp_path):
    """A policy whose outputs are in its own joint order (FR, FL, ... against the model's FL, FR, ...)
    drives each joint by name, as a plain MLP and as a graph; names that do not cover the task's
    actions exactly once are refused in one line."""
    names = permuted_names(hopper)
    theirs = list(reversed(hopper.action_names))               # the policy's own joint order
    obs = np.random.default_rng(6).normal(size=(20, 21)).astype(np.float32)
    mlp = outside_policy(21, 3)
    torch.onnx.export(mlp, (torch.zeros(1, 21),), str(tmp_path / 'mlp.onnx'), input_names=['obs'], dynamo=False)
    graph = TwoInputs().eval()
    torch.onnx.export(graph, (torch.zeros(1, 9), torch.zeros(1, 12)), str(tmp_path / 'two.onnx'),
                      input_names=['proprio', 'extras'], output_names=['value', 'action'], dynamo=False)
    with torch.no_grad():
        by_policy = {'mlp': mlp(torch.as_tensor(obs[:, ::-1].copy())).numpy(),
                     'two': graph(torch.as_tensor(obs[:, ::-1][:, :9].copy()),
                                  torch.as_tensor(obs[:, ::-1][:, 9:].copy()))[1].numpy()}
    for kind, extra in (('mlp', {}), ('two', {'output': 'action'})):
        ckpt = import_teacher('onnx', tmp_path / f'{kind}.onnx', hopper, names, theirs, **extra)
        assert ckpt.action_names == hopper.action_names and ckpt.provenance['output_names'] == theirs
        with torch.no_grad():
            got = ckpt.model(torch.as_tensor(obs)).numpy()
        for j, joint in enumerate(hopper.action_names):      # the task's joint j gets the policy's output for it
            np.testing.assert_allclose(got[:, j], by_policy[kind][:, theirs.index(joint)], atol=1e-5)
        ckpt_io.save(ckpt, tmp_path / kind)
        np.testing.assert_allclose(ckpt_io.load(tmp_path / kind).model(torch.as_tensor(obs)).detach().numpy(), got,
                                   atol=1e-6)
    path = tmp_path / 'mlp.onnx'
    with pytest.raises(CheckpointError, match=r"output names must name each of the task's actions once "
                                              r".*; repeated \['foot_joint'\]; missing \['thigh_joint'\]$"):
        import_teacher('onnx', path, hopper, names, ['foot_joint', 'leg_joint', 'foot_joint'])
    with pytest.raises(CheckpointError, match=r"not actions of the task \['FR_hip'\]"):
        import_teacher('onnx', path, hopper, names, ['FR_hip', 'leg_joint', 'foot_joint'])
    with pytest.raises(CheckpointError, match='2 output names given for a policy with 3 outputs'):
        import_teacher('onnx', path, hopper, names, ['leg_joint', 'foot_joint'])


def test_an_onnx_export_naming_its_joints_in_its_metadata_acts_by_them(hopper, tmp_path):
    """mjlab's exporter writes joint_names into the ONNX metadata: the import orders the outputs by
    them without being told, and refuses output names that contradict them."""
    import onnx

    names = permuted_names(hopper)
    mlp = outside_policy(21, 3)
    path = tmp_path / 'named.onnx'
    torch.onnx.export(mlp, (torch.zeros(1, 21),), str(path), input_names=['obs'], dynamo=False)
    model = onnx.load(str(path))
    theirs = ['foot_joint', 'thigh_joint', 'leg_joint']
    onnx.helper.set_model_props(model, {'joint_names': ','.join(theirs)})
    onnx.save(model, str(path))
    obs = np.random.default_rng(7).normal(size=(5, 21)).astype(np.float32)
    ckpt = import_teacher('onnx', path, hopper, names)
    with torch.no_grad():
        got, mine = ckpt.model(torch.as_tensor(obs)).numpy(), mlp(torch.as_tensor(obs[:, ::-1].copy())).numpy()
    np.testing.assert_allclose(got, mine[:, [1, 2, 0]], atol=1e-5)
    with pytest.raises(CheckpointError, match=r'contradict the joint_names \[.foot_joint., .thigh_joint., '
                                              r'.leg_joint.\] in the ONNX metadata'):
        import_teacher('onnx', path, hopper, names, list(hopper.action_names))
