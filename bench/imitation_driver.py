"""Runs inside the imitation 1.0.1 venv (gymnasium 0.29, stable-baselines3 2.2), started by
bench/baselines.py. The envs and the teacher live in the parent process: this side speaks JSON lines
on stdin/stdout (stdout carries only protocol lines; logs go to stderr).

Parent -> driver first: {num_envs, obs_dim, low, high, budget, seed, scratch}.
Driver -> parent: {"cmd": "reset", "env": i} | {"cmd": "step", "env": i, "action": [...]} |
{"cmd": "expert"} (the teacher's action for every env's current privileged obs) |
{"cmd": "done", "layers": [[W, b], ...], "activation": "tanh", "rounds": n}.
The student sees only the sensor obs; its weights return as JSON, never pickle.
"""
from __future__ import annotations

import json
import sys

import gymnasium as gym
import numpy as np
import torch
from imitation.algorithms import bc
from imitation.algorithms.dagger import SimpleDAggerTrainer
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.vec_env import DummyVecEnv

PROTOCOL = sys.stdout
sys.stdout = sys.stderr  # libraries that print must not corrupt the protocol


def call(msg: dict) -> dict:
    PROTOCOL.write(json.dumps(msg) + '\n')
    PROTOCOL.flush()
    return json.loads(sys.stdin.readline())


class RemoteEnv(gym.Env):
    """One parent-side DistillEnv seen through its sensor obs."""

    def __init__(self, index: int, observation_space: gym.spaces.Box, action_space: gym.spaces.Box):
        self.index, self.observation_space, self.action_space = index, observation_space, action_space

    def reset(self, *, seed=None, options=None):
        return np.asarray(call({'cmd': 'reset', 'env': self.index})['obs'], dtype=np.float32), {}

    def step(self, action):
        r = call({'cmd': 'step', 'env': self.index, 'action': np.asarray(action, dtype=float).tolist()})
        return np.asarray(r['obs'], dtype=np.float32), r['reward'], r['terminated'], r['truncated'], {}


class RemoteExpert(BasePolicy):
    """The parent's teacher on each env's current privileged obs (the sensor obs passed in is ignored:
    DummyVecEnv steps and auto-resets envs in order, so the parent's latest obs are the ones shown)."""

    def _predict(self, observation: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return torch.as_tensor(call({'cmd': 'expert'})['actions'], dtype=torch.float32)


def main() -> None:
    hello = json.loads(sys.stdin.readline())
    n = hello['num_envs']
    observation_space = gym.spaces.Box(-np.inf, np.inf, (hello['obs_dim'],), np.float32)
    action_space = gym.spaces.Box(np.asarray(hello['low'], np.float32), np.asarray(hello['high'], np.float32))
    venv = DummyVecEnv([lambda i=i: RemoteEnv(i, observation_space, action_space) for i in range(n)])
    torch.manual_seed(hello['seed'])
    rng = np.random.default_rng(hello['seed'])
    student = ActorCriticPolicy(observation_space, action_space, lr_schedule=lambda _: 1e-3,
                                net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh)
    trainer = bc.BC(observation_space=observation_space, action_space=action_space, rng=rng, policy=student,
                    device='cpu')
    expert = RemoteExpert(observation_space, action_space)
    dagger = SimpleDAggerTrainer(venv=venv, scratch_dir=hello['scratch'], expert_policy=expert, bc_trainer=trainer,
                                 rng=rng)
    budget = hello['budget']
    dagger.train(budget, rollout_round_min_episodes=1, rollout_round_min_timesteps=max(500, budget // 5),
                 bc_train_kwargs={'log_rollouts_venv': None, 'progress_bar': False})
    policy = trainer.policy
    linears = [m for m in policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)] + [policy.action_net]
    layers = [[m.weight.detach().tolist(), m.bias.detach().tolist()] for m in linears]
    PROTOCOL.write(json.dumps({'cmd': 'done', 'layers': layers, 'activation': 'tanh', 'rounds': dagger.round_num})
                   + '\n')
    PROTOCOL.flush()


if __name__ == '__main__':
    main()
