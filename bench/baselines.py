"""Baselines: rsl_rl's `Distillation` and imitation's DAgger beside our `full` method, on the same
teacher, task and sample budget (env steps collected), evaluated on the same held-out seeds.

    python bench/baselines.py --task cartpole --budget 20000 --episodes 20

- rsl_rl (`pip install rsl-rl-lib`, beside our stack): its `Distillation` algorithm and
  `RolloutStorage`, driven by the loop of its `DistillationRunner.learn` over a small `VecEnv`
  adapter of N `DistillEnv`s. Two students, both on `sensor` obs with obs normalization and a
  Gaussian output (std 0.1) for the acting rollouts: `MLPModel` on the current obs only (64x64 ELU)
  and its recurrent `RNNModel` (GRU 64, then 64 ELU) over the episode's obs stream. The teacher is
  our GaussianMLP on `privileged` obs. The student acts (on-policy, as rsl_rl does).
- imitation 1.0.1 (pins gymnasium 0.29 / stable-baselines3 2.2): in its own venv (created here on
  first use, `--venv`), running bench/imitation_driver.py. This process owns the envs and the teacher
  and serves them over a pipe as JSON lines; the driver sees only `sensor` obs and asks for the
  teacher's action on the current `privileged` obs of each env. `SimpleDAggerTrainer` with BC; the
  student (an SB3 ActorCriticPolicy, 64x64 tanh actor, current sensor obs) comes back as JSON weights.
- ours: `full` from bench/distill_quality.py (BC + KL + feature + DAgger, 8-step history with past
  actions), with the budget split into teacher episodes plus DAgger rounds.
Every student is evaluated here with our env on `eval_seeds(--episodes)` (noise and latency on).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from distill_ros.distill.config import parse_config
from distill_ros.distill.evaluate import eval_seeds, evaluate_checkpoint, run_episodes, summarize
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.mlp import parameter_count
from distill_ros.sim.env import DistillEnv
from distill_ros.teachers import shipped_teacher

ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name('imitation_driver.py')
VENV_PACKAGES = ['torch==2.13.0', 'imitation==1.0.1']  # torch pinned so pip never pulls a CUDA build


# ---------------------------------------------------------------- shared pieces
class EnvPool:
    """N DistillEnvs, each reset with fresh training seeds (0, 1, ... never the eval seeds)."""

    def __init__(self, task: str, n: int, seed_base: int = 0):
        self.envs = [DistillEnv(task) for _ in range(n)]
        self.next_seed = seed_base
        self.steps = 0
        self.obs = [self._reset(i) for i in range(n)]

    def _reset(self, i: int) -> dict[str, np.ndarray]:
        obs, _ = self.envs[i].reset(seed=self.next_seed)
        self.next_seed += 1
        return obs

    def step(self, i: int, action: np.ndarray) -> tuple[dict, float, bool, bool]:
        env = self.envs[i]
        action = np.clip(np.asarray(action, dtype=np.float64), env.action_space.low, env.action_space.high)
        obs, reward, terminated, truncated, _ = env.step(action)
        self.steps += 1
        self.obs[i] = obs
        return obs, reward, terminated, truncated


def teacher_mean(teacher, privileged: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return teacher.model(torch.as_tensor(np.asarray(privileged), dtype=torch.float32)).numpy()


def evaluate_sensor_policy(policy, task: str, seeds, reset=None) -> dict[str, float]:
    """Our held-out evaluation for a student that maps the current sensor obs to an action (`reset`
    clears a recurrent student's state at each episode start)."""
    env = DistillEnv(task)
    low, high = env.action_space.low, env.action_space.high

    def act(obs):
        with torch.no_grad():
            x = torch.as_tensor(obs['sensor'], dtype=torch.float32)[None]
            return np.clip(policy(x)[0].numpy().astype(np.float64), low, high)
    return summarize(run_episodes(env, act, seeds, reset_policy=reset))


# ---------------------------------------------------------------- rsl_rl
def run_rsl_rl(task: str, teacher, budget: int, out: Path, student_kind: str = 'mlp', num_envs: int = 8,
               steps_per_env: int = 25, epochs: int = 5, gradient_length: int = 5, seed: int = 0):
    from rsl_rl.algorithms import Distillation
    from rsl_rl.env import VecEnv
    from rsl_rl.models import MLPModel, RNNModel
    from rsl_rl.storage import RolloutStorage
    from tensordict import TensorDict

    class DistillVecEnv(VecEnv):
        """rsl_rl's VecEnv over N DistillEnvs: obs groups 'sensor' (student) and 'privileged' (teacher)."""

        def __init__(self):
            self.pool = EnvPool(task, num_envs)
            self.num_envs, self.device, self.cfg = num_envs, 'cpu', {}
            self.num_actions = int(self.pool.envs[0].action_space.shape[0])
            self.max_episode_length = self.pool.envs[0].task.max_episode_steps
            self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long)

        def get_observations(self) -> TensorDict:
            return TensorDict({key: torch.as_tensor(np.stack([o[key] for o in self.pool.obs]), dtype=torch.float32)
                               for key in ('sensor', 'privileged')}, batch_size=[self.num_envs])

        def step(self, actions: torch.Tensor):
            rewards, dones, time_outs = (torch.zeros(self.num_envs) for _ in range(3))
            for i, action in enumerate(actions.numpy()):
                _, reward, terminated, truncated = self.pool.step(i, action)
                rewards[i], dones[i], time_outs[i] = reward, float(terminated or truncated), float(truncated)
                self.episode_length_buf[i] += 1
                if terminated or truncated:  # rsl_rl envs reset themselves
                    self.pool.obs[i] = self.pool._reset(i)
                    self.episode_length_buf[i] = 0
            return self.get_observations(), rewards, dones, {'time_outs': time_outs}

    class Teacher(torch.nn.Module):
        """Our GaussianMLP behind rsl_rl's model interface (non-recurrent, always eval)."""
        is_recurrent = False

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, obs, masks=None, hidden_state=None, stochastic_output=False):
            return self.model(obs['privileged'])

        def reset(self, dones=None, hidden_state=None):
            pass

        def get_hidden_state(self):
            return None

        def detach_hidden_state(self, dones=None):
            pass

    torch.manual_seed(seed)
    env = DistillVecEnv()
    obs = env.get_observations()
    groups = {'student': ['sensor'], 'teacher': ['privileged']}
    common = {'activation': 'elu', 'obs_normalization': True,
              'distribution_cfg': {'class_name': 'GaussianDistribution', 'init_std': 0.1}}
    if student_kind == 'mlp':
        student = MLPModel(obs, groups, 'student', env.num_actions, hidden_dims=[64, 64], **common)
    elif student_kind == 'gru':  # rsl_rl's recurrent student: GRU(64) then a 64 MLP layer
        student = RNNModel(obs, groups, 'student', env.num_actions, hidden_dims=[64], rnn_type='gru',
                           rnn_hidden_dim=64, **common)
    else:
        raise ValueError(f'unknown rsl_rl student {student_kind!r}; expected mlp or gru')
    storage = RolloutStorage('distillation', num_envs, steps_per_env, obs, [env.num_actions], 'cpu')
    alg = Distillation(student, Teacher(teacher.model).eval(), storage, num_learning_epochs=epochs,
                       gradient_length=gradient_length, learning_rate=1e-3, loss_type='mse', device='cpu')
    iterations = max(1, math.ceil(budget / (num_envs * steps_per_env)))
    print(f'rsl_rl: {iterations} iterations x {num_envs} envs x {steps_per_env} steps, {epochs} epochs, '
          f'gradient_length {gradient_length}')
    alg.train_mode()
    for it in range(iterations):  # DistillationRunner.learn, without its logger
        with torch.inference_mode():
            for _ in range(steps_per_env):
                actions = alg.act(obs)
                obs, rewards, dones, extras = env.step(actions)
                alg.process_env_step(obs, rewards, dones, extras)
        losses = alg.update()
        if it % 20 == 0 or it == iterations - 1:
            print(f'  rsl_rl iteration {it + 1}/{iterations}: behavior loss {losses["behavior"]:.4f}')
    policy = alg.get_policy().eval()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(policy.state_dict(), out / f'student_{student_kind}.pt')

    def act(x: torch.Tensor) -> torch.Tensor:
        return policy(TensorDict({'sensor': x}, batch_size=[x.shape[0]]))
    act.reset = policy.reset  # a recurrent student starts each episode from a zero state
    params = sum(p.numel() for name, p in policy.named_parameters() if 'std' not in name)
    return act, params, env.pool.steps


