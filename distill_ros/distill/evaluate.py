"""Rollouts of a policy on held-out randomized episodes (fixed seeds, sensor noise and latency on)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from distill_ros.distill.seeds import EVAL_SEED_BASE
from distill_ros.sim import PRIVILEGED, SENSOR, DistillEnv


@dataclass
class EpisodeResult:
    seed: int
    ret: float
    length: int
    terminated: bool
    tracking_error: np.ndarray | None = None   # a command task's per-step (|c_xy - v_xy|, |c_yaw - w_z|)


def eval_seeds(n: int, base: int = EVAL_SEED_BASE) -> list[int]:
    """The held-out evaluation episodes' seeds (seeds.py: no training, collection or validation
    episode is drawn from them)."""
    return list(range(base, base + n))


def run_episodes(env: DistillEnv, act: Callable[[dict[str, np.ndarray]], np.ndarray], seeds: Sequence[int],
                 reset_policy: Callable[[], None] | None = None, progress: bool = False) -> list[EpisodeResult]:
    """Run one episode per seed; `act` maps the observation dict to an action."""
    results = []
    iterator = seeds
    if progress:
        from tqdm import tqdm
        iterator = tqdm(seeds, desc=f'evaluating on {env.task.name}', unit='episode', leave=False, disable=None)
    for seed in iterator:
        obs, _ = env.reset(seed=int(seed))
        if reset_policy is not None:
            reset_policy()
        total, steps, terminated, truncated, tracking = 0.0, 0, False, False, []
        while not (terminated or truncated):
            obs, reward, terminated, truncated, info = env.step(act(obs))
            total += reward
            steps += 1
            if 'tracking_error' in info:
                tracking.append(info['tracking_error'])
        results.append(EpisodeResult(int(seed), total, steps, terminated,
                                     np.array(tracking) if tracking else None))
    return results


def privileged_actor(checkpoint) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    return lambda obs: checkpoint.act(obs[PRIVILEGED])


class PolicyActor:
    """Runs any checkpoint in `run_episodes`: a privileged teacher on `privileged_obs`; a sensor
    policy with its memory (the `HistoryBuffer` the student controller uses, or a recurrent
    student's state), previous actions included when the student was trained with them. Pass
    `actor` as `act` and `actor.reset` as `reset_policy`."""

    def __init__(self, checkpoint):
        from distill_ros.policies.actor import Actor
        self.checkpoint = checkpoint
        self.key = PRIVILEGED if checkpoint.obs_source == 'privileged' else SENSOR
        self.actor = Actor(checkpoint)

    def reset(self) -> None:
        self.actor.reset()

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        ckpt = self.checkpoint
        action = np.clip(self.actor.act(obs[self.key][None])[0], ckpt.action_low, ckpt.action_high)
        self.actor.executed((0,), action[None])
        return action


def evaluate_checkpoint(checkpoint, env: DistillEnv, seeds: Sequence[int],
                        progress: bool = False) -> list[EpisodeResult]:
    actor = PolicyActor(checkpoint)
    return run_episodes(env, actor, seeds, reset_policy=actor.reset, progress=progress)


def summarize(results: Sequence[EpisodeResult]) -> dict[str, float]:
    returns = np.array([r.ret for r in results])
    half_width = 1.96 * returns.std(ddof=1) / np.sqrt(len(returns)) if len(returns) > 1 else float('nan')
    return {'episodes': len(results), 'mean_return': float(returns.mean()), 'std_return': float(returns.std()),
            'ci95': float(half_width), 'mean_length': float(np.mean([r.length for r in results])),
            'fall_rate': float(np.mean([r.terminated for r in results])), **tracking_summary(results)}


def tracking_summary(results: Sequence[EpisodeResult]) -> dict[str, float]:
    """A velocity-command task's tracking error over every policy step of every episode: mean and
    95th percentile of |c_xy - v_xy| (m/s) and |c_yaw - w_z| (rad/s), base frame. Empty for a task
    without a command."""
    errors = [r.tracking_error for r in results if r.tracking_error is not None]
    if not errors:
        return {}
    steps = np.concatenate(errors)
    return {'lin_vel_error_mean': float(steps[:, 0].mean()), 'lin_vel_error_p95': float(np.percentile(steps[:, 0], 95)),
            'yaw_rate_error_mean': float(steps[:, 1].mean()),
            'yaw_rate_error_p95': float(np.percentile(steps[:, 1], 95))}
