"""Observation terms as a declared contract: the term builder (scale, offset, clip, history, both
stackings), a task whose teacher reads Isaac-Lab-style terms computed from the true state (base
frame, projected gravity, joint order not the model's, last action as executed), and a teacher whose
terms differ from the task's refused with the difference named."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from distill_ros import contract as ct
from distill_ros.contract import ContractError, ObsGroup, TermObsBuilder
from distill_ros.sim import PRIVILEGED, DistillEnv, TaskConfigError, load_task

# A small quadruped-like robot whose layout differs from ours: an unnamed free joint, the base's
# inertia rotated 90 degrees about z, legs declared in another order than the policy's joints.
ROBOT = """<mujoco model="bot">
  <option timestep="0.005"/>
  <worldbody>
    <geom name="floor" type="plane" size="5 5 0.1"/>
    <body name="trunk" pos="0 0 0.3">
      <freejoint/>
      <inertial pos="0.01 0 0" quat="0.7071068 0 0 0.7071068" mass="4" diaginertia="0.05 0.02 0.04"/>
      <geom type="box" size="0.15 0.06 0.04" contype="0" conaffinity="0"/>
      <body name="R_leg" pos="-0.12 0 -0.04"><joint name="R_knee" axis="0 1 0" range="-2 2"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.2" size="0.02"/></body>
      <body name="F_leg" pos="0.12 0 -0.04"><joint name="F_knee" axis="0 1 0" range="-2 2"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.2" size="0.02"/></body>
    </body>
  </worldbody>
  <actuator><motor joint="R_knee" ctrlrange="-20 20"/><motor joint="F_knee" ctrlrange="-20 20"/></actuator>
