"""Training the privileged teacher with stable-baselines3's PPO, saved in the project's checkpoint format.

The teacher sees `privileged_obs` (true state, contacts, dynamics) with domain randomization and
sensor noise on, in vectorized environments, with running observation normalization. Every
`eval_every` steps the policy is converted to a `GaussianMLP` checkpoint, evaluated on held-out
randomized episodes, and written to `<out>/last` (and `<out>/best` when it improved); the
stable-baselines3 state for `--resume` goes to `<out>/resume/`.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from distill_ros.distill.evaluate import eval_seeds, privileged_actor, run_episodes, summarize
from distill_ros.distill.run_files import LEARNING_CURVE
from distill_ros.paths import config_path, load_user_yaml
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.mlp import GaussianMLP
from distill_ros.sim import PRIVILEGED, DistillEnv, load_task


@dataclass
class TeacherConfig:
    total_steps: int = 1_000_000
    n_envs: int = 4
    hidden: list[int] = field(default_factory=lambda: [512, 512, 512])
    value_hidden: list[int] = field(default_factory=lambda: [256, 256])
    activation: str = 'tanh'
    n_steps: int = 512
    batch_size: int = 64
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    log_std_init: float = -0.5
    target_kl: float | None = None   # stop an update's epochs early past this KL (None: never)
    lr_schedule: str = 'constant'    # 'linear': decay the learning rate to 0 at total_steps
    eval_every: int = 50_000
    eval_episodes: int = 10
    torch_threads: int = 1


def load_teacher_config(task: str, path: str | Path | None = None,
                        overrides: dict[str, Any] | None = None) -> TeacherConfig:
    """`defaults` of config/train_teacher.yaml (or `path`), then its section for `task`, then `overrides`.
    (The distillation config has its own loader, `distill.config.load_config`.)"""
    path = Path(path) if path else config_path('train_teacher.yaml')
    data = load_user_yaml(path, 'teacher training config')
    sections = {key: data.get(key) or {} for key in ('defaults', task)}
    for key, section in sections.items():
        if not isinstance(section, dict):
            raise ValueError(f'{path}: section {key!r} is {section!r}; expected a mapping of training keys')
    merged = {**sections['defaults'], **sections[task], **(overrides or {})}
    known = {f.name for f in fields(TeacherConfig)}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ValueError(f'{path}: unknown teacher training keys {unknown}; expected some of {sorted(known)}')
    cfg = TeacherConfig(**merged)
    if cfg.lr_schedule not in ('constant', 'linear'):
        raise ValueError(f"{path}: lr_schedule is {cfg.lr_schedule!r}; expected 'constant' or 'linear'")
    return cfg


class PrivilegedView(gym.ObservationWrapper):
    """Presents a DistillEnv to an RL library as a flat Box of the privileged observation."""

    def __init__(self, env: DistillEnv):
        super().__init__(env)
        self.observation_space = env.observation_space[PRIVILEGED]

    def observation(self, observation):
        return observation[PRIVILEGED].astype(np.float32)


def _make_env(task_name: str, seed: int):
    def make():
        env = PrivilegedView(DistillEnv(task_name))
        env.reset(seed=seed)
        return env
    return make


def to_checkpoint(model, vec_normalize, env: DistillEnv, cfg: TeacherConfig, metrics: dict, seed: int,
                  steps: int, wall: float) -> ckpt_io.Checkpoint:
    """Copy the PPO actor and the running normalization into a `GaussianMLP` checkpoint."""
    policy = model.policy
    net = GaussianMLP(env.privileged_spec.size, env.action_space.shape[0], cfg.hidden, cfg.activation,
                      obs_clip=float(vec_normalize.clip_obs))
    linears = [m for m in policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for mine, theirs in zip(net.layers, linears):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
        net.head.weight.copy_(policy.action_net.weight)
        net.head.bias.copy_(policy.action_net.bias)
        net.log_std.copy_(policy.log_std)
        net.obs_mean.copy_(torch.as_tensor(vec_normalize.obs_rms.mean, dtype=torch.float32))
        net.obs_var.copy_(torch.as_tensor(vec_normalize.obs_rms.var, dtype=torch.float32))
    return ckpt_io.Checkpoint(
        model=net.eval(), obs_source='privileged', obs_spec=env.privileged_spec, action_names=env.action_names,
        action_low=env.action_space.low, action_high=env.action_space.high, task=env.task.name, role='teacher',
        task_file=ckpt_io.task_file(getattr(env, 'unwrapped', env)),
        obs_terms=ckpt_io.teacher_terms(env),
        provenance=ckpt_io.provenance(task=env.task.name, seed=seed, algorithm='stable-baselines3 PPO',
                                      training_steps=steps, wall_time_s=round(wall, 1), config=asdict(cfg)),
        metrics=metrics)


def learning_rate(cfg: TeacherConfig):
    """A constant, or stable-baselines3's schedule of the remaining progress (1 -> 0) for 'linear'."""
    if cfg.lr_schedule == 'linear':
        return lambda remaining: cfg.learning_rate * remaining
    return cfg.learning_rate


