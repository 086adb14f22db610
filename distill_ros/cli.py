"""The `distill-ros` command."""
from __future__ import annotations

import argparse
import os
import sys


def cmd_tasks(args: argparse.Namespace) -> int:
    """List the built-in tasks, or show one task's observation and action layout."""
    from rich.console import Console
    from rich.table import Table

    from distill_ros.sim import DistillEnv, load_task, task_names

    console = Console()
    if not args.task:
        table = Table(title='built-in tasks (config/tasks/)')
        for column in ('task', 'model', 'physics ms', 'decimation', 'policy Hz', 'episode steps', 'sensor_obs',
                       'privileged_obs', 'actions'):
            table.add_column(column)
        for name in task_names():
            task = load_task(name)
            env = DistillEnv(task)
            model = task.env_id or task.menagerie or os.path.basename(task.model_file)
            table.add_row(name, model, f'{env.physics_timestep * 1e3:g}', str(env.decimation), f'{1 / env.dt:.0f}',
                          str(task.max_episode_steps), str(env.sensor_spec.size), str(env.privileged_spec.size),
                          str(len(env.action_names)))
            env.close()
        console.print(table)
        console.print('`distill-ros tasks NAME` shows a task\'s fields; config/tasks/NAME.yaml describes it.')
        return 0
    env = DistillEnv(args.task)
    for title, spec in (('sensor_obs (student)', env.sensor_spec), ('privileged_obs (teacher)', env.privileged_spec)):
        table = Table(title=f'{env.task.name}: {title}, {spec.size} values')
        table.add_column('field')
        table.add_column('size', justify='right')
        table.add_column('elements')
        for f in spec.fields:
            table.add_row(f.name, str(f.size), ', '.join(f.elements))
        console.print(table)
    console.print(f'actions ({len(env.action_names)}): {", ".join(env.action_names)}; '
                  f'bounds {env.action_space.low.tolist()} .. {env.action_space.high.tolist()}')
    console.print(f'physics timestep {env.physics_timestep * 1e3:g} ms x decimation {env.decimation} = policy period '
                  f'{env.dt * 1e3:g} ms ({1 / env.dt:g} Hz)')
    env.close()
    return 0


def cmd_train_teacher(args: argparse.Namespace) -> int:
    """Train a privileged teacher with PPO; checkpoints land in OUT/best and OUT/last."""
    from distill_ros.teachers.train import load_teacher_config, train_teacher

    overrides = {}
    if args.steps is not None:
        overrides['total_steps'] = args.steps
    cfg = load_teacher_config(args.task, args.config, overrides)
    ckpt = train_teacher(args.task, args.out, cfg, seed=args.seed, resume=args.resume, progress=not args.no_progress)
    evaluation = ckpt.metrics.get('eval', {})
    print(f'teacher for {args.task}: mean return {evaluation.get("mean_return", float("nan")):.1f} '
          f'over {evaluation.get("episodes", 0)} held-out episodes; checkpoint {ckpt.path}')
    return 0


def cmd_import_teacher(args: argparse.Namespace) -> int:
    """Convert an ONNX, TorchScript or stable-baselines3 PPO teacher into a checkpoint folder."""
    from distill_ros.paths import load_user_json, read_user_text
    from distill_ros.policies import checkpoint as ckpt_io
    from distill_ros.policies.mlp import parameter_count
    from distill_ros.sim import DistillEnv
    from distill_ros.teachers.importers import import_teacher

    env = DistillEnv(args.task)
    names = None
    if args.input_names:
        names = [line.strip() for line in read_user_text(args.input_names, '--input-names file').splitlines()
                 if line.strip()]
    outputs = list(_contract(args).joints) if args.contract else None
    if args.output_names and args.contract:
        raise ValueError('give --output-names or --contract (whose joints name the outputs), not both')
    if args.output_names:
        outputs = [line.strip() for line in read_user_text(args.output_names, '--output-names file').splitlines()
                   if line.strip()]
    kwargs: dict = {}
    if args.kind in ('onnx', 'torchscript'):
        kwargs['action_std'] = args.action_std
        if args.kind == 'torchscript':
            kwargs['trust_code'] = args.trust_code
        elif args.output:
            kwargs['output'] = args.output
    else:
        kwargs['activation'] = args.activation
        if args.normalization:
            stats = load_user_json(args.normalization, '--normalization file')
            if not isinstance(stats, dict) or not {'mean', 'var'} <= set(stats):
                raise ValueError(f'--normalization file {args.normalization}: expected '
                                 f'{{"mean": [...], "var": [...]}}, got {str(stats)[:80]}')
            kwargs['obs_mean'], kwargs['obs_var'] = stats['mean'], stats['var']
    ckpt = import_teacher(args.kind, args.policy, env, names, outputs, **kwargs)
    ckpt_io.save(ckpt, args.out)
    if ckpt.provenance.get('graph'):
        runs_as = ('an ONNX graph in onnxruntime' + ('' if ckpt.model.batched else
                                                     ', one state at a time (the export fixed its batch size)') +
                   f'; {len(ckpt.model.feature_names)} features (latent: {ckpt.model.latent})')
    else:
        runs_as = f'a native MLP; features {", ".join(ckpt.model.feature_names)}'
    print(f'imported {args.kind} teacher {args.policy} for task {env.task.name} -> {args.out} '
          f'({parameter_count(ckpt.model):,} parameters; runs as {runs_as})')
    return 0