</mujoco>
"""
POLICY_JOINTS = ['F_knee', 'R_knee']   # the policy's order, not the model's (R_knee first)
ISAAC_TERMS = [{'name': 'base_lin_vel', 'scale': 2.0}, {'name': 'base_ang_vel', 'scale': 0.25},
               'projected_gravity', {'name': 'velocity_command', 'scale': [2.0, 2.0, 0.25]},
               'joint_pos_rel', {'name': 'joint_vel_rel', 'scale': 0.05}, {'name': 'last_action', 'clip': [-5, 5]}]


def robot_task(tmp_path, terms=None, **observation) -> dict:
    (tmp_path / 'bot.xml').write_text(ROBOT)
    return {'name': 'bot', 'env': {'model': 'bot.xml', 'max_episode_steps': 100, 'best_return': 100},
            'actuation': {'type': 'position', 'kp': 20.0, 'kd': 0.5, 'default_pose': {'F_knee': 0.3, 'R_knee': -0.2},
                          'action_scale': 0.25, 'decimation': 4},
            'imu': {'body': 'trunk'},
            'sensors': {'joints': ['R_knee', 'F_knee'], 'joint_velocity': True},
            'command': {'vx': [0.5, 0.5]},
            'observation': {'teacher': {'joints': POLICY_JOINTS, 'terms': terms or ISAAC_TERMS, **observation}},
            'reward': {'alive': 1.0}}


def make_env(tmp_path, data) -> DistillEnv:
    path = tmp_path / 'bot.yaml'
    path.write_text(yaml.safe_dump(data))
    return DistillEnv(load_task(path), randomize=False, sensor_noise=False, latency=False)


def rotation(quat_wxyz) -> np.ndarray:
    w, x, y, z = quat_wxyz
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def test_terms_scale_offset_clip_and_both_history_layouts():
    group = ObsGroup.from_json({'joints': ['a', 'b'], 'terms': [
        {'name': 'base_ang_vel', 'scale': 0.25, 'history': 2}, {'name': 'joint_pos_rel', 'history': 2},
        {'name': 'last_action', 'clip': [-1, 1], 'scale': 2.0, 'history': 2}]})
    assert group.spec().element_names()[:6] == ['base_ang_vel/x@t-1', 'base_ang_vel/y@t-1', 'base_ang_vel/z@t-1',
                                                'base_ang_vel/x', 'base_ang_vel/y', 'base_ang_vel/z']
    builder = TermObsBuilder(group, default_pose=[0.1, -0.1])
    first = {'base_ang_vel': [4.0, 0, 0], 'joint_pos': [0.1, 0.1], 'last_action': [3.0, -0.25]}
    second = {'base_ang_vel': [0, 8.0, 0], 'joint_pos': [0.3, -0.1], 'last_action': [0.5, 0.0]}
    builder.build(first)
    out = builder.build(second)
    # term-major, oldest first; clip before scale (Isaac Lab's order)
    np.testing.assert_allclose(out, [1, 0, 0, 0, 2, 0, 0, 0.2, 0.2, 0, 2, -0.5, 1, 0])
    frame = ObsGroup(group.terms, group.joints, ct.FRAME_MAJOR)
    fb = TermObsBuilder(frame, default_pose=[0.1, -0.1])
    fb.build(first)
    np.testing.assert_allclose(fb.build(second), [1, 0, 0, 0, 0.2, 2, -0.5, 0, 2, 0, 0.2, 0, 1, 0])
    assert frame.spec().names == ['base_ang_vel@t-1', 'joint_pos_rel@t-1', 'last_action@t-1',
                                  'base_ang_vel', 'joint_pos_rel', 'last_action']
    builder.reset()   # a new episode: the history repeats its first value
    np.testing.assert_allclose(builder.build(second)[:6], [0, 2, 0, 0, 2, 0])


@pytest.mark.parametrize('bad, message', [
    ({'name': 'joint_vel_rel', 'scale': [0.05]}, r'joint_vel_rel.scale has 1 values, expected 2 \(one per element\)'),
    ({'name': 'lin_vel'}, r"unknown observation term 'lin_vel'; known terms are \['base_lin_vel'"),
    ({'name': 'last_action', 'clip': [1, -1]}, r'last_action.clip must be \[low, high\] with low < high'),
    ({'name': 'projected_gravity', 'history': 0}, r'projected_gravity.history must be an integer >= 1'),
    ({'name': 'base_ang_vel', 'gain': 2}, r"unknown keys \['gain'\]"),
])
def test_a_wrong_term_is_refused_with_one_message(bad, message):
    with pytest.raises(ContractError, match=message):
        ObsGroup.from_json({'joints': ['a', 'b'], 'terms': [bad]}, 'policy.yaml: observation')


def test_frame_major_needs_one_history_for_all_terms():
    with pytest.raises(ContractError, match='frame-major history stacks whole observations'):
        ObsGroup.from_json({'joints': ['a'], 'history_layout': 'frame_major',
                            'terms': [{'name': 'joint_pos', 'history': 3}, {'name': 'joint_vel', 'history': 1}]})


def test_the_teacher_reads_isaac_lab_terms_from_the_true_state(tmp_path):
    env = make_env(tmp_path, robot_task(tmp_path))
    spec = env.privileged_spec
    assert spec.names == ['base_lin_vel', 'base_ang_vel', 'projected_gravity', 'velocity_command', 'joint_pos_rel',
                          'joint_vel_rel', 'last_action']
    assert spec.fields[4].elements == tuple(POLICY_JOINTS)
    assert env.action_names == ['R_knee', 'F_knee']      # the model's actuator order
    obs, _ = env.reset(seed=1)
    terms = spec.unflatten(obs[PRIVILEGED])
    np.testing.assert_allclose(terms['projected_gravity'], [0, 0, -1], atol=1e-9)
    np.testing.assert_allclose(terms['joint_pos_rel'], 0, atol=1e-12)   # starts at the default pose
    np.testing.assert_allclose(terms['velocity_command'], [1.0, 0, 0])   # 0.5 m/s x 2
    np.testing.assert_allclose(terms['last_action'], 0)
    action = np.array([3.0, -1.0])   # R_knee, F_knee (actuator order)
    for _ in range(10):
        obs, *_ = env.step(action)
    terms = spec.unflatten(obs[PRIVILEGED])
    d = env.data
    R = rotation(d.qpos[3:7])        # computed here from the free joint's quaternion, not by the builder
    np.testing.assert_allclose(terms['base_lin_vel'], 2.0 * R.T @ d.qvel[0:3], atol=1e-12)
    np.testing.assert_allclose(terms['base_ang_vel'], 0.25 * d.qvel[3:6], atol=1e-12)
    np.testing.assert_allclose(terms['projected_gravity'], R.T @ [0, 0, -1], atol=1e-12)
    q = {name: d.qpos[7 + i] for i, name in enumerate(['R_knee', 'F_knee'])}
    np.testing.assert_allclose(terms['joint_pos_rel'], [q['F_knee'] - 0.3, q['R_knee'] + 0.2], atol=1e-12)
    np.testing.assert_allclose(terms['last_action'], [-1.0, 3.0])   # by joint name: F_knee first
    # the base frame is the body's own, not its inertial frame (rotated 90 degrees here): pushing the
    # base along world x (heading unchanged) reads as +x, not as y
    env.reset(seed=1)
    d.qvel[0:3] = [0.7, 0, 0]
    obs = env._observe()
    np.testing.assert_allclose(spec.get(obs[PRIVILEGED], 'base_lin_vel'), [1.4, 0, 0], atol=1e-9)


def test_teacher_terms_with_history_repeat_at_reset_and_shift_each_step(tmp_path):
    env = make_env(tmp_path, robot_task(tmp_path, terms=[{'name': 'joint_pos', 'history': 3}]))
    assert env.privileged_spec.element_names() == ['joint_pos/F_knee@t-2', 'joint_pos/R_knee@t-2',
                                                   'joint_pos/F_knee@t-1', 'joint_pos/R_knee@t-1',
                                                   'joint_pos/F_knee', 'joint_pos/R_knee']
    seen = [env.reset(seed=0)[0][PRIVILEGED]]
    for _ in range(3):
        seen.append(env.step(np.array([2.0, -2.0]))[0][PRIVILEGED])
    np.testing.assert_allclose(seen[0], np.tile([0.3, -0.2], 3))
    np.testing.assert_allclose(seen[3][:4], np.concatenate([seen[2][2:4], seen[2][4:]]))  # shifted by one step
    np.testing.assert_allclose(env.reset(seed=0)[0][PRIVILEGED], seen[0])                 # reset: history refills


def test_a_task_with_bad_teacher_terms_is_refused_naming_the_key(tmp_path):
    data = robot_task(tmp_path, terms=['joint_pos', {'name': 'last_action'}])
    data['observation']['teacher']['joints'] = ['F_knee']
    path = tmp_path / 'bot.yaml'
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TaskConfigError, match=r"observation.teacher has last_action over joints \['F_knee'\], which "
                                              r"must be the actuated joints"):
        DistillEnv(load_task(path))
    data = robot_task(tmp_path, terms=[{'name': 'joint_pos', 'scale': [1, 2, 3]}])
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TaskConfigError, match=r'bot.yaml: observation.teacher.terms\[0\]: joint_pos.scale has 3 '
                                              r'values, expected 2'):
        load_task(path)


def test_a_teacher_trained_on_other_scales_is_refused(tmp_path):
    from distill_ros.policies import checkpoint as ckpt_io
    from distill_ros.policies.mlp import GaussianMLP

    env = make_env(tmp_path, robot_task(tmp_path))
    net = GaussianMLP(env.privileged_spec.size, 2, [8], 'elu')
    teacher = ckpt_io.Checkpoint(model=net, obs_source='privileged', obs_spec=env.privileged_spec,
                                 action_names=env.action_names, action_low=env.action_space.low,
                                 action_high=env.action_space.high, task='bot', obs_terms=ckpt_io.teacher_terms(env))
    ckpt_io.save(teacher, tmp_path / 'teacher')
    loaded = ckpt_io.load(tmp_path / 'teacher')
    loaded.check_env(env)   # the same terms: accepted
    other = [dict(t) if isinstance(t, dict) else t for t in ISAAC_TERMS]
    other[5] = {'name': 'joint_vel_rel', 'scale': 0.1}
    env2 = make_env(tmp_path, robot_task(tmp_path, terms=other))
    with pytest.raises(ckpt_io.CheckpointError, match=r"term 'joint_vel_rel': scale expected \(0.05, 0.05\), "
                                                      r"got \(0.1, 0.1\)"):
        loaded.check_env(env2)


def test_a_checkpoint_carries_what_its_controller_needs_of_the_task():
    """The deployment record (rate, default pose, action scale, PD) equals what the task gives, in any
    joint order, so a robot needs neither the task YAML nor a simulator."""
    from distill_ros.policies import checkpoint as ckpt_io
    from distill_ros.sim.actuation import position_command, position_from_record
    from distill_ros.sim.env import deployment, policy_rate_hz
    from distill_ros.students import shipped_student

    record = deployment('quadruped')
    assert record['policy_rate_hz'] == pytest.approx(policy_rate_hz('quadruped')) == pytest.approx(50.0)
    shuffled = ['RR_calf_joint', 'FL_hip_joint', 'FR_thigh_joint', 'RL_hip_joint', 'FL_calf_joint', 'RR_hip_joint',
                'FR_hip_joint', 'RL_thigh_joint', 'FL_thigh_joint', 'RR_thigh_joint', 'FR_calf_joint', 'RL_calf_joint']
    mine, theirs = position_from_record(record, shuffled), position_command('quadruped', shuffled)
    action = np.linspace(-1, 1, 12)
    np.testing.assert_allclose(mine.targets(action), theirs.targets(action))
    np.testing.assert_allclose(mine.kp, theirs.kp)
    np.testing.assert_allclose(mine.torque_limit, theirs.torque_limit)
    with pytest.raises(TaskConfigError, match=r"deployment actuation has no joints \['tail'\]"):
        position_from_record(record, ['tail'])
    # every shipped student carries its record
    for task in ('cartpole', 'hopper', 'ant', 'quadruped'):
        student = ckpt_io.load(shipped_student(task))
        assert student.deployment == deployment(task), task


def test_a_students_exported_contract_builds_exactly_its_window():
    """A student's contract (its sensor fields as terms, frame-major over its history, with the past
    action) fed the raw readings gives, step by step, the window HistoryBuffer gives it."""
    from distill_ros.contract import sensor_group
    from distill_ros.observation import HistoryBuffer
    from distill_ros.policies import checkpoint as ckpt_io
    from distill_ros.students import shipped_student

    student = ckpt_io.load(shipped_student('ant'))   # actions in another order than the sensed joints
    group = sensor_group(student.obs_spec, student.history, student.past_actions, student.action_names)
    assert group.history_layout == ct.FRAME_MAJOR and group.terms[-1].name == 'last_action'
    builder = TermObsBuilder(group)
    buffer = HistoryBuffer(student.history, student.obs_spec.size, len(student.action_names), dtype=np.float64)
    env = DistillEnv('ant')
    obs, _ = env.reset(seed=4)
    rng = np.random.default_rng(0)
    action = np.zeros(len(student.action_names))
    for step in range(12):
        fields = student.obs_spec.unflatten(obs['sensor'])
        raw = {ct.TERMS[ct.SENSOR_FIELD_TERMS[name]].raw: value for name, value in fields.items()}
        raw[ct.RAW_LAST_ACTION] = action
        window = buffer.push(obs['sensor'])
        np.testing.assert_allclose(builder.build(raw), window.reshape(-1), err_msg=f'step {step}')
        action = rng.uniform(-1, 1, len(action))
        buffer.set_action(action)
        obs, *_ = env.step(action)


def bot_contract(**changes) -> ct.PolicyContract:
    group = ObsGroup.from_json({'joints': POLICY_JOINTS, 'terms': ISAAC_TERMS})
    values = dict(observation=group, joints=tuple(POLICY_JOINTS), default_joint_pos=(0.3, -0.2),
                  action_scale=(0.25, 0.5), action_offset=(0.3, -0.2), stiffness=(20.0, 30.0), damping=(0.5, 0.6),
                  step_dt=0.02, command_ranges={'lin_vel_x': (-0.8, 0.8)}, source='bot.contract.yaml')
    values.update(changes)
    return ct.PolicyContract(**values)


def test_a_task_from_the_robot_model_and_the_contract(tmp_path):
    """make-task's task: the contract's PD, pose and per-joint scale by name, the decimation from the
    period at the given physics step, a floor added to a model without one, the terms for the teacher;
    check_contract then finds no disagreement, and names each one it is given."""
    from distill_ros.sim.contract_task import check_contract, task_from_contract

    (tmp_path / 'robot').mkdir()
    (tmp_path / 'robot' / 'bot.xml').write_text(ROBOT.replace('<geom name="floor" type="plane" size="5 5 0.1"/>', ''))
    data = task_from_contract(bot_contract(), tmp_path / 'robot' / 'bot.xml', 'bot', tmp_path, timestep=0.005)
    assert data['env']['add_floor'] is True and data['env']['model'] == 'robot/bot.xml'
    assert data['actuation']['decimation'] == 4 and data['actuation']['action_scale'] == {'F_knee': 0.25,
                                                                                           'R_knee': 0.5}
    assert data['actuation']['torque_limit'] == {'F_knee': 20.0, 'R_knee': 20.0}   # the model's motors
    assert data['command']['vx'] == [-0.8, 0.8] and data['imu'] == {'body': 'trunk'}
    (tmp_path / 'bot.yaml').write_text(yaml.safe_dump(data))
    env = DistillEnv(load_task(tmp_path / 'bot.yaml'), randomize=False)
    assert check_contract(bot_contract(), env) == []
    obs, _ = env.reset(seed=0)
    for _ in range(25):
        obs, _, terminated, _, _ = env.step(np.zeros(2))
    assert not terminated and env.data.qpos[2] > 0.05       # stands on the added floor
    problems = check_contract(bot_contract(stiffness=(20.0, 35.0), step_dt=0.01), env)
    assert problems == ['stiffness differs (R_knee: contract 35, task 30)',
                        'policy period: contract 0.01 s, task 0.02 s']
    other = bot_contract(observation=ObsGroup.from_json({'joints': POLICY_JOINTS, 'terms': ISAAC_TERMS[1:]}))
    assert check_contract(other, env)[0].startswith("observation: terms differ: expected ['base_ang_vel'")
    with pytest.raises(ContractError, match=r"joints \['L_knee'\] are not joints of .*bot.xml"):
        task_from_contract(bot_contract(joints=('F_knee', 'L_knee')), tmp_path / 'robot' / 'bot.xml', 'bot', tmp_path)
    with pytest.raises(ContractError, match=r'policy period 0.02 s is not a whole number of physics steps of 0.003'):
        task_from_contract(bot_contract(), tmp_path / 'robot' / 'bot.xml', 'bot', tmp_path, timestep=0.003)


def test_make_task_and_import_teacher_from_a_contract_file_on_the_command_line(tmp_path, capsys):
    """The README's path: `make-task --contract` writes a task and its contract for the robot model,
    `import-teacher --contract` names the policy's outputs by the contract's joints (the policy's
    order, R_knee second, the model's first), and the imported teacher reads the task's terms."""
    import torch

    from distill_ros.cli import main
    from distill_ros.contract_sources import write_contract_yaml
    from distill_ros.policies import checkpoint as ckpt_io

    (tmp_path / 'robot').mkdir()
    (tmp_path / 'robot' / 'bot.xml').write_text(ROBOT)
    write_contract_yaml(bot_contract(), tmp_path / 'policy_contract.yaml')
    with pytest.raises(SystemExit) as done:
        main(['make-task', '--contract', str(tmp_path / 'policy_contract.yaml'), '--model',
              str(tmp_path / 'robot' / 'bot.xml'), '--name', 'bot', '--timestep', '0.005', '--out', str(tmp_path)])
    assert done.value.code == 0, capsys.readouterr().err
    assert 'policy joint order (for import-teacher --contract): F_knee, R_knee' in capsys.readouterr().out
    env = DistillEnv(load_task(tmp_path / 'bot.yaml'), randomize=False)
    torch.manual_seed(0)
    policy = torch.nn.Sequential(torch.nn.Linear(env.privileged_spec.size, 8), torch.nn.Tanh(),
                                 torch.nn.Linear(8, 2)).eval()
    torch.onnx.export(policy, (torch.zeros(1, env.privileged_spec.size),), str(tmp_path / 'policy.onnx'),
                      dynamo=False)
    with pytest.raises(SystemExit) as done:
        main(['import-teacher', 'onnx', str(tmp_path / 'policy.onnx'), '--task', str(tmp_path / 'bot.yaml'),
              '--contract', str(tmp_path / 'bot.contract.yaml'), '--out', str(tmp_path / 'teacher')])
    assert done.value.code == 0, capsys.readouterr().err
    teacher = ckpt_io.load(tmp_path / 'teacher')
    teacher.check_env(env)
    obs = np.random.default_rng(0).normal(size=(4, env.privileged_spec.size)).astype(np.float32)
    with torch.no_grad():
        theirs = policy(torch.as_tensor(obs)).numpy()
        ours = teacher.model(torch.as_tensor(obs)).numpy()
    for j, joint in enumerate(env.action_names):
        np.testing.assert_allclose(ours[:, j], theirs[:, POLICY_JOINTS.index(joint)], atol=1e-5)