def train_teacher(task_name: str, out: str | Path, cfg: TeacherConfig, seed: int = 0, resume: bool = False,
                  progress: bool = True) -> ckpt_io.Checkpoint:
    """Train a teacher for `task_name` into `out` (continuing `out/resume/` with `resume`); returns
    the best checkpoint (held-out evaluation every `cfg.eval_every` steps)."""
    torch.set_num_threads(cfg.torch_threads)
    ckpt_io.git_revision()  # the revision this run started from, for every checkpoint it writes
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    load_task(task_name)  # fail early on a bad task name
    vec_normalize = make_training_envs(task_name, cfg, seed)
    resume_dir = out / 'resume'
    if resume and (resume_dir / 'ppo.zip').is_file():
        model = load_resume_state(resume_dir, vec_normalize)
    else:
        model = make_ppo(vec_normalize, cfg, seed, out / 'tensorboard')
    evaluation = HeldOutEvaluation(model, vec_normalize, task_name, cfg, seed, out, resume=resume)
    remaining = max(cfg.total_steps - model.num_timesteps, 0)
    from stable_baselines3.common.callbacks import CallbackList, ConvertCallback, ProgressBarCallback
    bar = ProgressBarCallback() if progress else None
    try:
        callbacks = CallbackList([ConvertCallback(evaluation)] + ([bar] if bar else []))
        model.learn(total_timesteps=remaining, callback=callbacks, reset_num_timesteps=not resume, tb_log_name='ppo')
    except KeyboardInterrupt:
        if bar is not None and hasattr(bar, 'pbar'):
            bar.on_training_end()
        save_resume_state(resume_dir, model, vec_normalize)
        vec_normalize.close()
        raise KeyboardInterrupt(f'interrupted at {model.num_timesteps:,} env steps; {resume_dir} holds that state '
                                f'({out / "best"} and {out / "last"}: the last evaluation); continue with '
                                f'--resume') from None
    final = evaluation.checkpoint()
    vec_normalize.close()
    return ckpt_io.load(out / 'best') if (out / 'best').exists() else final