# ---------------------------------------------------------------- imitation (own venv)
def ensure_venv(venv: Path) -> Path:
    python = venv / 'bin' / 'python'
    probe = [str(python), '-c', 'import imitation, torch; assert imitation.__version__ == "1.0.1"']
    if python.is_file() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f'imitation: creating {venv} and installing {" ".join(VENV_PACKAGES)}')
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    subprocess.run([str(python), '-m', 'pip', 'install', '--quiet', *VENV_PACKAGES], check=True)
    subprocess.run(probe, check=True)
    return python


def run_imitation(task: str, teacher, budget: int, out: Path, python: Path, num_envs: int = 4, seed: int = 0):
    pool = EnvPool(task, num_envs)
    env0 = pool.envs[0]
    shutil.rmtree(out, ignore_errors=True)  # DAgger's scratch dir would otherwise resume an old run's demos
    out.mkdir(parents=True)
    hello = {'num_envs': num_envs, 'obs_dim': int(env0.sensor_spec.size),
             'low': env0.action_space.low.tolist(), 'high': env0.action_space.high.tolist(),
             'budget': budget, 'seed': seed, 'scratch': str(out / 'scratch')}
    log_path = out / 'driver.log'  # imitation's BC logger is verbose: keep it out of the table's way
    log = log_path.open('w')
    proc = subprocess.Popen([str(python), str(DRIVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                            text=True, bufsize=1, env={**os.environ, 'PYTHONUNBUFFERED': '1'})

    def reply(msg):  # one JSON line per message
        proc.stdin.write(json.dumps(msg) + '\n')
        proc.stdin.flush()
    reply(hello)
    result = None
    for line in proc.stdout:
        msg = json.loads(line)
        cmd = msg['cmd']
        if cmd == 'reset':
            i = msg['env']
            pool.obs[i] = pool._reset(i)
            reply({'obs': pool.obs[i]['sensor'].tolist()})
        elif cmd == 'step':
            obs, reward, terminated, truncated = pool.step(msg['env'], np.asarray(msg['action']))
            reply({'obs': obs['sensor'].tolist(), 'reward': reward, 'terminated': terminated,
                   'truncated': truncated})
        elif cmd == 'expert':  # the teacher on each env's current privileged obs (after auto-reset)
            actions = teacher_mean(teacher, np.stack([o['privileged'] for o in pool.obs]))
            actions = np.clip(actions, env0.action_space.low, env0.action_space.high)
            reply({'actions': actions.tolist()})
        elif cmd == 'done':
            result = msg
            break
        else:
            raise RuntimeError(f'imitation driver sent an unknown command {cmd!r}')
    proc.stdin.close()
    if proc.wait() != 0 or result is None:
        log.close()
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f'imitation driver failed (exit {proc.returncode}); {log_path} ends:\n{tail}')
    log.close()
    print(f'imitation: {result["rounds"]} DAgger rounds (log {log_path})')
    (out / 'student.json').write_text(json.dumps(result))
    layers = []
    for k, (w, b) in enumerate(result['layers']):
        linear = torch.nn.Linear(len(w[0]), len(w))
        linear.weight.data = torch.tensor(w, dtype=torch.float32)
        linear.bias.data = torch.tensor(b, dtype=torch.float32)
        layers.append(linear)
        if k < len(result['layers']) - 1:
            layers.append(torch.nn.Tanh())
    policy = torch.nn.Sequential(*layers).eval()
    return policy, parameter_count(policy), pool.steps


# ---------------------------------------------------------------- ours
def run_ours(task: str, teacher, budget: int, out: Path, seed: int = 0, teacher_noise: float = 0.0):
    from distill_ros.distill.dagger import collect_teacher_dataset
    from distill_ros.distill.runner import run_distill
    from distill_ros.paths import config_path
    path = config_path(f'distill/{task}.yaml')
    defaults = yaml.safe_load((path if path.is_file() else config_path('distill/default.yaml')).read_text()) or {}
    given = parse_config(defaults)
    total = max(2, budget // teacher_episode_steps(task))  # episodes; early falls make hopper's shorter
    rounds = given.dagger.rounds
    per_round = max(1, total // (2 * rounds))
    base = max(1, total - rounds * per_round)
    print(f'ours: {base} teacher episodes + {rounds} DAgger rounds x {per_round} episodes')
    shutil.rmtree(out, ignore_errors=True)  # a fresh dataset and run every time
    # teacher_noise > 0: the teacher's recorded episodes execute actions sampled from its own
    # Gaussian (DART), as `distill-ros demo` records them; labels stay its mean.
    data = collect_teacher_dataset(task, teacher, out / 'data', base, seed_base=0, teacher_noise=teacher_noise)
    cfg = parse_config({**defaults, 'train': {**defaults.get('train', {}), 'seed': seed},
                        'dagger': {**defaults.get('dagger', {}), 'episodes_per_round': per_round},
                        'eval': {'episodes': 0}}, where='ours')
    summary = run_distill(data, teacher, cfg, out / 'run')
    samples = summary['samples'] + sum(r['samples'] for r in summary.get('dagger', []))
    student = ckpt_io.load(out / 'run' / 'student')
    return student, parameter_count(student.model), samples


def teacher_episode_steps(task: str) -> int:
    return DistillEnv(task).task.max_episode_steps


# ---------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--task', default='cartpole')
    parser.add_argument('--budget', type=int, default=20000, help='env steps each method may collect')
    parser.add_argument('--episodes', type=int, default=50, help='held-out evaluation episodes')
    parser.add_argument('--out', default='bench_out/baselines/table.md')
    parser.add_argument('--venv', default='bench_out/imitation_venv', help='venv for imitation 1.0.1')
    parser.add_argument('--skip-imitation', action='store_true')
    parser.add_argument('--skip-rsl-rl', action='store_true')
    parser.add_argument('--rsl-rl-students', nargs='+', default=['mlp', 'gru'], choices=['mlp', 'gru'],
                        help="rsl_rl's students to run")
    parser.add_argument('--skip-ours', action='store_true')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small nets; leave the other core free
    out = Path(args.out)
    work = out.parent
    teacher = ckpt_io.load(shipped_teacher(args.task))
    seeds = eval_seeds(args.episodes)
    teacher_eval = summarize(evaluate_checkpoint(teacher, DistillEnv(args.task), seeds))
    rows = [('teacher (privileged obs)', parameter_count(teacher.model), None, teacher_eval, None)]
    print(f'teacher: {teacher_eval["mean_return"]:.1f} ± {teacher_eval["ci95"]:.1f}')
    runs = []
    if not args.skip_rsl_rl:
        if 'mlp' in args.rsl_rl_students:
            runs.append(('rsl_rl Distillation (MLP, current sensor obs)',
                         lambda: run_rsl_rl(args.task, teacher, args.budget, work / 'rsl_rl', 'mlp', seed=args.seed)))
        if 'gru' in args.rsl_rl_students:
            runs.append(('rsl_rl Distillation (GRU, sensor obs stream)',
                         lambda: run_rsl_rl(args.task, teacher, args.budget, work / 'rsl_rl', 'gru', seed=args.seed)))
    if not args.skip_imitation:
        python = ensure_venv(Path(args.venv))  # before the clock starts: wall time is training, not pip
        runs.append(('imitation DAgger + BC (MLP, current sensor obs)',
                     lambda: run_imitation(args.task, teacher, args.budget, work / 'imitation', python,
                                           seed=args.seed)))
    if not args.skip_ours:
        runs.append(('ours: full (BC+KL+feature+DAgger, 8-step history)',
                     lambda: run_ours(args.task, teacher, args.budget, work / 'ours', seed=args.seed)))
        runs.append(('ours: full, teacher recorded with its action noise (DART, as the demo)',
                     lambda: run_ours(args.task, teacher, args.budget, work / 'ours_dart', seed=args.seed,
                                      teacher_noise=1.0)))
    for name, run in runs:
        print(f'--- {name}')
        t0 = time.monotonic()
        policy, params, samples = run()
        wall = time.monotonic() - t0
        if isinstance(policy, ckpt_io.Checkpoint):
            result = summarize(evaluate_checkpoint(policy, DistillEnv(args.task), seeds))
        else:
            result = evaluate_sensor_policy(policy, args.task, seeds, reset=getattr(policy, 'reset', None))
        rows.append((name, params, samples, result, wall))
        print(f'{name}: {result["mean_return"]:.1f} ± {result["ci95"]:.1f} in {wall:.0f} s')
    write_table(rows, teacher_eval['mean_return'], args, out)


def write_table(rows, teacher_return: float, args, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table
    head = ['method', 'student params', 'env steps', 'mean return ± ci95', 'student/teacher', 'fall rate', 'wall s']
    body = []
    for name, params, samples, r, wall in rows:
        body.append([name, f'{params:,}', '' if samples is None else f'{samples:,}',
                     f'{r["mean_return"]:.1f} ± {r["ci95"]:.1f}', f'{r["mean_return"] / teacher_return:.3f}',
                     f'{r["fall_rate"]:.2f}', '' if wall is None else f'{wall:.0f}'])
    title = (f'Baselines on {args.task}: budget {args.budget} env steps, {args.episodes} held-out episodes '
             f'(eval_seeds), same teacher')
    table = Table(*head, title=title)
    for line in body:
        table.add_row(*line)
    Console().print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    md = [f'# {title}', '', '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    md += ['| ' + ' | '.join(line) + ' |' for line in body]
    md += ['', f'`python {" ".join(sys.argv)}`']
    out.write_text('\n'.join(md) + '\n')
    print(f'table: {out}')


if __name__ == '__main__':
    sys.path.insert(0, str(ROOT))
    main()
