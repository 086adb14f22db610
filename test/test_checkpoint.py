"""The checkpoint format: exact round trip, never unpickled, damage and mismatches named."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.mlp import GaussianMLP
from distill_ros.sim import DistillEnv


def make_checkpoint(task: str = 'cartpole') -> ckpt_io.Checkpoint:
    env = DistillEnv(task)
    torch.manual_seed(0)
    net = GaussianMLP(env.privileged_spec.size, env.action_space.shape[0], [32, 16], 'tanh')
    with torch.no_grad():
        net.obs_mean.uniform_(-1, 1)
        net.obs_var.uniform_(0.5, 2)
    return ckpt_io.Checkpoint(model=net, obs_source='privileged', obs_spec=env.privileged_spec,
                              action_names=env.action_names, action_low=env.action_space.low,
                              action_high=env.action_space.high, task='cartpole',
                              provenance=ckpt_io.provenance(seed=3), metrics={'eval': {'mean_return': 1.0}})


def test_round_trip_is_exact(tmp_path):
    ckpt = make_checkpoint()
    ckpt_io.save(ckpt, tmp_path / 'c')
    assert sorted(p.name for p in (tmp_path / 'c').iterdir()) == ['model.safetensors', 'policy.json']
    loaded = ckpt_io.load(tmp_path / 'c')
    x = np.random.default_rng(0).normal(size=(5, ckpt.obs_spec.size))
    np.testing.assert_array_equal(loaded.act(x), ckpt.act(x))
    assert loaded.obs_spec == ckpt.obs_spec and loaded.action_names == ['slider']
    assert loaded.provenance['seed'] == 3 and loaded.provenance['git_revision']
    spec = json.loads((tmp_path / 'c' / 'policy.json').read_text())
    assert spec['observation']['fields'][0] == {'name': 'qpos', 'elements': ['slider', 'hinge']}


def test_damaged_files_are_named(tmp_path):
    ckpt_io.save(make_checkpoint(), tmp_path / 'c')
    weights = tmp_path / 'c' / 'model.safetensors'
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ckpt_io.CheckpointError, match='model.safetensors: cannot read'):
        ckpt_io.load(tmp_path / 'c')
    ckpt_io.save(make_checkpoint(), tmp_path / 'd')
    (tmp_path / 'd' / 'policy.json').write_text('{"format": ')
    with pytest.raises(ckpt_io.CheckpointError, match='policy.json: not valid JSON'):
        ckpt_io.load(tmp_path / 'd')
    with pytest.raises(ckpt_io.CheckpointError, match='policy.json is missing'):
        ckpt_io.load(tmp_path / 'nowhere')


def test_architecture_and_tensors_must_agree(tmp_path):
    ckpt_io.save(make_checkpoint(), tmp_path / 'c')
    spec_path = tmp_path / 'c' / 'policy.json'
    spec = json.loads(spec_path.read_text())
    spec['architecture']['hidden'] = [64, 16]
    spec_path.write_text(json.dumps(spec))
    with pytest.raises(ckpt_io.CheckpointError, match='tensors do not fit the architecture'):
        ckpt_io.load(tmp_path / 'c')


def test_task_mismatch_is_refused_with_the_name(tmp_path):
    ckpt = make_checkpoint()
    hopper = DistillEnv('hopper')
    with pytest.raises(ValueError, match="layout mismatch at index 0: expected 'qpos/slider', got 'qpos/rootz'"):
        ckpt.check_task(hopper.privileged_spec, hopper.action_names)
    cartpole = DistillEnv('cartpole')
    with pytest.raises(ckpt_io.CheckpointError, match=r"actions \['slider'\] do not match"):
        ckpt.check_task(cartpole.privileged_spec, ['cart'])