def make_training_envs(task_name: str, cfg: TeacherConfig, seed: int):
    """`cfg.n_envs` environments behind stable-baselines3's running observation and reward
    normalization. Training seeds stay below the evaluation seeds, one stream per environment."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    vec = DummyVecEnv([_make_env(task_name, seed * 1000 + i) for i in range(cfg.n_envs)])
    vec.seed(seed * 1000)
    return VecNormalize(vec, norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=cfg.gamma)


def make_ppo(vec_normalize, cfg: TeacherConfig, seed: int, tensorboard: Path):
    """A fresh stable-baselines3 PPO with the actor and critic sizes of `cfg`."""
    from stable_baselines3 import PPO

    return PPO('MlpPolicy', vec_normalize, learning_rate=learning_rate(cfg), n_steps=cfg.n_steps,
               target_kl=cfg.target_kl,
               batch_size=cfg.batch_size, n_epochs=cfg.n_epochs, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
               clip_range=cfg.clip_range, ent_coef=cfg.ent_coef, max_grad_norm=cfg.max_grad_norm,
               tensorboard_log=str(tensorboard), seed=seed, device='cpu',
               policy_kwargs=dict(net_arch=dict(pi=cfg.hidden, vf=cfg.value_hidden),
                                  activation_fn={'tanh': torch.nn.Tanh, 'relu': torch.nn.ReLU,
                                                 'elu': torch.nn.ELU}[cfg.activation],
                                  log_std_init=cfg.log_std_init))


def save_resume_state(resume_dir: Path, model, vec_normalize) -> None:
    """What `--resume` continues from: the PPO state and the running normalization statistics."""
    resume_dir.mkdir(exist_ok=True)
    model.save(resume_dir / 'ppo.zip')
    (resume_dir / 'normalization.json').write_text(json.dumps({
        'obs_mean': vec_normalize.obs_rms.mean.tolist(), 'obs_var': vec_normalize.obs_rms.var.tolist(),
        'obs_count': float(vec_normalize.obs_rms.count), 'ret_mean': float(vec_normalize.ret_rms.mean),
        'ret_var': float(vec_normalize.ret_rms.var), 'ret_count': float(vec_normalize.ret_rms.count)}))


def load_resume_state(resume_dir: Path, vec_normalize):
    """The PPO saved by `save_resume_state`, on `vec_normalize` with the statistics restored."""
    from stable_baselines3 import PPO

    model = PPO.load(resume_dir / 'ppo.zip', env=vec_normalize, device='cpu')
    stats = json.loads((resume_dir / 'normalization.json').read_text())
    vec_normalize.obs_rms.mean = np.array(stats['obs_mean'])
    vec_normalize.obs_rms.var = np.array(stats['obs_var'])
    vec_normalize.obs_rms.count = stats['obs_count']
    vec_normalize.ret_rms.mean = np.array(stats['ret_mean'])
    vec_normalize.ret_rms.var = np.array(stats['ret_var'])
    vec_normalize.ret_rms.count = stats['ret_count']
    return model


class HeldOutEvaluation:
    """Called by PPO after every environment step (a stable-baselines3 callback): every
    `cfg.eval_every` steps, `checkpoint` converts the policy, scores it on held-out episodes, appends
    the score to `out/learning_curve.jsonl` and writes `out/last`, `out/best` (when it improved) and
    the resume state."""

    def __init__(self, model, vec_normalize, task_name: str, cfg: TeacherConfig, seed: int, out: Path,
                 resume: bool = False):
        self.model, self.vec_normalize, self.cfg, self.seed, self.out = model, vec_normalize, cfg, seed, out
        self.env = DistillEnv(task_name)
        self.seeds = eval_seeds(cfg.eval_episodes)
        self.started = time.monotonic()
        # a resumed run replaces out/best only with a better checkpoint than the earlier stages' best
        self.best_return = -np.inf
        if resume and (out / 'best' / ckpt_io.SPEC).is_file():
            self.best_return = ckpt_io.load(out / 'best').metrics.get('eval', {}).get('mean_return', -np.inf)
        self.next_eval = model.num_timesteps + cfg.eval_every

    def __call__(self, locals_: dict, globals_: dict) -> bool:
        if self.model.num_timesteps >= self.next_eval:
            self.next_eval += self.cfg.eval_every
            self.checkpoint()
        return True  # go on training

    def checkpoint(self) -> ckpt_io.Checkpoint:
        model, out = self.model, self.out
        wall = time.monotonic() - self.started
        ckpt = to_checkpoint(model, self.vec_normalize, self.env, self.cfg, {}, self.seed, model.num_timesteps, wall)
        metrics = summarize(run_episodes(self.env, privileged_actor(ckpt), self.seeds))
        ckpt.metrics = {'eval': metrics, 'eval_seeds': [self.seeds[0], self.seeds[-1]]}
        model.logger.record('eval/mean_return', metrics['mean_return'])
        model.logger.record('eval/fall_rate', metrics['fall_rate'])
        with open(out / LEARNING_CURVE, 'a') as f:
            f.write(json.dumps({'steps': model.num_timesteps, 'wall_s': round(wall, 1), **metrics}) + '\n')
        ckpt_io.save(ckpt, out / 'last')
        if metrics['mean_return'] > self.best_return:
            self.best_return = metrics['mean_return']
            ckpt_io.save(ckpt, out / 'best')
        save_resume_state(out / 'resume', model, self.vec_normalize)
        return ckpt
