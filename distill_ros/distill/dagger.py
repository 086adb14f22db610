"""In-process data collection over several environments stepped together, and DAgger.

`collect_episodes` runs the executing policy (the teacher with probability `beta` at every step,
otherwise the student) and has the teacher label every visited state; each finished episode is
written as a dataset shard, exactly the fields the live recorder writes. With `student=None` (or
beta 1) it is plain teacher data collection.

`run_dagger` (Ross et al. 2011): round k collects with beta_k = beta * beta_decay**k, aggregates
the new episodes with all earlier data, and continues training the student on the aggregate.
The same loop over ROS topics is dagger.launch.py (student_controller drives sim_node,
teacher_node labels, recorder_node records).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distill_ros.data.dataset import Dataset, DatasetSpec, DatasetWriter, load_dataset
from distill_ros.distill.config import DistillConfig
from distill_ros.distill.evaluate import EpisodeResult
from distill_ros.policies.actor import Actor
from distill_ros.policies.checkpoint import Checkpoint
from distill_ros.sim import PRIVILEGED, SENSOR, DistillEnv

# Seeds of collected training episodes: below evaluate.EVAL_SEED_BASE, apart from teacher training's.
DAGGER_SEED_BASE = 500_000


@dataclass
class CollectStats:
    episodes: int = 0
    samples: int = 0
    teacher_steps: int = 0
    student_steps: int = 0
    results: list[EpisodeResult] = field(default_factory=list)

    @property
    def mean_return(self) -> float:
        return float(np.mean([r.ret for r in self.results])) if self.results else float('nan')


def collect_episodes(task: str, teacher: Checkpoint, seeds: Sequence[int], writer: DatasetWriter,
                     student: Checkpoint | None = None, beta: float = 1.0, envs: int = 4, mix_seed: int = 0,
                     max_episode_steps: int = 0, progress: bool = True, meta: dict | None = None,
                     teacher_noise: float = 0.0) -> CollectStats:
    """Roll out episodes (one per seed) on up to `envs` environments at once; write each to `writer`.

    `teacher_noise` > 0 executes the teacher's action sampled from its Gaussian with the standard
    deviation scaled by this factor (as teacher_node with `deterministic: false`): the teacher then
    visits and labels states off its own path, which teaches the student to recover (DART,
    Laskey et al. 2017). Labels are always the teacher's mean."""
    if student is None and beta < 1.0:
        raise ValueError('beta < 1 needs a student to execute')
    pool = [DistillEnv(task) for _ in range(min(envs, len(seeds)))]
    teacher.check_env(pool[0])
    if student is not None:
        student.check_env(pool[0])
    rng = np.random.default_rng(mix_seed)
    queue = list(seeds)
    stats = CollectStats()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(queue), desc=f'collecting {task} (beta {beta:.2f})', unit='episode', leave=False,
                   disable=None)
    slots: list[dict | None] = [None] * len(pool)
    teacher_actor = Actor(teacher, len(pool))
    student_actor = Actor(student, len(pool)) if student is not None and beta < 1.0 else None
    t_key = PRIVILEGED if teacher.obs_source == 'privileged' else SENSOR

    def start(i: int) -> None:
        if not queue:
            slots[i] = None
            return
        seed = int(queue.pop(0))
        obs, info = pool[i].reset(seed=seed)
        teacher_actor.reset(i)
        if student_actor is not None:
            student_actor.reset(i)  # the student's memory (window or state) starts with the episode
        slots[i] = {'seed': seed, 'obs': obs, 'info': info, 'rows': {k: [] for k in
                    ('sensor_obs', 'privileged_obs', 'action', 'reward', 'terminated', 'truncated', 'stamp_ns',
                     'teacher_action', 'teacher_mean', 'teacher_std')}, 'ret': 0.0, 't': 0}

    for i in range(len(pool)):
        start(i)
    while any(s is not None for s in slots):
        active = [i for i, s in enumerate(slots) if s is not None]
        t_mean = teacher_actor.act(np.stack([slots[i]['obs'][t_key] for i in active]), active)
        t_std = np.broadcast_to(teacher.model.log_std.detach().exp().numpy(), t_mean.shape)
        t_act = t_mean + teacher_noise * t_std * rng.standard_normal(t_mean.shape) if teacher_noise else t_mean
        t_act = np.clip(t_act, teacher.action_low, teacher.action_high)
        s_act = None
        if student_actor is not None:
            # The student runs every step, also when the teacher's action is executed, so its
            # memory follows the episode as it would if it acted alone.
            s_act = np.clip(student_actor.act(np.stack([slots[i]['obs'][SENSOR] for i in active]), active),
                            student.action_low, student.action_high)
        for j, i in enumerate(active):
            slot, env = slots[i], pool[i]
            use_teacher = s_act is None or rng.random() < beta
            action = t_act[j] if use_teacher else s_act[j]
            if use_teacher:
                stats.teacher_steps += 1
            else:
                stats.student_steps += 1
            teacher_actor.executed((i,), action[None])
            if student_actor is not None:
                student_actor.executed((i,), action[None])
            rows = slot['rows']
            rows['sensor_obs'].append(slot['obs'][SENSOR])
            rows['privileged_obs'].append(slot['obs'][PRIVILEGED])
            rows['stamp_ns'].append(int(round(env.sim_time * 1e9)))
            obs, reward, terminated, truncated, _ = env.step(action)
            slot['t'] += 1
            if max_episode_steps and slot['t'] >= max_episode_steps and not terminated:
                truncated = True
            for k, v in (('action', action), ('reward', reward), ('terminated', terminated), ('truncated', truncated),
                         ('teacher_action', t_act[j]), ('teacher_mean', t_mean[j]), ('teacher_std', t_std[j])):
                rows[k].append(v)
            slot['ret'] += reward
            slot['obs'] = obs
            if terminated or truncated:
                arrays = {k: np.asarray(v) for k, v in rows.items()}
                info = slot['info']
                writer.write_episode(arrays, {'task': task, 'seed': slot['seed'],
                                              'latency_steps': int(info['latency_steps']),
                                              'dynamics': info['dynamics'], 'complete': True, 'beta': beta,
                                              **(meta or {})})
                stats.episodes += 1
                stats.samples += len(arrays['reward'])
                stats.results.append(EpisodeResult(slot['seed'], slot['ret'], slot['t'], bool(terminated)))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(mean_return=f'{stats.mean_return:.1f}')
                start(i)
    if bar is not None:
        bar.close()
    for env in pool:
        env.close()
    return stats


