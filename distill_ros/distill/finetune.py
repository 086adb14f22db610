"""Student RL fine-tuning: PPO on the student's own sensor observations, regularized toward the teacher.

Imitation leaves a gap where the student cannot tell what the teacher sees (on hopper: torso height,
forward velocity, contacts). Fine-tuning closes it with the student's own experience:

    actor   the distilled student itself (any kind: window or recurrent), on the sensor input it
            is deployed on; its normalization stays frozen, so the result is the same checkpoint
            format and runs unchanged in student_controller_node and `distill-ros export`
    critic  an MLP on the privileged state, which exists only in simulation (asymmetric
            actor-critic, Pinto et al. 2018)
    update  rsl_rl's PPO (clipped surrogate, GAE, adaptive learning rate, recurrent mini-batches
            over padded trajectories with the hidden states saved at their starts)
    teacher after PPO's update, on the same rollout, a step on w_k · BC(student mean, teacher mean)
            over the rollout's states (or w_k · KL(teacher || student)), w_k decaying from
            `teacher.weight` to 0 over `teacher.until` of the iterations (DAPG/"kickstarting"-style)

The first `critic.warmup_iterations` train the critic only: a random critic's advantages would
otherwise undo the distillation in the first updates.

`TeacherRegularizedPPO` is the update (rsl_rl's PPO, then the regularizer); `FinetuneRunner` is the
loop around it (rollouts, validation, checkpoints, resume, learning curve), as
`distillation.Distillation` and `trainer.DistillationRunner` are for offline distillation.

Outputs in OUT: student/ (the best actor on validation episodes, never the held-out evaluation
seeds), runs/finetune/{last,trainer_state.*} for `--resume`, learning_curve.jsonl, tensorboard/.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from distill_ros.distill.config import ConfigError, _build, need, read_sections
from distill_ros.distill.evaluate import PolicyActor, run_episodes, summarize
from distill_ros.distill.labels import policy_std
from distill_ros.distill.run_files import (
    LEARNING_CURVE,
    RunLog,
    copy_checkpoint,
    has_trainer_state,
    load_optimizer,
    load_trainer_state,
    optimizer_tensors,
    prefixed,
    save_trainer_state,
)
from distill_ros.distill.seeds import finetune_seed, validation_seeds
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.checkpoint import Checkpoint
from distill_ros.policies.students import HistoryPolicy, is_history_policy, is_recurrent
from distill_ros.sim import PRIVILEGED, SENSOR, DistillEnv
from distill_ros.teachers import add_teacher_option, teacher_folder


@dataclass
class EnvConfig:
    envs: int = 16                      # environments stepped together
    steps_per_env: int = 64             # rollout length per iteration (env steps = envs x this)
    reward_scale: float = 0.1           # PPO sees reward x this (keeps the critic's targets near 1-100)
    fall_penalty: float = 0.0           # subtracted from the reward of a step that ends in a fall


@dataclass
class PPOConfig:
    iterations: int = 300
    learning_rate: float = 3.0e-4
    schedule: str = 'adaptive'          # adaptive (to desired_kl) | fixed
    desired_kl: float = 0.01
    num_learning_epochs: int = 5
    num_mini_batches: int = 4
    clip_param: float = 0.2
    gamma: float = 0.99
    lam: float = 0.95
    value_loss_coef: float = 1.0
    entropy_coef: float = 0.0
    max_grad_norm: float = 1.0


@dataclass
class ActorConfig:
    init_std: float = 0.2               # exploration std at the start (0: keep the checkpoint's)
    min_std: float = 0.02


@dataclass
class CriticConfig:
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    activation: str = 'elu'
    warmup_iterations: int = 10         # iterations that train the critic only


@dataclass
class TeacherRegConfig:
    weight: float = 1.0                 # w_0 of the regularizer toward the teacher
    kind: str = 'bc'                    # bc: MSE to the teacher's mean | kl: KL(teacher || student)
    until: float = 0.5                  # w_k falls linearly to 0 at this fraction of the iterations
    epochs: int = 1                     # passes over each rollout for the regularizer
    learning_rate: float = 1.0e-3       # the regularizer's own Adam (PPO's rate adapts to its KL)


@dataclass
class FinetuneTrainConfig:
    seed: int = 0
    eval_every: int = 10                # iterations between validation evaluations
    eval_episodes: int = 10             # validation episodes (seeds apart from the held-out ones)
    torch_threads: int = 1


@dataclass
class FinetuneConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    teacher: TeacherRegConfig = field(default_factory=TeacherRegConfig)
    train: FinetuneTrainConfig = field(default_factory=FinetuneTrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _validate(cfg: FinetuneConfig) -> None:
    for name in ('envs', 'steps_per_env'):
        need(getattr(cfg.env, name) >= 1, f'env.{name}', '>= 1', getattr(cfg.env, name))
    need(cfg.env.reward_scale > 0, 'env.reward_scale', '> 0', cfg.env.reward_scale)
    need(cfg.env.fall_penalty >= 0, 'env.fall_penalty', '>= 0', cfg.env.fall_penalty)
    p = cfg.ppo
    for name in ('iterations', 'num_learning_epochs', 'num_mini_batches'):
        need(getattr(p, name) >= 1, f'ppo.{name}', '>= 1', getattr(p, name))
    need(cfg.env.envs % p.num_mini_batches == 0, 'ppo.num_mini_batches', f'a divisor of env.envs ({cfg.env.envs})',
         p.num_mini_batches)
    need(p.schedule in ('adaptive', 'fixed'), 'ppo.schedule', "'adaptive' or 'fixed'", p.schedule)
    for name in ('learning_rate', 'desired_kl', 'clip_param', 'max_grad_norm'):
        need(getattr(p, name) > 0, f'ppo.{name}', '> 0', getattr(p, name))
    for name in ('gamma', 'lam'):
        need(0 < getattr(p, name) <= 1, f'ppo.{name}', 'in (0, 1]', getattr(p, name))
    need(p.entropy_coef >= 0 and p.value_loss_coef >= 0, 'ppo.entropy_coef / ppo.value_loss_coef', '>= 0',
         (p.entropy_coef, p.value_loss_coef))
    need(cfg.actor.init_std >= 0, 'actor.init_std', '>= 0 (0 keeps the checkpoint\'s std)', cfg.actor.init_std)
    need(cfg.actor.min_std > 0, 'actor.min_std', '> 0', cfg.actor.min_std)
    need(bool(cfg.critic.hidden) and all(h >= 1 for h in cfg.critic.hidden), 'critic.hidden',
         'a non-empty list of positive widths', cfg.critic.hidden)
    need(cfg.critic.activation in ('elu', 'relu', 'tanh'), 'critic.activation', "one of 'elu', 'relu', 'tanh'",
         cfg.critic.activation)
    need(cfg.critic.warmup_iterations >= 0, 'critic.warmup_iterations', '>= 0', cfg.critic.warmup_iterations)
    t = cfg.teacher
    need(t.weight >= 0, 'teacher.weight', '>= 0', t.weight)
    need(t.kind in ('bc', 'kl'), 'teacher.kind', "'bc' or 'kl'", t.kind)
    need(0 < t.until <= 1, 'teacher.until', 'in (0, 1] (fraction of the iterations)', t.until)
    need(t.epochs >= 1, 'teacher.epochs', '>= 1', t.epochs)
    need(t.learning_rate > 0, 'teacher.learning_rate', '> 0', t.learning_rate)
    for name in ('eval_every', 'eval_episodes', 'torch_threads'):
        need(getattr(cfg.train, name) >= 1, f'train.{name}', '>= 1', getattr(cfg.train, name))


def parse_finetune_config(data: Any, where: str = '') -> FinetuneConfig:
    """A FinetuneConfig from a mapping; an unknown key or bad value is refused with its full path."""
    try:
        cfg = _build(FinetuneConfig, data, '')
        _validate(cfg)
    except ConfigError as exc:
        raise ConfigError(f'{where}: {exc}' if where else str(exc)) from None
    return cfg


def load_finetune_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> FinetuneConfig:
    """Read a fine-tuning YAML (default: config/finetune/default.yaml); `overrides` merged per section."""
    path, data = read_sections(path, 'finetune/default.yaml', 'fine-tuning', overrides)
    return parse_finetune_config(data, str(path))


def teacher_weight(cfg: FinetuneConfig, iteration: int) -> float:
    """w_k: `teacher.weight` falling linearly to 0 at `teacher.until` of the iterations."""
    end = cfg.teacher.until * cfg.ppo.iterations
    return cfg.teacher.weight * max(0.0, 1.0 - iteration / end) if end > 0 else 0.0


class StudentActor(nn.Module):
    """The student as rsl_rl's actor: observation group 'student' in, a Gaussian with the
    student's mean and its own learned std out. Window students read the flattened window;
    recurrent students one step row, their state kept here during rollouts (rsl_rl's format:
    a tensor for a GRU, (h, c) for an LSTM) and passed in for the update's padded trajectories.
    The student's normalization statistics are not updated: deployment reads them as trained."""

    def __init__(self, student: HistoryPolicy, group: str = 'student', min_std: float = 0.02,
                 teacher_std: torch.Tensor | None = None):
        super().__init__()
        self.student, self.group = student, group
        self.teacher_std = teacher_std   # the teacher's action std, for the KL regularizer
        self.is_recurrent = is_recurrent(student)
        self.log_min_std = math.log(min_std)
        self.hidden: torch.Tensor | None = None
        self._dist: Normal | None = None

    # -- rsl_rl's model interface ------------------------------------------------------------
    def forward(self, obs, masks: torch.Tensor | None = None, hidden_state=None,
                stochastic_output: bool = False) -> torch.Tensor:
        mean = self._mean(obs[self.group], masks, hidden_state)
        std = self.student.log_std.clamp_min(self.log_min_std).exp().expand_as(mean)
        self._dist = Normal(mean, std)
        return self._dist.sample() if stochastic_output else mean

    def _mean(self, x: torch.Tensor, masks: torch.Tensor | None, hidden_state) -> torch.Tensor:
        from rsl_rl.utils import unpad_trajectories
        student = self.student
        if not self.is_recurrent:
            if masks is not None:      # padded trajectories (when the critic were recurrent)
                x = unpad_trajectories(x, masks)
            return student(x.reshape(*x.shape[:-1], student.history, student.step_dim).flatten(0, -3)
                           ).reshape(*x.shape[:-1], student.action_dim)
        if masks is None:              # rollout: one step per environment, the state kept here
            if self.hidden is None or self.hidden.shape[1] != x.shape[0]:
                self.hidden = student.initial_state(x.shape[0])
            mean, self.hidden = student.step(x, self.hidden)
            return mean
        # update: padded trajectories (T, B, D) from the states saved at their starts
        state = torch.cat(hidden_state, dim=-1) if isinstance(hidden_state, tuple) else hidden_state
        mean, _, _ = student.forward_sequence(x.transpose(0, 1), state)
        return unpad_trajectories(mean.transpose(0, 1), masks)

    def _split(self, state: torch.Tensor | None):
        if state is None or self.student.cell != 'lstm':
            return state
        h = self.student.hidden_size
        return state[..., :h].contiguous(), state[..., h:].contiguous()

    def get_hidden_state(self):
        return self._split(self.hidden) if self.is_recurrent else None

    def reset(self, dones: torch.Tensor | None = None, hidden_state=None) -> None:
        if not self.is_recurrent:
            return
        if dones is None:
            self.hidden = (torch.cat(hidden_state, dim=-1) if isinstance(hidden_state, tuple) else hidden_state)
        elif self.hidden is not None:
            self.hidden[:, dones.view(-1) == 1] = 0.0   # a new episode starts from a zero state

    def detach_hidden_state(self, dones: torch.Tensor | None = None) -> None:
        if self.hidden is not None:
            self.hidden = self.hidden.detach()

    @property
    def output_mean(self) -> torch.Tensor:
        return self._dist.mean

    @property
    def output_std(self) -> torch.Tensor:
        return self._dist.stddev

    @property
    def output_entropy(self) -> torch.Tensor:
        return self._dist.entropy().sum(-1)

    @property
    def output_distribution_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._dist.mean, self._dist.stddev

    def get_output_log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self._dist.log_prob(actions).sum(-1)

    def get_kl_divergence(self, old, new) -> torch.Tensor:
        return kl_divergence(Normal(*old), Normal(*new)).sum(-1)

    def update_normalization(self, obs) -> None:
        """Frozen: the student keeps the normalization it was distilled (and is deployed) with."""


