"""In-process data collection over several environments stepped together, and DAgger.

`collect_episodes` runs the executing policy (the teacher with probability `beta` at every step,
otherwise the student) and has the teacher label every visited state; each finished episode is
written as a dataset shard, exactly the fields the live recorder writes. With `student=None` (or
beta 1) it is plain teacher data collection. `Collection` is the pool of environments and the
episodes in flight on them; every policy acts through an `Actor`, which keeps its memory.

`run_dagger` (Ross et al. 2011): round k collects with beta_k = beta * beta_decay**k, aggregates
the new episodes with all earlier data, and continues training the student on the aggregate.
Round k's episodes have the seeds `seeds.dagger_seeds(train.seed, k, ...)`.
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
from distill_ros.distill.labels import policy_std
from distill_ros.distill.seeds import dagger_seeds
from distill_ros.policies.actor import Actor
from distill_ros.policies.checkpoint import Checkpoint
from distill_ros.sim import PRIVILEGED, SENSOR, DistillEnv, TaskSpec
from distill_ros.stamps import NS_PER_S

# The fields of a collected episode, in the order the live recorder writes them.
EPISODE_FIELDS = ('sensor_obs', 'privileged_obs', 'action', 'reward', 'terminated', 'truncated', 'stamp_ns',
                  'teacher_action', 'teacher_mean', 'teacher_std')


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


@dataclass
class Episode:
    """The episode in flight on one environment: its observation now and the rows so far."""

    seed: int
    obs: dict[str, np.ndarray]
    info: dict
    rows: dict[str, list] = field(default_factory=lambda: {k: [] for k in EPISODE_FIELDS})
    ret: float = 0.0
    t: int = 0


class Collection:
    """Episodes (one per seed) on a pool of environments stepped together: the teacher labels every
    state; with probability `beta` its action executes, else the student's (module docstring).
    Each finished episode goes to `writer`; a new seed takes its environment."""

    def __init__(self, task: str | TaskSpec, teacher: Checkpoint, seeds: Sequence[int], writer: DatasetWriter,
                 student: Checkpoint | None, beta: float, envs: int, mix_seed: int, max_episode_steps: int,
                 meta: dict, teacher_noise: float):
        self.pool = [DistillEnv(task) for _ in range(min(envs, len(seeds)))]
        teacher.check_env(self.pool[0])
        if student is not None:
            student.check_env(self.pool[0])
        self.task = self.pool[0].task.name   # `task` may be a TaskSpec (a task file): episodes record its name
        self.teacher, self.student, self.writer, self.meta = teacher, student, writer, meta
        self.beta, self.max_episode_steps, self.teacher_noise = beta, max_episode_steps, teacher_noise
        self.rng = np.random.default_rng(mix_seed)
        self.queue = list(seeds)
        self.stats = CollectStats()
        self.episodes: list[Episode | None] = [None] * len(self.pool)
        self.teacher_actor = Actor(teacher, len(self.pool))
        self.student_actor = Actor(student, len(self.pool)) if student is not None and beta < 1.0 else None
        self.teacher_key = PRIVILEGED if teacher.obs_source == 'privileged' else SENSOR
        self.teacher_std = policy_std(teacher.model).numpy()   # σ*: the teacher is fixed while it collects

    def start(self, i: int) -> None:
        """Environment i starts the next seed's episode (or idles when none is left)."""
        if not self.queue:
            self.episodes[i] = None
            return
        seed = int(self.queue.pop(0))
        obs, info = self.pool[i].reset(seed=seed)
        self.teacher_actor.reset(i)
        if self.student_actor is not None:
            self.student_actor.reset(i)  # the student's memory (window or state) starts with the episode
        self.episodes[i] = Episode(seed, obs, info)

    def actions(self, active: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """The teacher's (mean μ*, std σ*, executed action a*) and the student's action on the active
        environments' current observations."""
        teacher = self.teacher
        t_mean = self.teacher_actor.act(np.stack([self.episodes[i].obs[self.teacher_key] for i in active]), active)
        t_std = np.broadcast_to(self.teacher_std, t_mean.shape)
        noise = self.teacher_noise
        t_act = t_mean + noise * t_std * self.rng.standard_normal(t_mean.shape) if noise else t_mean
        t_act = np.clip(t_act, teacher.action_low, teacher.action_high)
        s_act = None
        if self.student_actor is not None:
            # The student runs every step, also when the teacher's action is executed, so its
            # memory follows the episode as it would if it acted alone.
            s_act = np.clip(self.student_actor.act(np.stack([self.episodes[i].obs[SENSOR] for i in active]), active),
                            self.student.action_low, self.student.action_high)
        return t_mean, t_std, t_act, s_act

    def step(self) -> None:
        """One step of every active environment; finished episodes are written and replaced."""
        active = [i for i, e in enumerate(self.episodes) if e is not None]
        t_mean, t_std, t_act, s_act = self.actions(active)
        for j, i in enumerate(active):
            episode, env = self.episodes[i], self.pool[i]
            use_teacher = s_act is None or self.rng.random() < self.beta
            action = t_act[j] if use_teacher else s_act[j]
            if use_teacher:
                self.stats.teacher_steps += 1
            else:
                self.stats.student_steps += 1
            self.teacher_actor.executed((i,), action[None])
            if self.student_actor is not None:
                self.student_actor.executed((i,), action[None])
            rows = episode.rows
            rows['sensor_obs'].append(episode.obs[SENSOR])
            rows['privileged_obs'].append(episode.obs[PRIVILEGED])
            rows['stamp_ns'].append(int(round(env.sim_time * NS_PER_S)))
            obs, reward, terminated, truncated, _ = env.step(action)
            episode.t += 1
            if self.max_episode_steps and episode.t >= self.max_episode_steps and not terminated:
                truncated = True
            for k, v in (('action', action), ('reward', reward), ('terminated', terminated), ('truncated', truncated),
                         ('teacher_action', t_act[j]), ('teacher_mean', t_mean[j]), ('teacher_std', t_std[j])):
                rows[k].append(v)
            episode.ret += reward
            episode.obs = obs
            if terminated or truncated:
                self.finish(i, bool(terminated))

    def finish(self, i: int, terminated: bool) -> None:
        """Write environment i's finished episode and start the next one there."""
        episode = self.episodes[i]
        arrays = {k: np.asarray(v) for k, v in episode.rows.items()}
        self.writer.write_episode(arrays, {'task': self.task, 'seed': episode.seed,
                                           'latency_steps': int(episode.info['latency_steps']),
                                           'dynamics': episode.info['dynamics'], 'complete': True,
                                           'beta': self.beta, **self.meta})
        self.stats.episodes += 1
        self.stats.samples += len(arrays['reward'])
        self.stats.results.append(EpisodeResult(episode.seed, episode.ret, episode.t, terminated))
        self.start(i)

    def close(self) -> None:
        for env in self.pool:
            env.close()


def collect_episodes(task: str | TaskSpec, teacher: Checkpoint, seeds: Sequence[int], writer: DatasetWriter,
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
    collection = Collection(task, teacher, seeds, writer, student, beta, envs, mix_seed, max_episode_steps,
                            meta or {}, teacher_noise)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(seeds), desc=f'collecting {collection.task} (beta {beta:.2f})', unit='episode',
                   leave=False, disable=None)
    for i in range(len(collection.pool)):
        collection.start(i)
    while any(e is not None for e in collection.episodes):
        done = collection.stats.episodes
        collection.step()
        if bar is not None and collection.stats.episodes > done:
            bar.update(collection.stats.episodes - done)
            bar.set_postfix(mean_return=f'{collection.stats.mean_return:.1f}')
    if bar is not None:
        bar.close()
    collection.close()
    return collection.stats


def episode_returns(data: Dataset) -> np.ndarray:
    """The return of each episode of `data`."""
    if not len(data):
        return np.full(1, np.nan)
    return np.add.reduceat(np.asarray(data.arrays['reward'], dtype=np.float64), data.episode_starts)


def dataset_spec(task: str | TaskSpec) -> DatasetSpec:
    env = DistillEnv(task)
    try:
        return DatasetSpec.for_env(env, teacher=True)
    finally:
        env.close()


def collect_teacher_dataset(task: str | TaskSpec, teacher: Checkpoint, out: str | Path, episodes: int,
                            seed_base: int = 0, envs: int = 4, progress: bool = True,
                            teacher_noise: float = 0.0) -> Dataset:
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


def run_dagger(task: str | TaskSpec, teacher: Checkpoint, student: Checkpoint, base: Dataset, cfg: DistillConfig,
               out: str | Path, train: Callable[..., Checkpoint], progress: bool = True,
               log: Callable[[str], None] = print) -> tuple[Checkpoint, list[DaggerRound]]:
    """`cfg.dagger.rounds` rounds of collect-with-mixing on `task` (a built-in name, or the TaskSpec of the
    dataset's task file: `DatasetSpec.load_task`), aggregate, retrain (`train(data, init, round)`)."""
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
        seeds = dagger_seeds(cfg.train.seed, k, d.episodes_per_round)
        already = writer.episodes   # resume: a finished round is not collected twice
        stats = CollectStats(episodes=0)
        if already < d.episodes_per_round:
            stats = collect_episodes(task, teacher, seeds[already:], writer, student=who, beta=beta, envs=d.envs,
                                     mix_seed=seeds[0],
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
        # One more round scores the last student the same way; its episodes count in the budget. Its
        # folder names the rounds before it, so a job resumed with more rounds scores its own last
        # student instead of reusing an earlier job's final episodes.
        stats, collected = collect(d.rounds, 0.0, student, f'final_after_round{d.rounds}')
        rounds.append(DaggerRound(d.rounds + 1, 0.0, stats.episodes, len(collected), stats.student_steps, 0,
                                  float(episode_returns(collected).mean())))
        best_return, best_round, student = max(scored, key=lambda s: s[0])
        which = 'the offline student' if best_round == 0 else f'the student trained after round {best_round}'
        log(f'DAgger keeps {which}: mean return {best_return:.1f} acting alone on its own round\'s episodes '
            f'(scores {", ".join(f"{r:.0f}" for r, _, _ in scored)})')
    return student, rounds
