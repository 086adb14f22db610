"""`distill-ros demo`: the whole pipeline on one task, over real ROS 2 topics, in a few minutes.

  1. record   sim_teacher_record.launch.py's graph: the privileged teacher drives sim_node (lockstep)
              over topics; recorder_node builds a dataset (and a bag with --keep-bag)
  2. distil   the task config's losses (cartpole: behavioural cloning + logit (Gaussian KL) + feature
              matching), in-process; and the naive student (behavioural cloning on the current sensor
              reading only) to measure against
  3. DAgger   one round over topics, dagger.launch.py's graph: student_controller_node drives
              sim_node, teacher_node labels every visited state, recorder_node records; the student
              is retrained on all data
  4. deploy   sim_student.launch.py's graph: student_controller_node drives sim_node in real time
              (the robot-side path), recorder_node records the returns
  5. report   teacher vs students on the same held-out randomized episodes: table + plots

Each graph is started from its description in distill_ros/graphs.py, the one its launch file uses:
every node its own process, with the same parameter files, parameters and remappings as under
`ros2 launch`, in a private DDS domain on localhost, so the demo neither sees nor disturbs other
ROS 2 systems on the network.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from distill_ros.paths import share_dir
from distill_ros.procs import GraphProcesses


class Demo:
    def __init__(self, args: argparse.Namespace):
        from rich.console import Console
        self.args = args
        self.console = Console()
        self.out = Path(args.out)
        self.logs = self.out / 'logs'
        self.logs.mkdir(parents=True, exist_ok=True)
        self.config = share_dir() / 'config'
        # 0..101 keeps the DDS ports out of Linux's ephemeral range (ROS 2's advice)
        domain = args.domain_id if args.domain_id is not None else random.randint(60, 101)
        self.env = {**os.environ, 'ROS_DOMAIN_ID': str(domain), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
        os.environ.update({k: self.env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')})
        self.graphs: list[GraphProcesses] = []
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}
        self.losses = 'BC'   # the offline student's losses, named in the report
        self.console.print(f'[bold]distill_ros demo[/bold]: task {args.task}, output in {self.out} '
                           f'(ROS_DOMAIN_ID {domain}, localhost only; node logs in {self.logs})')

    # ------------------------------------------------------------------ processes
    def run_graph(self, graph: str, what: str, timeout: float, **arguments) -> None:
        """Start a graph of distill_ros/graphs.py as processes, exactly as its launch file starts it,
        show the recorder's progress on the `dataset` argument, and wait for the graph to end by itself (the
        simulator and the recorder finish their episodes; the rest is stopped with SIGINT)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        folder, episodes = Path(arguments['dataset']), arguments['episodes']
        graph_processes = GraphProcesses(graph, arguments, self.logs, env=self.env, tag=f'{folder.name}_')
        self.graphs.append(graph_processes)
        deadline = time.monotonic() + timeout
        with Progress(TextColumn('  {task.description}'), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=self.console, transient=True) as progress:
            bar = progress.add_task(what, total=episodes)
            while not graph_processes.finished():
                if time.monotonic() > deadline:
                    raise RuntimeError(f'{what}: not finished after {timeout:.0f} s; see {self.logs}')
                manifest = folder / 'manifest.json'
                if manifest.is_file():
                    try:
                        progress.update(bar, completed=len(json.loads(manifest.read_text())['episodes']))
                    except (json.JSONDecodeError, KeyError):
                        pass
                time.sleep(0.25)
        codes = graph_processes.stop()
        failed = {name: code for name, code in codes.items() if code != 0}
        # A node that ran its part and then did not exit within 10 s of the SIGINT was stopped as
        # `ros2 launch` stops it (SIGTERM, SIGKILL), its stack in its log: the graph's work is done
        # (every other node exited cleanly), so that is a warning, not a failed stage.
        slow = {name: code for name, code in failed.items() if graph_processes[name].forced}
        if slow and len(slow) == len(failed):
            self.console.print(f'  [yellow]warning[/yellow]: {", ".join(slow)} did not exit within 10 s of SIGINT '
                               f'and was stopped by force (status {slow}); where it was: '
                               f'{", ".join(str(graph_processes[n].log_path) for n in slow)}')
            failed = {}
        if failed:
            logs = '\n'.join(f'--- {name}\n{graph_processes[name].log()[-2000:]}' for name in failed)
            raise RuntimeError(f'{graph}: {failed} (exit status); see {self.logs}\n{logs}')

    def stop_all(self) -> None:
        for graph_processes in self.graphs:
            graph_processes.stop()
        self.graphs.clear()

    def step(self, title: str) -> float:
        self.console.rule(f'[bold]{title}')
        return time.monotonic()

    def done(self, name: str, since: float) -> None:
        self.timings[name] = time.monotonic() - since
        self.console.print(f'  done in {self.timings[name]:.0f} s')

    # ------------------------------------------------------------------ the pipeline
    def run(self) -> Path:
        from distill_ros.data.dataset import load_dataset
        from distill_ros.distill.config import load_config
        from distill_ros.distill.run_files import LEARNING_CURVE
        from distill_ros.distill.runner import run_distill
        from distill_ros.distill.seeds import DAGGER_SEED_BASE, EVAL_SEED_BASE
        from distill_ros.distill.trainer import concat_datasets, train_student
        from distill_ros.policies import checkpoint as ckpt_io
        from distill_ros.policies.teachers import shipped_teacher

        args = self.args
        task = args.task
        teacher_path = Path(args.teacher) if args.teacher else shipped_teacher(task)
        teacher = ckpt_io.load(teacher_path)
        # The distillation config is checked before anything runs: a bad one costs no recording.
        task_config = self.config / 'distill' / f'{task}.yaml'
        config = args.config or (task_config if task_config.is_file() else None)
        overrides = {'dagger': {'rounds': 0}, 'eval': {'episodes': 0}}
        if args.steps is not None:
            overrides.update(train={'steps': args.steps}, dagger={'rounds': 0, 'steps_per_round': args.steps})
        cfg = load_config(config, overrides)

        # 1. record
        t0 = self.step(f'1/5 record: teacher drives sim_node over ROS 2 topics ({args.episodes} episodes)')
        data_dir = self.out / 'data'
        # sim_teacher_record.launch.py's graph. Sampled teacher actions (its own Gaussian): the teacher
        # visits and labels states off its nominal path, which teaches the student to recover (DART;
        # docs/methods.md).
        self.run_graph('sim_teacher_record', 'recording teacher episodes',
                       timeout=60 + 30 * args.episodes, task=task, episodes=args.episodes, seed=args.seed,
                       dataset=str(data_dir), bag=str(self.out / 'bag') if args.keep_bag else '',
                       teacher_checkpoint=str(teacher_path), teacher_deterministic=False)
        data = load_dataset(data_dir)
        self.console.print(f'  dataset {data_dir}: {len(data.episode_starts)} episodes, {len(data)} samples'
                           + (f'; bag {self.out / "bag"}' if args.keep_bag else ''))
        self.done('record', t0)

        # 2. distil offline
        # the losses of the task's config: BC, and logit (Gaussian KL) and feature matching where weighted
        self.losses = ('BC' + ('+KL' if cfg.losses.kl.weight > 0 else '')
                       + ('+feature' if cfg.losses.feature.weight > 0 else ''))
        t0 = self.step(f'2/5 distil: {self.losses} ({cfg.student.type} on {cfg.student.history} steps), '
                       f'and the naive student')
        distill_dir = self.out / 'distill'
        run_distill(data, teacher, cfg, distill_dir, log=lambda s: self.console.print(f'  {s}'))
        offline = ckpt_io.load(distill_dir / 'student')
        # The naive student, for the report: behavioural cloning on the current sensor reading only
        # (no history, no past actions, no logit or feature matching, no DAgger), same size and data.
        self.console.print('  naive student: behavioural cloning on the current sensor reading only')
        naive_cfg = replace(cfg, losses=replace(cfg.losses, kl=replace(cfg.losses.kl, weight=0.0),
                                                feature=replace(cfg.losses.feature, weight=0.0)))
        naive = train_student(data, teacher, naive_cfg, distill_dir, run='naive', progress=False,
                              student_cfg=replace(cfg.student, history=1, past_actions=False))
        self.done('distil', t0)

        # 3. one DAgger round over topics
        t0 = self.step(f'3/5 DAgger: the student drives sim_node, the teacher labels ({args.dagger_episodes} '
                       f'episodes)')
        dagger_dir = self.out / 'dagger_round1'
        # dagger.launch.py's graph: the student answers each observation in lockstep, the teacher labels
        self.run_graph('dagger', 'student episodes, teacher labelling',
                       timeout=60 + 30 * args.dagger_episodes, task=task, student=str(distill_dir / 'student'),
                       episodes=args.dagger_episodes, seed=DAGGER_SEED_BASE + args.seed, dataset=str(dagger_dir),
                       teacher_checkpoint=str(teacher_path))
        aggregate = concat_datasets([data, load_dataset(dagger_dir)])
        self.console.print(f'  retraining on {len(aggregate)} aggregated samples')
        student = train_student(aggregate, teacher, cfg, distill_dir, run='dagger1', init=offline,
                                steps=cfg.dagger.steps_per_round)
        ckpt_io.save(student, self.out / 'student')
        self.done('dagger', t0)

        # 4. deploy over topics
        t0 = self.step(f'4/5 deploy: student_controller_node drives sim_node ({args.deploy_episodes} episodes)')
        deploy_dir = self.out / 'deploy'
        # sim_student.launch.py's graph, recording: the simulator in real time, the controller answering
        # each sample within about a millisecond, as the student was trained (a timer at the same rate
        # would add up to one step of latency)
        self.run_graph('sim_student', 'student episodes over topics',
                       timeout=60 + 2 * self.episode_seconds() * args.deploy_episodes, task=task,
                       checkpoint=str(self.out / 'student'), episodes=args.deploy_episodes, seed=EVAL_SEED_BASE,
                       dataset=str(deploy_dir), trigger='sensor')
        deployed = load_dataset(deploy_dir)
        topic_returns = [float(deployed.episode(i)['reward'].sum()) for i in range(len(deployed.episode_starts))]
        self.console.print(f'  returns over topics: {", ".join(f"{r:.0f}" for r in topic_returns)}')
        self.done('deploy', t0)

        # 5. report
        t0 = self.step(f'5/5 report: teacher vs students on {args.eval_episodes} held-out randomized episodes')
        report = self.report(teacher, {'naive student (BC, current reading only)': naive,
                                       f'student ({self.losses})': offline, 'student (+1 DAgger round)': student},
                             topic_returns, distill_dir / LEARNING_CURVE)
        self.done('report', t0)
        total = time.monotonic() - self.started
        self.console.print(f'[bold green]demo finished in {total / 60:.1f} min[/bold green]; report: {report}')
        return report

    def episode_seconds(self) -> float:
        """Wall time of a full-length episode in real-time mode."""
        from distill_ros.sim import DistillEnv
        env = DistillEnv(self.args.task)
        try:
            return env.dt * env.task.max_episode_steps
        finally:
            env.close()

    def report(self, teacher, students: dict, topic_returns: list[float], curve: Path) -> Path:
        from distill_ros.distill.report import evaluate_policies, write_report
        rows = evaluate_policies(self.args.task, teacher, students, self.args.eval_episodes)
        report_dir = self.out / 'report'
        path = write_report(rows, report_dir, [curve], title=f'distill_ros demo on {self.args.task}', notes=(
            'The naive student is what distillation is measured against: the same hidden layers trained on the '
            'same recording by behavioural cloning of the current sensor reading alone (no history, no past '
            'actions, no logit or feature matching, no DAgger). The distilled students below it see a sensor '
            'history and match the teacher\'s actions (' + self.losses + '); the last one also learned on the '
            'states it visits itself (DAgger).'))
        with open(path, 'a') as f:
            f.write(f'\n## Over ROS 2 topics\n\nThe final student drove sim_node (real-time mode) through '
                    f'student_controller_node for {len(topic_returns)} episodes: returns '
                    f'{", ".join(f"{r:.0f}" for r in topic_returns)} (mean {np.mean(topic_returns):.1f}).\n\n'
                    f'Stage times: ' + ', '.join(f'{k} {v:.0f} s' for k, v in self.timings.items()) + '.\n')
        return path

    def close(self) -> None:
        self.stop_all()