class StudentEnvs:
    """`envs` randomized simulators stepped together, as rsl_rl's loop wants them: a TensorDict with
    groups 'student' (the student's input: its window flattened, or one step row), 'critic' (the
    privileged state) and 'teacher' (the teacher's mean action there, for the regularizer);
    episodes restart by themselves, `time_outs` marks truncations for bootstrapping."""

    def __init__(self, task, student: Checkpoint, teacher: Checkpoint, n: int, seed_base: int,
                 fall_penalty: float = 0.0):
        self.fall_penalty = fall_penalty
        self.pool = [DistillEnv(task) for _ in range(n)]
        student.check_env(self.pool[0], ' (student)')
        teacher.check_env(self.pool[0], ' (teacher)')
        if teacher.obs_source != 'privileged':
            raise ValueError(f'fine-tuning regularizes toward a privileged teacher; {teacher.path} reads '
                             f'{teacher.obs_source} observations')
        self.student, self.teacher, self.n = student, teacher, n
        self.buffers = [student.history_buffer() for _ in range(n)]
        self.low = torch.as_tensor(student.action_low, dtype=torch.float32)
        self.high = torch.as_tensor(student.action_high, dtype=torch.float32)
        self.next_seed = seed_base
        self.obs = [self._reset(i) for i in range(n)]
        self.returns = np.zeros(n)
        self.finished: list[float] = []      # returns of episodes finished since the last read
        self.steps = 0

    def _reset(self, i: int) -> dict[str, np.ndarray]:
        obs, _ = self.pool[i].reset(seed=self.next_seed)
        self.next_seed += 1
        self.buffers[i].reset()
        return obs

    @torch.no_grad()
    def observations(self):
        from tensordict import TensorDict
        windows = np.stack([self.buffers[i].push(o[SENSOR]) for i, o in enumerate(self.obs)])
        privileged = torch.as_tensor(np.stack([o[PRIVILEGED] for o in self.obs]), dtype=torch.float32)
        return TensorDict({'student': torch.as_tensor(windows.reshape(self.n, -1)), 'critic': privileged,
                           'teacher': self.teacher.model(privileged)}, batch_size=[self.n])

    def step(self, actions: torch.Tensor):
        """Execute (clipped) actions; the next observations, rewards, dones and time-outs."""
        executed = torch.clamp(actions, self.low, self.high).numpy().astype(np.float64)
        rewards, dones, time_outs = np.zeros(self.n), np.zeros(self.n), np.zeros(self.n)
        for i, env in enumerate(self.pool):
            obs, reward, terminated, truncated, _ = env.step(executed[i])
            self.buffers[i].set_action(executed[i])
            rewards[i] = reward - (self.fall_penalty if terminated else 0.0)
            self.returns[i] += reward                # the task's own return, without the penalty
            if terminated or truncated:
                dones[i], time_outs[i] = 1.0, float(truncated and not terminated)
                self.finished.append(float(self.returns[i]))
                self.returns[i] = 0.0
                obs = self._reset(i)
            self.obs[i] = obs
        self.steps += self.n
        return (self.observations(), torch.as_tensor(rewards, dtype=torch.float32),
                torch.as_tensor(dones, dtype=torch.float32), {'time_outs': torch.as_tensor(time_outs)})

    def close(self) -> None:
        for env in self.pool:
            env.close()