def episode_returns(data: Dataset) -> np.ndarray:
    """The return of each episode of `data`."""
    if not len(data):
        return np.full(1, np.nan)
    return np.add.reduceat(np.asarray(data.arrays['reward'], dtype=np.float64), data.episode_starts)


def dataset_spec(task: str) -> DatasetSpec:
    env = DistillEnv(task)
    try:
        return DatasetSpec.for_env(env, teacher=True)
    finally:
        env.close()


def collect_teacher_dataset(task: str, teacher: Checkpoint, out: str | Path, episodes: int, seed_base: int = 0,
                            envs: int = 4, progress: bool = True, teacher_noise: float = 0.0) -> Dataset:
    """Teacher rollouts (the fast in-process equivalent of sim + teacher + recorder nodes)."""
    writer = DatasetWriter(out, dataset_spec(task))
    collect_episodes(task, teacher, list(range(seed_base, seed_base + episodes)), writer, envs=envs,
                     progress=progress, meta={'source': 'teacher', 'teacher_noise': teacher_noise},
                     mix_seed=seed_base, teacher_noise=teacher_noise)
    return load_dataset(out)


@dataclass
class DaggerRound:
    round: int
    beta: float
    episodes: int
    samples: int
    student_steps: int
    teacher_steps: int
    collect_return: float


def run_dagger(task: str, teacher: Checkpoint, student: Checkpoint, base: Dataset, cfg: DistillConfig,
               out: str | Path, train: Callable[..., Checkpoint], progress: bool = True,
               log: Callable[[str], None] = print) -> tuple[Checkpoint, list[DaggerRound]]:
    """`cfg.dagger.rounds` rounds of collect-with-mixing, aggregate, retrain (`train(data, init, round)`)."""
    from distill_ros.distill.trainer import concat_datasets
    d = cfg.dagger
    out = Path(out)
    spec = base.spec
    parts = [base]
    rounds = []
    scored: list[tuple[float, int, Checkpoint]] = []   # (mean return acting alone, round, student)

    def collect(k: int, beta: float, who: Checkpoint, name: str) -> tuple[CollectStats, Dataset]:
        folder = out / 'dagger' / name
        writer = DatasetWriter(folder, spec)
        start = DAGGER_SEED_BASE + 10_000 * cfg.train.seed + 1000 * k
        already = writer.episodes   # resume: a finished round is not collected twice
        stats = CollectStats(episodes=0)
        if already < d.episodes_per_round:
            stats = collect_episodes(task, teacher, list(range(start + already, start + d.episodes_per_round)),
                                     writer, student=who, beta=beta, envs=d.envs, mix_seed=start,
                                     max_episode_steps=d.max_episode_steps, progress=progress,
                                     meta={'source': 'dagger', 'round': k + 1})
        collected = load_dataset(folder)
        if beta == 0.0:   # the student acted alone: its round's returns score it (on training seeds)
            scored.append((episode_returns(collected).mean(), k, who))
        return stats, collected

    for k in range(d.rounds):
        beta = d.beta * d.beta_decay ** k
        stats, collected = collect(k, beta, student, f'round{k + 1}')
        parts.append(collected)
        data = concat_datasets(parts)
        rounds.append(DaggerRound(k + 1, beta, stats.episodes, len(parts[-1]), stats.student_steps,
                                  stats.teacher_steps, float(episode_returns(collected).mean())))
        log(f'DAgger round {k + 1}: beta {beta:.3f}, {len(collected.episode_starts)} episodes '
            f'(student acted {stats.student_steps} steps, mean return {rounds[-1].collect_return:.1f}); '
            f'training on {len(data)} aggregated samples')
        student = train(data, student, k + 1)
    if d.keep == 'best' and d.rounds:
        # One more round scores the last student the same way; its episodes count in the budget.
        stats, collected = collect(d.rounds, 0.0, student, 'final')
        rounds.append(DaggerRound(d.rounds + 1, 0.0, stats.episodes, len(collected), stats.student_steps, 0,
                                  float(episode_returns(collected).mean())))
        best_return, best_round, student = max(scored, key=lambda s: s[0])
        which = 'the offline student' if best_round == 0 else f'the student trained after round {best_round}'
        log(f'DAgger keeps {which}: mean return {best_return:.1f} acting alone on its own round\'s episodes '
            f'(scores {", ".join(f"{r:.0f}" for r, _, _ in scored)})')
    return student, rounds
