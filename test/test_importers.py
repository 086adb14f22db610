"""Outside teachers (ONNX, TorchScript, stable-baselines3) converted into the checkpoint format."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.importers import CheckpointError, import_teacher
from distill_ros.sim import DistillEnv


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

    from distill_ros.distill.teacher import PrivilegedView

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