def _critic(obs, cfg: FinetuneConfig):
    from rsl_rl.models import MLPModel
    return MLPModel(obs, {'critic': ['critic']}, 'critic', 1, hidden_dims=list(cfg.critic.hidden),
                    activation=cfg.critic.activation, obs_normalization=True)


class TeacherRegularizedPPO:
    """rsl_rl's PPO on the student actor and a privileged critic, then a step on the teacher
    regularizer over the same rollout (module docstring):

        L_reg = w_k · E ‖ μ_θ(h) − μ*(s) ‖²   (`teacher.kind: bc`)   or   w_k · KL(π* ‖ π_θ)   (`kl`)

    `iteration(envs, obs, k)` is one iteration k: critic warm-up or not, a rollout, PPO's update and
    the regularizer's; `state_dict()`/`load_state_dict()` carry the critic, both optimizers, the
    RNG and PPO's adapted learning rate for --resume."""

    def __init__(self, actor: StudentActor, obs, cfg: FinetuneConfig):
        from rsl_rl.algorithms import PPO
        from rsl_rl.storage import RolloutStorage
        p = cfg.ppo
        self.actor, self.cfg = actor, cfg
        self.ppo = PPO(actor, _critic(obs, cfg), RolloutStorage('rl', cfg.env.envs, cfg.env.steps_per_env, obs,
                                                                [actor.student.action_dim]),
                       num_learning_epochs=p.num_learning_epochs, num_mini_batches=p.num_mini_batches,
                       clip_param=p.clip_param, gamma=p.gamma, lam=p.lam, value_loss_coef=p.value_loss_coef,
                       entropy_coef=p.entropy_coef, learning_rate=p.learning_rate, max_grad_norm=p.max_grad_norm,
                       schedule=p.schedule, desired_kl=p.desired_kl)
        self.regularizer = torch.optim.Adam(actor.parameters(), lr=cfg.teacher.learning_rate)

    def iteration(self, envs: StudentEnvs, obs, k: int):
        """Iteration k from observations `obs`; returns the next observations and
        (PPO's losses, w_k, the regularizer's loss or None, whether the critic warmed up alone)."""
        warmup = k < self.cfg.critic.warmup_iterations
        for param in self.actor.parameters():   # the critic learns the student's values before the actor moves
            param.requires_grad_(not warmup)
        if warmup:   # the actor does not move: no KL to adapt the learning rate to
            self.ppo.schedule, self.ppo.learning_rate = 'fixed', self.cfg.ppo.learning_rate
        else:
            self.ppo.schedule = self.cfg.ppo.schedule
        obs = self.rollout(envs, obs)
        losses = self.ppo.update()
        # After PPO's update (its ratios and KL then compare with the policy that collected the
        # rollout), and on the same rollout: storage.clear() only rewinds the write position.
        weight = teacher_weight(self.cfg, k)
        reg_loss = self.regularize(weight) if weight > 0 and not warmup else None
        return obs, (losses, weight, reg_loss, warmup)

    @torch.no_grad()
    def rollout(self, envs: StudentEnvs, obs):
        """`env.steps_per_env` steps of every environment into PPO's storage, then GAE returns."""
        for _ in range(self.cfg.env.steps_per_env):
            actions = self.ppo.act(obs)
            obs, rewards, dones, extras = envs.step(actions)
            self.ppo.process_env_step(obs, rewards * self.cfg.env.reward_scale, dones, extras)
        self.ppo.compute_returns(obs)
        return obs

    def regularize(self, weight: float) -> float | None:
        """`teacher.epochs` passes over the rollout's mini-batches on weight · L_reg (teacher's means
        from the observations' 'teacher' group); returns the mean unweighted loss."""
        from rsl_rl.utils import unpad_trajectories
        actor, storage, losses = self.actor, self.ppo.storage, []
        mini_batches, epochs = self.cfg.ppo.num_mini_batches, self.cfg.teacher.epochs
        generator = (storage.recurrent_mini_batch_generator(mini_batches, epochs) if actor.is_recurrent
                     else storage.mini_batch_generator(mini_batches, epochs))
        for batch in generator:
            mean = actor(batch.observations, masks=batch.masks, hidden_state=batch.hidden_states[0])
            target = batch.observations['teacher']
            if batch.masks is not None:
                target = unpad_trajectories(target, batch.masks)
            if self.cfg.teacher.kind == 'bc':
                loss = (mean - target).pow(2).sum(-1).mean()
            else:
                teacher_std = actor.teacher_std.expand_as(target)
                loss = kl_divergence(Normal(target, teacher_std), Normal(mean, actor.output_std)).sum(-1).mean()
            self.regularizer.zero_grad()
            (weight * loss).backward()
            nn.utils.clip_grad_norm_(actor.parameters(), self.ppo.max_grad_norm)
            self.regularizer.step()
            losses.append(float(loss.detach()))
        return float(np.mean(losses)) if losses else None

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {f'critic.{k}': v.contiguous() for k, v in self.ppo.critic.state_dict().items()}
        opt, opt_meta = optimizer_tensors(self.ppo.optimizer)
        tensors.update({f'opt.{k}': v for k, v in opt.items()})
        reg, reg_meta = optimizer_tensors(self.regularizer)
        tensors.update({f'reg.{k}': v for k, v in reg.items()})
        tensors['torch_rng'] = torch.get_rng_state()
        return tensors, {'learning_rate': self.ppo.learning_rate, 'optimizer': opt_meta,
                         'regularizer_optimizer': reg_meta}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.ppo.critic.load_state_dict(prefixed(tensors, 'critic'))
        load_optimizer(self.ppo.optimizer, prefixed(tensors, 'opt'), meta['optimizer'])
        load_optimizer(self.regularizer, prefixed(tensors, 'reg'), meta['regularizer_optimizer'])
        torch.set_rng_state(tensors['torch_rng'])
        self.ppo.learning_rate = meta['learning_rate']