# What a demo writes in OUT; `logs` is left out (a failed run may leave only logs behind).
STAGE_OUTPUTS = ('data', 'bag', 'distill', 'dagger_round1', 'student', 'deploy', 'report')


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    earlier = [name for name in STAGE_OUTPUTS if (out / name).exists()]
    if earlier and not args.overwrite:
        # The recorder continues a dataset it finds: a second run into the same folder would record
        # into the first run's datasets and report on both.
        raise ValueError(f'{out} holds an earlier demo\'s outputs ({", ".join(earlier)}); a new run would add to its '
                         f'recordings; expected a new --out folder, or --overwrite to replace them')
    for name in earlier:
        shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()
    demo = Demo(args)
    try:
        demo.run()
    except RuntimeError as exc:
        demo.console.print(f'[bold red]demo failed:[/bold red] {exc}')
        return 1
    finally:
        demo.close()
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('demo', help='the whole pipeline over ROS 2 topics on a built-in task (minutes)')
    p.add_argument('--task', default='cartpole', help='cartpole (default, minutes), hopper or ant (each has a '
                   'shipped teacher; longer), or a task YAML path (with --teacher)')
    p.add_argument('--teacher', help='teacher checkpoint (default: the shipped teacher of the task)')
    p.add_argument('--config', help='distillation YAML (default: config/distill/<task>.yaml where there is one, '
                   'else config/distill/default.yaml)')
    p.add_argument('--out', default='demo_out', help='output folder (default: demo_out)')
    p.add_argument('--overwrite', action='store_true', help='replace the outputs of an earlier demo in --out (without '
                   'it, a folder that holds them is refused)')
    p.add_argument('--episodes', type=int, default=10, help='teacher episodes to record')
    p.add_argument('--dagger-episodes', type=int, default=4, help='episodes of the DAgger round')
    p.add_argument('--deploy-episodes', type=int, default=2, help='episodes the deployed student drives')
    p.add_argument('--eval-episodes', type=int, default=20, help='held-out episodes in the report')
    p.add_argument('--steps', type=int, help='optimizer steps of each training (offline, naive, DAgger round; '
                   'default: the distillation config)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--keep-bag', action='store_true', help='also write the recording as a rosbag2 (MCAP) bag')
    p.add_argument('--domain-id', type=int, help='ROS_DOMAIN_ID for the demo (default: a random free-ish one)')
    p.set_defaults(func=cmd_demo)