def _joint_list(path: str, what: str) -> list[str]:
    """Joint names from a text file (one per line) or a YAML file with a `joint_names` list."""
    import yaml

    from distill_ros.paths import read_user_text
    text = read_user_text(path, what)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict) and isinstance(data.get('joint_names'), list):
        return [str(n) for n in data['joint_names']]
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith('#')]


def _contract(args: argparse.Namespace):
    from distill_ros.contract_sources import load_contract
    overrides = {}
    if getattr(args, 'sdk_joints', None):
        overrides['sdk_joints'] = _joint_list(args.sdk_joints, '--sdk-joints file')
    if getattr(args, 'step_dt', None):
        overrides['step_dt'] = args.step_dt
    return load_contract(args.contract, **overrides)


def cmd_make_task(args: argparse.Namespace) -> int:
    """A task YAML for a robot model, driven as a policy's contract says (and the contract beside it)."""
    from pathlib import Path

    import yaml

    from distill_ros.contract_sources import write_contract_yaml
    from distill_ros.sim import DistillEnv
    from distill_ros.sim.contract_task import check_contract, task_from_contract

    contract = _contract(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    task = task_from_contract(contract, args.model, args.name, out, timestep=args.timestep)
    task_path = out / f'{args.name}.yaml'
    contract_path = write_contract_yaml(contract, out / f'{args.name}.contract.yaml')
    task_path.write_text(f'# written by distill-ros make-task from {args.contract} and {args.model}\n'
                         + yaml.safe_dump(task, sort_keys=False, width=120))
    env = DistillEnv(task_path, randomize=False, sensor_noise=False, latency=False)
    problems = check_contract(contract, env)
    if problems:
        raise ValueError(f'{task_path} does not agree with {args.contract}: {"; ".join(problems)}')
    print(f'{task_path}: task {args.name} on {args.model}, {len(contract.joints)} joints, {1 / env.dt:g} Hz policy '
          f'(physics {env.model.opt.timestep:g} s x {env.task.actuation.decimation}), teacher observation '
          f'{env.privileged_spec.size} values; contract {contract_path}')
    print(f'policy joint order (for import-teacher --contract): {", ".join(contract.joints)}')
    return 0


def cmd_check_teacher(args: argparse.Namespace) -> int:
    """Run a teacher on its task with randomization off on fixed commands, against its own loop's reference."""
    import dataclasses

    from distill_ros.policies import checkpoint as ckpt_io
    from distill_ros.sim import DistillEnv, load_task
    from distill_ros.teachers.check import check_teacher, load_reference

    # the reset noise off too: every command starts from the default pose at rest, as a reference loop does
    task = dataclasses.replace(load_task(args.task), reset_noise_scale=0.0)
    env = DistillEnv(task, randomize=False, sensor_noise=False, latency=False)
    teacher = ckpt_io.load(args.teacher)
    teacher.check_env(env, f' on task {env.task.name}')
    reference = load_reference(args.reference) if args.reference else None
    report = check_teacher(env, teacher, reference, settle_s=args.settle, duration_s=args.duration)
    print(f'teacher {args.teacher} on task {env.task.name} (randomization, reset noise, sensor noise and latency off; '
          f'{1 / env.dt:g} Hz policy, physics {env.model.opt.timestep:g} s x {env.task.actuation.decimation}):')
    print(report.table())
    return 0 if report.passed in (None, True) else 1


def cmd_bag2dataset(args: argparse.Namespace) -> int:
    """Replay a rosbag2 bag (MCAP or sqlite3) into a dataset, as the live recorder would write it."""
    from distill_ros.data.bag import bag_to_dataset, topic_map
    from distill_ros.data.dataset import DatasetSpec
    from distill_ros.sim import DistillEnv
    from distill_ros.stamps import NS_PER_S

    env = DistillEnv(args.task)
    spec = DatasetSpec.for_env(env, teacher=not args.no_teacher)
    stats = bag_to_dataset(args.bag, args.out, spec, env.task.has_imu, topic_map(args.topics),
                           args.pairing, int(args.tolerance * NS_PER_S), progress=True)
    print(f'{args.bag} -> {args.out}: {stats.episodes} episodes, {stats.samples} samples; '
          f'unpaired {dict(stats.unpaired) or 0}; unfinished episodes dropped {stats.dropped_episodes}')
    return 0


def cmd_bag_reindex(args: argparse.Namespace) -> int:
    """Recover an MCAP bag whose writer never finished into a new, complete bag."""
    from distill_ros.data.reindex import reindex

    report = reindex(args.bag, args.out)
    print(report.summary())
    return 0 if report.total else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='distill-ros', description='Sim-to-real policy distillation for ROS 2.')
    sub = parser.add_subparsers(dest='command', required=True)
    tasks = sub.add_parser('tasks', help='list the built-in tasks or show one task\'s layouts')
    tasks.add_argument('task', nargs='?', help='task name or task YAML path')
    tasks.set_defaults(func=cmd_tasks)
    teacher = sub.add_parser('train-teacher', help='train a privileged teacher (PPO) for a task')
    teacher.add_argument('--task', required=True, help='task name or task YAML path')
    teacher.add_argument('--out', required=True, help='output folder (checkpoints in OUT/best and OUT/last)')
    teacher.add_argument('--seed', type=int, default=0)
    teacher.add_argument('--steps', type=int, help='total environment steps (default: config)')
    teacher.add_argument('--config', help='training YAML (default: config/train_teacher.yaml)')
    teacher.add_argument('--resume', action='store_true', help='continue from OUT/resume')
    teacher.add_argument('--no-progress', action='store_true', help='no progress bar (for logs)')
    teacher.set_defaults(func=cmd_train_teacher)
    imp = sub.add_parser('import-teacher', help='convert an outside teacher (ONNX, TorchScript, SB3 PPO zip)',
                         description='Convert an outside teacher (rsl_rl / Isaac Lab policy.onnx or policy.pt, any '
                         'ONNX graph, an SB3 PPO zip) into a checkpoint folder. A plain MLP becomes a native one; any '
                         'other graph (normalizer, clipping, several inputs) runs as it is in onnxruntime, stored as '
                         'model.onnx. Recurrent exports are refused. ONNX files and SB3 zips are read as data (a '
                         'policy.pth holding pickled code is refused). A TorchScript file is a program: importing it '
                         'runs its code, so it is loaded only with --trust-code.')
    imp.add_argument('kind', choices=('onnx', 'torchscript', 'sb3'))
    imp.add_argument('policy', help='the exported policy file')
    imp.add_argument('--task', required=True)
    imp.add_argument('--out', required=True, help='checkpoint folder to write')
    imp.add_argument('--input-names', help='text file: the privileged element name of each policy input value, '
                     'in order (through all graph inputs, in the graph\'s order)')
    imp.add_argument('--output-names', help='text file: the joint (action) name of each policy output, in the '
                     'policy\'s order; the outputs are reordered to the task\'s actuators (without it the policy '
                     'must act in the task\'s actuator order, which `distill-ros tasks TASK` lists)')
    imp.add_argument('--contract', help='the policy\'s contract (deploy.yaml, env.yaml, rl_sar config, mjlab ONNX, a '
                     'distill_ros contract YAML): its joints name the outputs')
    imp.add_argument('--sdk-joints', help='--contract deploy.yaml: the SDK joint names (text or YAML joint_names)')
    imp.add_argument('--step-dt', type=float, help='--contract mjlab ONNX: the policy period (s)')
    imp.add_argument('--output', help='onnx: the graph output that holds the action (default: the first)')
    imp.add_argument('--action-std', type=float, default=0.1,
                     help='std of the Gaussian for logit matching (ONNX/TorchScript carry only the mean; rsl_rl '
                     'logs it as "Mean action std")')
    imp.add_argument('--activation', default='tanh', help='sb3: activation of the actor network')
    imp.add_argument('--normalization', help='sb3: JSON {"mean": [...], "var": [...]} of VecNormalize')
    imp.add_argument('--trust-code', action='store_true',
                     help='torchscript: load the file although loading it runs the code it holds (only for a file '
                     'from a source you trust)')
    imp.set_defaults(func=cmd_import_teacher)
    mk = sub.add_parser('make-task', help='a task YAML for a robot model (MJCF) driven as a policy\'s contract says')
    mk.add_argument('--contract', required=True, help='deploy.yaml, Isaac Lab env.yaml, rl_sar config.yaml, an mjlab '
                    'ONNX or a distill_ros contract YAML')
    mk.add_argument('--model', required=True, help='the robot\'s MJCF (a scene with a floor, or the bare robot)')
    mk.add_argument('--name', required=True, help='the task name')
    mk.add_argument('--out', required=True, help='folder for NAME.yaml and NAME.contract.yaml')
    mk.add_argument('--timestep', type=float, help='the physics step the policy was trained at (default: the model\'s)')
    mk.add_argument('--sdk-joints', help='deploy.yaml: the SDK joint names (text, or YAML with joint_names)')
    mk.add_argument('--step-dt', type=float, help='mjlab ONNX: the policy period (s), which its metadata lacks')
    mk.set_defaults(func=cmd_make_task)
    chk = sub.add_parser('check-teacher', help='does an imported teacher behave here as in its own loop? (velocity '
                         'tracking and falls on fixed commands, against a reference.json)')
    chk.add_argument('--task', required=True, help='task name or task YAML path')
    chk.add_argument('--teacher', required=True, help='teacher checkpoint folder')
    chk.add_argument('--reference', help='reference.json of the teacher\'s own loop (docs/teachers.md)')
    chk.add_argument('--settle', type=float, default=2.0, help='seconds before measuring (without a reference)')
    chk.add_argument('--duration', type=float, default=8.0, help='seconds measured per command (without a reference)')
    chk.set_defaults(func=cmd_check_teacher)
    b2d = sub.add_parser('bag2dataset', help='replay a rosbag2 bag (MCAP or sqlite3) into a dataset')
    b2d.add_argument('bag', help='bag folder (with metadata.yaml)')
    b2d.add_argument('--out', required=True, help='dataset folder to create or append to')
    b2d.add_argument('--task', default='cartpole', help='task whose layout the bag holds')
    b2d.add_argument('--topics', help='YAML mapping streams to topics (default: the package\'s topic names)')
    b2d.add_argument('--pairing', choices=('exact', 'approximate'), default='exact')
    b2d.add_argument('--tolerance', type=float, default=0.002, help='approximate pairing tolerance, seconds')
    b2d.add_argument('--no-teacher', action='store_true', help='the bag has no teacher topics')
    b2d.set_defaults(func=cmd_bag2dataset)
    rix = sub.add_parser('bag-reindex', help='recover an MCAP bag whose recorder never finished (no metadata.yaml, '
                         'no summary), as `ros2 bag reindex` does')
    rix.add_argument('bag', help='bag folder (or its .mcap file)')
    rix.add_argument('--out', help='folder for the recovered bag (default: BAG-reindexed)')
    rix.set_defaults(func=cmd_bag_reindex)
    from distill_ros import demo
    from distill_ros.distill import finetune, report, runner
    runner.add_commands(sub)   # distill, collect
    finetune.add_commands(sub)   # finetune
    report.add_commands(sub)   # eval, report, export
    demo.add_commands(sub)     # demo
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f'distill-ros {args.command}: error: {exc}', file=sys.stderr)
        status = 2
    except KeyboardInterrupt as exc:
        print(f'distill-ros {args.command}: {exc or "interrupted"}', file=sys.stderr)
        status = 130
    raise SystemExit(status)


if __name__ == '__main__':
    main()