def _student_checkpoint(student: HistoryPolicy, parent: Checkpoint, cfg: FinetuneConfig, teacher: Checkpoint,
                        metrics: dict[str, Any]) -> Checkpoint:
    ckpt = copy.copy(parent)
    ckpt.model = student.eval()
    ckpt.provenance = ckpt_io.provenance(task=parent.task, run='finetune', seed=cfg.train.seed,
                                         parent=str(parent.path or ''), teacher=str(teacher.path or ''),
                                         finetune_config=cfg.to_dict(),
                                         parent_provenance=parent.provenance)
    ckpt.metrics = metrics
    return ckpt


def _check_pair(student: Checkpoint, teacher: Checkpoint) -> None:
    if student.obs_source != 'sensor' or not is_history_policy(student.model):
        raise ValueError(f'{student.path} is not a sensor student (a distilled checkpoint); fine-tuning starts '
                         'from one')
    if teacher.task and student.task and teacher.task != student.task:
        raise ValueError(f'student {student.path} is for task {student.task!r}, teacher {teacher.path} for '
                         f'{teacher.task!r}')


class FinetuneRunner:
    """The loop around `TeacherRegularizedPPO`: the actor set up from the student (or the last
    snapshot when resuming), validation episodes that pick the best actor, OUT/runs/finetune/
    {best,last,trainer_state.*}, the learning curve, TensorBoard and progress."""

    def __init__(self, student: Checkpoint, teacher: Checkpoint, cfg: FinetuneConfig, out: Path, resume: bool,
                 log: Callable[[str], None]):
        self.parent, self.teacher, self.cfg, self.out, self.log = student, teacher, cfg, out, log
        self.run_dir = out / 'runs' / 'finetune'
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.resuming = resume and has_trainer_state(self.run_dir) and (self.run_dir / 'last' / 'policy.json').is_file()
        if not resume and (out / LEARNING_CURVE).exists():
            (out / LEARNING_CURVE).unlink()
        torch.set_num_threads(cfg.train.torch_threads)
        torch.manual_seed(cfg.train.seed)
        self.model = copy.deepcopy((ckpt_io.load(self.run_dir / 'last') if self.resuming else student).model).train()
        if cfg.actor.init_std > 0 and not self.resuming:
            with torch.no_grad():
                self.model.log_std.fill_(math.log(cfg.actor.init_std))
        for buffer in self.model.buffers():   # the normalization stays as distilled
            buffer.requires_grad_(False)
        actor = StudentActor(self.model, min_std=cfg.actor.min_std, teacher_std=policy_std(teacher.model))
        tensors, meta = load_trainer_state(self.run_dir) if self.resuming else ({}, {})
        self.task = (student if student.task else teacher).load_task()   # a task file: checked against its hashes
        self.envs = StudentEnvs(self.task, student, teacher, cfg.env.envs,
                                finetune_seed(cfg.train.seed) + meta.get('env_steps', 0), cfg.env.fall_penalty)
        self.obs = self.envs.observations()
        self.algorithm = TeacherRegularizedPPO(actor, self.obs, cfg)
        self.start, self.env_steps, self.best, self.wall_s = 0, 0, -math.inf, 0.0
        if self.resuming:
            self.algorithm.load_state_dict(tensors, meta)
            self.start, self.env_steps, self.best, self.wall_s = (meta['iteration'], meta['env_steps'], meta['best'],
                                                                  meta['wall_s'])
            log(f'resuming fine-tuning at iteration {self.start} ({self.env_steps} env steps)')
        self.val_env = DistillEnv(self.task)
        self.val_seeds = validation_seeds(cfg.train.eval_episodes)

    def snapshot(self, metrics: dict[str, Any]) -> Checkpoint:
        """The actor now, as a student checkpoint of the parent's kind."""
        return _student_checkpoint(copy.deepcopy(self.model).eval(), self.parent, self.cfg, self.teacher, metrics)

    def validate(self) -> dict[str, float]:
        """The actor's summary over the validation episodes (never the held-out evaluation seeds)."""
        actor = PolicyActor(self.snapshot({}))
        return summarize(run_episodes(self.val_env, actor, self.val_seeds, reset_policy=actor.reset))

    def learn(self, progress: bool) -> None:
        """Score the distilled student first (fine-tuning keeps it unless it does better), then
        iterate to `ppo.iterations`."""
        if not self.resuming:
            first = self.validate()
            self.best = first['mean_return']
            ckpt_io.save(self.snapshot({'validation': first, 'iteration': 0, 'env_steps': 0}), self.run_dir / 'best')
            self.log(f'distilled student on {len(self.val_seeds)} validation episodes: {self.best:.1f}')
        self.started = time.monotonic() - self.wall_s
        iterations = self.cfg.ppo.iterations
        log = RunLog(self.out, 'finetune', iterations, self.start, 'fine-tuning', 'it', progress)
        for k in range(self.start, iterations):
            self.obs, (losses, weight, reg_loss, warmup) = self.algorithm.iteration(self.envs, self.obs, k)
            self.env_steps += self.cfg.env.envs * self.cfg.env.steps_per_env
            returns, self.envs.finished = self.envs.finished, []
            record = {'iteration': k + 1, 'env_steps': self.env_steps, 'teacher_weight': weight,
                      'teacher_loss': reg_loss, 'learning_rate': self.algorithm.ppo.learning_rate, 'warmup': warmup,
                      'train_return': float(np.mean(returns)) if returns else None,
                      'std': float(self.model.log_std.detach().exp().mean()),
                      **{f'{name}_loss': v for name, v in losses.items()},
                      'wall_s': round(time.monotonic() - self.started, 1)}
            if (k + 1) % self.cfg.train.eval_every == 0 or k + 1 == iterations:
                self._evaluate(record)
            log.write(record, {f'finetune/{key}': value for key, value in record.items()
                               if isinstance(value, (int, float)) and value is not None and key != 'iteration'},
                      self.env_steps)
            log.advance(ret=f"{record['train_return'] or float('nan'):.0f}", w=f'{weight:.2f}',
                        val=f"{record.get('val_return', float('nan')):.0f}")
        log.close()

    def _evaluate(self, record: dict[str, Any]) -> None:
        """Validation: `last`, `best` when the actor beats every earlier one, the trainer state."""
        val = self.validate()
        record['val_return'], record['val_fall_rate'] = val['mean_return'], val['fall_rate']
        snapshot = self.snapshot({'validation': val, 'iteration': record['iteration'], 'env_steps': self.env_steps})
        ckpt_io.save(snapshot, self.run_dir / 'last')
        if val['mean_return'] > self.best:
            self.best = val['mean_return']
            ckpt_io.save(snapshot, self.run_dir / 'best')
        tensors, meta = self.algorithm.state_dict()
        save_trainer_state(self.run_dir, tensors, {'iteration': record['iteration'], 'env_steps': self.env_steps,
                                                   'best': self.best, 'wall_s': record['wall_s'], **meta})

    def finish(self) -> dict[str, Any]:
        """OUT/student (the best actor on validation) and OUT/summary.json; returns the summary."""
        self.envs.close()
        self.val_env.close()
        wall_s = round(time.monotonic() - self.started, 1)
        final = ckpt_io.load(self.run_dir / 'best')
        final.metrics = {**final.metrics, 'finetune_env_steps': self.env_steps, 'finetune_wall_s': wall_s}
        ckpt_io.save(final, self.run_dir / 'best')
        copy_checkpoint(self.run_dir / 'best', self.out / 'student')
        summary = {'student': str(self.out / 'student'), 'parent': str(self.parent.path),
                   'teacher': str(self.teacher.path), 'env_steps': self.env_steps,
                   'best_validation_return': self.best, 'config': self.cfg.to_dict(),
                   'wall_s': round(time.monotonic() - self.started, 1)}
        (self.out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
        return summary


def finetune(student: Checkpoint, teacher: Checkpoint, cfg: FinetuneConfig, out: str | Path, resume: bool = False,
             progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fine-tune `student` with PPO on its task (see the module docstring); returns a summary and
    writes OUT/student (the best actor on validation episodes)."""
    _check_pair(student, teacher)
    ckpt_io.git_revision()
    runner = FinetuneRunner(student, teacher, cfg, Path(out), resume, log)
    runner.learn(progress)
    return runner.finish()


def cmd_finetune(args) -> int:
    from distill_ros.distill.runner import parse_overrides
    cfg = load_finetune_config(args.config, parse_overrides(args.set))
    student = ckpt_io.load(args.student)
    teacher = ckpt_io.load(teacher_folder(args.teacher, student.task))
    summary = finetune(student, teacher, cfg, args.out, resume=args.resume, progress=not args.no_progress)
    print(f"fine-tuned student: {summary['student']} (best validation return {summary['best_validation_return']:.1f} "
          f"after {summary['env_steps']} env steps, {summary['wall_s']:.0f} s)")
    return 0


def add_commands(sub) -> None:
    """Register `distill-ros finetune`."""
    f = sub.add_parser('finetune', help='improve a distilled student with RL (PPO, asymmetric critic, teacher '
                                        'regularizer); the result is the same checkpoint format')
    f.add_argument('--student', required=True, help='distilled student checkpoint folder')
    add_teacher_option(f, "the student's task")
    f.add_argument('--config', help='fine-tuning YAML (default: config/finetune/default.yaml)')
    f.add_argument('--out', required=True, help='output folder (OUT/student is the result)')
    f.add_argument('--set', action='append', metavar='SECTION.KEY=VALUE', help='override a config value')
    f.add_argument('--resume', action='store_true', help='continue an interrupted fine-tuning in OUT')
    f.add_argument('--no-progress', action='store_true')
    f.set_defaults(func=cmd_finetune)
