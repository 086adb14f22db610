"""The distillation job behind `distill-ros distill` and distill_node.

    data (dataset folder, or a rosbag2 bag replayed into one)
      -> stage 1 .. n (progressive: teacher -> intermediate(s) -> student, each from the previous)
      -> DAgger rounds on the final student (in-process, vectorized environments)
      -> OUT/student (the final checkpoint), OUT/summary.json, evaluation of every stage

Output folder:
    OUT/student/                final student checkpoint
    OUT/runs/<run>/best|last    per stage / DAgger round, with trainer state for --resume
    OUT/learning_curve.jsonl    one record per evaluation of every run
    OUT/tensorboard/            TensorBoard logs
    OUT/dagger/round<k>/        the data each DAgger round collected (datasets)
    OUT/summary.json            stages, DAgger rounds, evaluation
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill_ros.data.dataset import Dataset, DatasetError, load_dataset
from distill_ros.distill.config import DistillConfig, load_config
from distill_ros.distill.dagger import run_dagger
from distill_ros.distill.evaluate import eval_seeds, evaluate_checkpoint, summarize
from distill_ros.distill.run_files import LEARNING_CURVE, copy_checkpoint
from distill_ros.distill.trainer import describe, train_student, world
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.checkpoint import Checkpoint
from distill_ros.policies.mlp import parameter_count
from distill_ros.teachers import add_teacher_option, teacher_folder


def load_data(dataset: str | Path | None, bag: str | Path | None, out: Path, task: str | None,
              topics: str | None = None, log: Callable[[str], None] = print) -> Dataset:
    if (dataset is None) == (bag is None):
        raise ValueError('give exactly one of a dataset folder or a bag')
    if bag is not None:
        from distill_ros.data.bag import bag_to_dataset, topic_map
        from distill_ros.data.dataset import DatasetSpec
        from distill_ros.sim import DistillEnv
        folder = out / 'dataset'
        if not (folder / 'manifest.json').is_file():
            env = DistillEnv(task or 'cartpole')
            spec = DatasetSpec.for_env(env, teacher=True)
            stats = bag_to_dataset(bag, folder, spec, env.task.has_imu, topic_map(topics), progress=True)
            log(f'{bag} -> {folder}: {stats.episodes} episodes, {stats.samples} samples')
        dataset = folder
    data = load_dataset(dataset)
    for problem in data.problems:
        log(f'warning: {problem}')
    if len(data) == 0:
        raise DatasetError(f'{dataset} holds no complete episodes to train on')
    return data


def _check_job(data: Dataset, teacher: Checkpoint, cfg: DistillConfig, world_size: int) -> None:
    """Refuse a job that cannot run, before anything is trained."""
    task = data.spec.task
    if cfg.dagger.rounds and world_size > 1:
        raise ValueError('dagger.rounds > 0 under torchrun: run DAgger in one process (torchrun is for the '
                         'offline stages); set dagger.rounds: 0 or drop torchrun')
    if teacher.task and teacher.task != task:
        raise ValueError(f'teacher {teacher.path} was trained on task {teacher.task!r} but the data is of {task!r}')
    if cfg.dagger.rounds and not data.spec.privileged.size:
        raise ValueError(f'{data.folder} has no privileged state (a bag recorded without it), so DAgger rounds, '
                         f'which add simulator rollouts with privileged state to it, cannot aggregate onto it; '
                         f'set dagger.rounds: 0')


def _reporter(on_eval: Callable[[str, int, dict], None] | None, run: str) -> Callable[[int, dict], None] | None:
    """`train_student`'s on_eval for run `run`, from the job's (which also takes the run's name)."""
    return (lambda step, record: on_eval(run, step, record)) if on_eval else None


def _train_stages(data: Dataset, teacher: Checkpoint, cfg: DistillConfig, out: Path, summary: dict[str, Any],
                  resume: bool, progress: bool, log: Callable[[str], None],
                  on_eval: Callable[[str, int, dict], None] | None) -> Checkpoint:
    """Progressive distillation: teacher -> stage 1 -> ... -> the final student, each stage taught by
    the previous one (its `latent` the feature to match); one stage `offline` without stages."""
    stages = cfg.stage_students()
    current_teacher = teacher
    for i, student_cfg in enumerate(stages):
        run = 'offline' if len(stages) == 1 else f'stage{i + 1}'
        log(f'{run}: {describe(student_cfg)} from {"the teacher" if i == 0 else f"stage{i}"} on {len(data)} samples')
        student = train_student(data, current_teacher, cfg, out, run=run, student_cfg=student_cfg, resume=resume,
                                progress=progress, teacher_feature=None if i == 0 else 'latent',
                                on_eval=_reporter(on_eval, run))
        summary['stages'].append({'run': run, 'student': describe(student_cfg),
                                  'params': parameter_count(student.model),
                                  'checkpoint': str(out / 'runs' / run / 'best'), **student.metrics})
        current_teacher = student
    return student


def _evaluate(summary: dict[str, Any], task, teacher: Checkpoint, student: Checkpoint, cfg: DistillConfig,
              progress: bool) -> None:
    """summary['eval']: the teacher, every stage and (after DAgger) the final student on the held-out
    evaluation seeds, each with its ratio to the teacher's mean return."""
    from distill_ros.sim import DistillEnv
    env = DistillEnv(task)
    seeds = eval_seeds(cfg.eval.episodes)
    summary['eval'] = {'episodes': cfg.eval.episodes,
                       'teacher': summarize(evaluate_checkpoint(teacher, env, seeds, progress=progress))}
    for stage in summary['stages']:
        ck = ckpt_io.load(stage['checkpoint'])
        summary['eval'][stage['run']] = summarize(evaluate_checkpoint(ck, env, seeds, progress=progress))
    if cfg.dagger.rounds:
        summary['eval']['student'] = summarize(evaluate_checkpoint(student, env, seeds, progress=progress))
    t = summary['eval']['teacher']['mean_return']
    for row in summary['eval'].values():
        if isinstance(row, dict):
            row['ratio'] = row['mean_return'] / t if t else float('nan')


def run_distill(data: Dataset, teacher: Checkpoint, cfg: DistillConfig, out: str | Path, resume: bool = False,
                progress: bool = True, log: Callable[[str], None] = print,
                on_eval: Callable[[str, int, dict], None] | None = None) -> dict[str, Any]:
    """The whole job (module docstring); returns the summary, also written to OUT/summary.json."""
    ckpt_io.git_revision()  # the revision this run started from, for every checkpoint it writes
    out = Path(out)
    rank, world_size = world()
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if not resume and (out / LEARNING_CURVE).exists():
            (out / LEARNING_CURVE).unlink()
    _check_job(data, teacher, cfg, world_size)
    task = data.spec.load_task() if cfg.dagger.rounds or cfg.eval.episodes else None   # a task file: checked now
    summary: dict[str, Any] = {'task': data.spec.task,
                               **({'task_file': data.spec.task_file.to_json()} if data.spec.task_file else {}),
                               'teacher': str(teacher.path),
                               'teacher_params': parameter_count(teacher.model), 'dataset': str(data.folder),
                               'samples': len(data),
                               'episodes': len(data.episode_starts), 'config': cfg.to_dict(), 'stages': []}
    student = _train_stages(data, teacher, cfg, out, summary, resume, progress, log, on_eval)
    if cfg.dagger.rounds:
        def retrain(dagger_data, init, k):
            return train_dagger_round(dagger_data, teacher, cfg, out, init, k, resume=resume, progress=progress,
                                      on_eval=on_eval)
        student, rounds = run_dagger(task, teacher, student, data, cfg, out, retrain, progress=progress,
                                     log=log)
        summary['dagger'] = [dataclasses.asdict(r) for r in rounds]
    if rank == 0:
        copy_checkpoint(Path(student.path), out / 'student')
        student.path = out / 'student'
        summary['student'] = str(out / 'student')
        summary['student_params'] = parameter_count(student.model)
        if cfg.eval.episodes:
            _evaluate(summary, task, teacher, student, cfg, progress)
        (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    return summary


def train_dagger_round(data: Dataset, teacher: Checkpoint, cfg: DistillConfig, out: str | Path, init: Checkpoint,
                       k: int, resume: bool = False, progress: bool = True,
                       on_eval: Callable[[str, int, dict], None] | None = None) -> Checkpoint:
    """DAgger round `k`'s retraining: the student `init` continues on the aggregate `data` (all
    earlier data and round k's) for `dagger.steps_per_round` steps, as run `dagger<k>` in `out`.
    The final stage's student config is `cfg.student` (`stage_students()` ends with it)."""
    run = f'dagger{k}'
    return train_student(data, teacher, cfg, out, run=run, student_cfg=cfg.student, init=init,
                         steps=cfg.dagger.steps_per_round, resume=resume, progress=progress,
                         on_eval=_reporter(on_eval, run))


def parse_overrides(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """`--set SECTION.KEY=VALUE` options as {section: {key: value}} (values parsed as YAML)."""
    import yaml
    overrides: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, value = item.partition('=')
        section, dot, name = key.partition('.')
        if not sep or not dot:
            raise ValueError(f'--set {item!r}: expected SECTION.KEY=VALUE, e.g. train.steps=500')
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f'--set {item!r}: the value {value!r} is not valid YAML; expected e.g. train.steps=500 '
                             f'or student.sizes={{hidden: [32, 32]}}') from None
        if isinstance(parsed, str):   # YAML 1.1 reads 1e-4 as a string; a number is meant
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        overrides.setdefault(section, {})[name] = parsed
    return overrides


def cmd_distill(args: argparse.Namespace) -> int:
    import torch.distributed as dist
    cfg = load_config(args.config, parse_overrides(args.set))
    if int(os.environ.get('WORLD_SIZE', '1')) > 1 and not dist.is_initialized():
        import torch
        dist.init_process_group('nccl' if torch.cuda.is_available() else 'gloo')
    try:
        teacher = ckpt_io.load(args.teacher)
        out = Path(args.out)
        data = load_data(args.dataset, args.bag, out, args.task, args.topics)
        summary = run_distill(data, teacher, cfg, out, resume=args.resume, progress=not args.no_progress)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if world()[0] == 0 and 'eval' in summary:
        ev = summary['eval']
        t = ev['teacher']
        print(f"teacher ({summary['teacher_params']} parameters): {t['mean_return']:.1f} ± {t['ci95']:.1f}")
        for name, row in ev.items():
            if name not in ('teacher', 'episodes'):
                print(f"{name}: {row['mean_return']:.1f} ± {row['ci95']:.1f} (ratio {row['ratio']:.3f})")
    print(f'student checkpoint: {Path(args.out) / "student"}; summary: {Path(args.out) / "summary.json"}')
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from distill_ros.distill.dagger import collect_teacher_dataset
    teacher = ckpt_io.load(teacher_folder(args.teacher, args.task))
    data = collect_teacher_dataset(args.task, teacher, args.out, args.episodes, seed_base=args.seed, envs=args.envs,
                                   progress=not args.no_progress, teacher_noise=args.teacher_noise)
    print(f'{args.out}: {len(data.episode_starts)} episodes, {len(data)} samples of {args.task} teacher rollouts')
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register `distill-ros distill` and `distill-ros collect`."""
    c = sub.add_parser('collect', help='record teacher rollouts in-process into a dataset (no ROS needed)')
    c.add_argument('--task', default='cartpole')
    add_teacher_option(c)
    c.add_argument('--episodes', type=int, default=20)
    c.add_argument('--seed', type=int, default=0, help='seed of the first episode (episode i uses seed + i)')
    c.add_argument('--envs', type=int, default=4, help='environments stepped together')
    c.add_argument('--teacher-noise', type=float, default=1.0,
                   help="execute the teacher's action sampled from its Gaussian, std scaled by this (DART; labels "
                        'stay its mean); 0: its mean action (default 1.0, as the demo records)')
    c.add_argument('--out', required=True, help='dataset folder to create or append to')
    c.add_argument('--no-progress', action='store_true')
    c.set_defaults(func=cmd_collect)
    p = sub.add_parser('distill', help='distil a teacher into a small sensor-only student')
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--dataset', help='dataset folder (from recorder_node, bag2dataset or the demo)')
    src.add_argument('--bag', help='rosbag2 bag folder (MCAP or sqlite3), replayed into OUT/dataset first')
    p.add_argument('--teacher', required=True, help='teacher checkpoint folder')
    p.add_argument('--config', help='distillation YAML (default: config/distill/default.yaml)')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--task', help='task of the bag (default cartpole; datasets name their task)')
    p.add_argument('--topics', help='with --bag: YAML mapping streams to topics')
    p.add_argument('--set', action='append', metavar='SECTION.KEY=VALUE', help='override a config value')
    p.add_argument('--resume', action='store_true', help='continue an interrupted job in OUT')
    p.add_argument('--no-progress', action='store_true')
    p.set_defaults(func=cmd_distill)
