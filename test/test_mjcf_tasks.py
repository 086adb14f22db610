"""Tasks on a robot's own MJCF (not a gymnasium id): names from the model, PD position actuation at the
physics rate, a YAML reward with a velocity command, the shipped quadruped standing on its PD loop,
the Menagerie error offline, and the position targets the student controller sends."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import yaml

from distill_ros.observation import COMMAND, COMMAND_ELEMENTS, JOINT_POSITION, SensorMismatch, SensorObsBuilder
from distill_ros.sim import PRIVILEGED, SENSOR, DistillEnv, TaskConfigError, load_task
from distill_ros.sim.actuation import position_command
from distill_ros.sim.task import parse_task

# An arm with two hinges about y (no gravity: a still simulator), one motor each.
ARM = """<mujoco model="arm">
  <option timestep="0.002" gravity="0 0 0"/>
  <worldbody>
    <body name="upper"><joint name="shoulder" axis="0 1 0"/><geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03"/>
      <body name="lower" pos="0.3 0 0"><joint name="elbow" axis="0 1 0"/>
        <geom type="capsule" fromto="0 0 0 0.25 0 0" size="0.02"/></body></body>
  </worldbody>
  <actuator><motor joint="elbow" ctrlrange="-2 2"/><motor joint="shoulder" ctrlrange="-5 5"/></actuator>
</mujoco>
"""


def arm_task(tmp_path, **overrides) -> dict:
    (tmp_path / 'models').mkdir(exist_ok=True)
    (tmp_path / 'models' / 'arm.xml').write_text(ARM)
    data = {'name': 'arm', 'env': {'model': 'models/arm.xml', 'max_episode_steps': 50, 'best_return': 50},
            'imu': {'body': 'lower', 'pos': [0.25, 0, 0]},
            'sensors': {'joints': ['shoulder', 'elbow'], 'joint_velocity': True},
            'reward': {'alive': 1.0}}
    data.update(overrides)
    return data


def build(tmp_path, data) -> DistillEnv:
    path = tmp_path / 'arm.yaml'
    path.write_text(yaml.safe_dump(data))
    return DistillEnv(load_task(path), randomize=False, sensor_noise=False, latency=False)


def test_task_from_an_mjcf_file_steps_and_names_joints_from_the_model(tmp_path):
    env = build(tmp_path, arm_task(tmp_path))
    assert env.action_names == ['elbow', 'shoulder']              # the model's actuator order
    assert env.sensor_spec.fields[0].elements == ('shoulder', 'elbow')
    np.testing.assert_array_equal(env.action_space.high, [2, 5])  # the motors' ctrlrange
    assert env.dt == pytest.approx(0.002)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0]))
    assert reward == 1.0 and not terminated and info['reward_terms'] == {'alive': 1.0}
    velocity = env.sensor_spec.get(obs[SENSOR], 'joint_velocity')
    assert velocity[1] > 0 and velocity[0] < 0                    # the elbow turns, the shoulder reacts


@pytest.mark.parametrize('edit, message', [
    (lambda d: d['sensors'].update(joints=['shoulder', 'wrist']),
     r"sensors.joints entry 'wrist' is not a joint of the model; joints are \['shoulder', 'elbow'\]"),
    (lambda d: d['imu'].update(body='hand'), r"imu.body 'hand' is not a body of the model; bodies are \['world', "),
    (lambda d: d.update(actuation={'type': 'position', 'kp': {'shoulder': 1.0, 'wrist': 2.0}, 'kd': 0.1,
                                   'default_pose': 0.0}),
     r"actuation.kp gives no value for joint 'elbow'"),
    (lambda d: d.update(actuation={'type': 'position', 'kp': 1.0, 'kd': 0.1,
                                   'default_pose': {'shoulder': 0.0, 'elbow': 0.0, 'wrist': 0.0}}),
     r"actuation.default_pose names \['wrist'\], which match no actuated joint; the actuated joints are "
     r"\['elbow', 'shoulder'\]"),
    (lambda d: d.update(terminate={'contact_bodies': ['foot']}),
     r"terminate.contact_bodies entry 'foot' is not a body of the model"),
    (lambda d: d['env'].update(id='Hopper-v5'), 'give exactly one of id'),
    (lambda d: d.pop('reward'), 'needs a reward section'),
    (lambda d: d['reward'].update(speed=1.0), "unknown reward term 'speed'"),
])
def test_a_yaml_naming_what_the_model_lacks_is_refused(tmp_path, edit, message):
    data = arm_task(tmp_path)
    edit(data)
    with pytest.raises(TaskConfigError, match=message):
        build(tmp_path, data)


def test_gymnasium_tasks_refuse_mjcf_only_sections():
    data = yaml.safe_load(open(load_task('cartpole').source).read())
    data['reward'] = {'alive': 1.0}
    with pytest.raises(TaskConfigError, match=r"\['reward'\] are for tasks on a model file"):
        parse_task(data, 'edited.yaml')


def test_pd_position_actuation_tracks_the_target_at_the_physics_rate(tmp_path):
    kp, kd, limit = {'elbow': 8.0, 'shoulder': 20.0}, 0.5, {'elbow': 1.5, 'shoulder': 10.0}
    env = build(tmp_path, arm_task(tmp_path, actuation={
        'type': 'position', 'kp': kp, 'kd': kd, 'default_pose': {'elbow': 0.3, 'shoulder': -0.2},
        'action_scale': 0.5, 'action_clip': 2.0, 'torque_limit': limit, 'decimation': 5}))
    assert env.dt == pytest.approx(0.01)
    obs, _ = env.reset(seed=0)
    position = env.sensor_spec.slice(JOINT_POSITION)          # shoulder, elbow
    np.testing.assert_allclose(obs[SENSOR][position], [-0.2, 0.3])   # starts at the default pose
    action = np.array([1.0, 0.8])                             # elbow, shoulder offsets / action_scale
    target = np.array([0.3 + 0.5 * 1.0, -0.2 + 0.5 * 0.8])
    for _ in range(300):
        obs, *_ = env.step(action)
    np.testing.assert_allclose(obs[SENSOR][position][::-1], target, atol=2e-3)
    # The law itself, in the last physics step: tau = clip(kp (q* - q) - kd qdot, +-limit) per joint.
    env.reset(seed=0)
    env.step(np.array([2.0, -2.0]))
    q, qd = env.data.qpos[env._actuated_qpos], env.data.qvel[env._actuated_qpos]
    mujoco_force = env.data.actuator_force.copy()
    import mujoco
    mujoco.mj_forward(env.model, env.data)                    # the force at the current state
    gains, limits = np.array([8.0, 20.0]), np.array([1.5, 10.0])
    expected = np.clip(gains * (np.array([1.3, -1.2]) - q) - kd * qd, -limits, limits)
    np.testing.assert_allclose(env.data.actuator_force, expected, rtol=1e-9, atol=1e-9)
    assert np.abs(mujoco_force[0]) == pytest.approx(1.5)      # the elbow's torque limit holds
    assert env.action_space.high.tolist() == [2.0, 2.0]


def test_the_quadruped_stands_on_its_pd_loop_with_zero_action():
    env = DistillEnv('quadruped', randomize=False, sensor_noise=False, latency=False)
    assert env.action_names[:3] == ['FL_hip_joint', 'FL_thigh_joint', 'FL_calf_joint'] and len(env.action_names) == 12
    assert env.dt == pytest.approx(0.02)
    obs, info = env.reset(seed=3)
    for _ in range(150):                                      # 3 s at 50 Hz
        obs, reward, terminated, truncated, _ = env.step(np.zeros(12))
        assert not terminated
    base = env.model.body('base').id
    assert 0.26 < env.data.xpos[base, 2] < 0.33 and env.data.xmat[base, 8] > 0.99   # up and level
    assert np.abs(env.data.qvel).max() < 0.05                                        # at rest
    np.testing.assert_allclose(env.data.qpos[env._actuated_qpos], env.position.default_pose, atol=0.25)
    contact = env.privileged_spec.get(obs[PRIVILEGED], 'contact_force').reshape(4, 3)
    assert (np.abs(contact[:, 2]) > 10).all()                 # on four feet


def test_the_velocity_command_is_in_both_observations():
    env = DistillEnv('quadruped')
    for seed in (0, 1):
        obs, info = env.reset(seed=seed)
        command = np.array([info['command'][k] for k in COMMAND_ELEMENTS])
        for name, (low, high) in env.task.command.items():
            assert low <= info['command'][name] <= high
        obs, *_ = env.step(np.zeros(12))
        assert env.sensor_spec.names[-1] == COMMAND and env.sensor_spec.fields[-1].elements == COMMAND_ELEMENTS
        np.testing.assert_array_equal(env.sensor_spec.get(obs[SENSOR], COMMAND), command)   # read exactly
        np.testing.assert_array_equal(env.privileged_spec.get(obs[PRIVILEGED], COMMAND), command)
    # The student's builder takes it beside the sensor messages (at run time: from cmd_vel).
    builder = SensorObsBuilder.from_spec(env.sensor_spec)
    assert builder.has_command
    reading = builder.reading(obs[SENSOR])
    np.testing.assert_array_equal(builder.build(reading), obs[SENSOR])

    class Joints:
        name = list(env.sensor_spec.fields[0].elements)
        position, velocity, effort = [0.0] * 12, [0.1] * 12, []
    joints_only = SensorObsBuilder(Joints.name, joint_velocity=True, imu=False, command=True)
    with pytest.raises(SensorMismatch, match='needs the velocity command'):
        joints_only.build_from_messages(Joints())
    np.testing.assert_array_equal(joints_only.build_from_messages(Joints(), command=[0.5, 0.0, -0.2])[-4:],
                                  [0.1, 0.5, 0.0, -0.2])


def test_set_command_reaches_both_observations_and_the_reward_at_once():
    """DistillEnv.set_command (sim_node's cmd_vel) replaces the drawn command from the next step on:
    in both observations, undelayed by sensor latency, and in the reward's tracking terms;
    options['command'] sets it at reset without changing the rest of the seed's episode."""
    env, same = DistillEnv('quadruped'), DistillEnv('quadruped')
    env.reset(seed=4)
    env.latency_steps = 1                             # a delayed sensor: the command must not lag with it
    obs, _, _, _, info = env.step(np.zeros(12))
    drawn_tracking = info['reward_terms']['lin_vel_tracking']
    env.set_command(0.0, 0.0, 0.0)
    obs, _, _, _, info = env.step(np.zeros(12))
    np.testing.assert_array_equal(env.sensor_spec.get(obs[SENSOR], COMMAND), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(env.privileged_spec.get(obs[PRIVILEGED], COMMAND), [0.0, 0.0, 0.0])
    assert env.reward.command is env.command          # the reward reads the same array
    # Standing still tracks zero velocity far better than the drawn command.
    assert info['reward_terms']['lin_vel_tracking'] > drawn_tracking
    with pytest.raises(ValueError, match='NaN or Inf'):
        env.set_command(float('nan'), 0.0, 0.0)
    # At reset: the given command; everything else is the seed's.
    given, _ = env.reset(seed=5, options={'command': (0.5, -0.2, 0.3)})
    drawn, info = same.reset(seed=5)
    np.testing.assert_array_equal(env.sensor_spec.get(given[SENSOR], COMMAND), [0.5, -0.2, 0.3])
    np.testing.assert_array_equal(env.privileged_spec.get(given[PRIVILEGED], COMMAND), [0.5, -0.2, 0.3])
    command = env.sensor_spec.slice(COMMAND)
    np.testing.assert_array_equal(np.delete(given[SENSOR], command), np.delete(drawn[SENSOR], command))
    assert not np.array_equal(given[SENSOR][command], drawn[SENSOR][command])
    with pytest.raises(ValueError, match="task 'cartpole' has no velocity command"):
        DistillEnv('cartpole').set_command(0.0, 0.0, 0.0)


def test_a_menagerie_robot_without_the_package_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'mujoco_menagerie', None)   # not importable, installed or not
    data = arm_task(tmp_path)
    data['env'] = {'menagerie': 'unitree_go2', 'max_episode_steps': 10, 'best_return': 1}
    data['sensors']['joints'] = ['FL_hip_joint']
    with pytest.raises(TaskConfigError, match=r"env.menagerie 'unitree_go2'.*must be downloaded first.*"
                                              r"pip install mujoco-menagerie.*env.model") as error:
        DistillEnv(parse_task(data, 'go2.yaml'))
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_position_command_targets_for_the_controller():
    joints = list(reversed(DistillEnv('quadruped').action_names))   # any command_joints order
    position = position_command('quadruped', joints)
    action = np.linspace(-1, 1, 12)
    default = {'hip': 0.0, 'calf': -1.5}
    expected = [default.get(j.split('_')[1], 0.8 if j[0] == 'F' else 1.0) + 0.25 * a for j, a in zip(joints, action)]
    np.testing.assert_allclose(position.targets(action), expected)
    np.testing.assert_allclose(position.targets(np.zeros(12)), [e - 0.25 * a for e, a in zip(expected, action)])
    with pytest.raises(TaskConfigError, match="task 'cartpole' has torque actuation"):
        position_command('cartpole', ['slider'])


def test_standing_still_its_tracking_error_is_the_command_and_the_table_shows_it():
    """evaluate.run_episodes keeps a command task's per-step tracking error; a robot standing on its
    PD loop (zero action) misses the command by the command itself, so the summary's mean error is
    the mean commanded speed, and the report's table gains the two tracking columns."""
    from distill_ros.distill.evaluate import run_episodes, summarize
    from distill_ros.distill.report import markdown_table
    env = DistillEnv('quadruped')
    env.task = env.task.__class__(**{**env.task.__dict__, 'max_episode_steps': 100})
    results = run_episodes(env, lambda obs: np.zeros(12), seeds=[3, 4, 5])
    commands = []
    for seed in (3, 4, 5):
        _, info = DistillEnv('quadruped').reset(seed=seed)
        commands.append([info['command'][k] for k in COMMAND_ELEMENTS])
    commands = np.array(commands)
    summary = summarize(results)
    assert all(r.tracking_error.shape == (100, 2) for r in results)
    assert summary['lin_vel_error_mean'] == pytest.approx(np.hypot(commands[:, 0], commands[:, 1]).mean(), abs=0.05)
    assert summary['yaw_rate_error_mean'] == pytest.approx(np.abs(commands[:, 2]).mean(), abs=0.05)
    assert summary['lin_vel_error_p95'] >= summary['lin_vel_error_mean']
    row = {'name': 'standing', 'privileged_input': False, 'params': 1, 'size_ratio': 1.0, 'flops': 2, 'ratio': 1.0,
           'latency_p50_us': 1.0, 'latency_p99_us': 2.0, **summary}
    table = markdown_table([row])
    assert 'v error mean/p95 m/s' in table and f"{summary['lin_vel_error_mean']:.3f} / " in table
    assert 'v error' not in markdown_table([{k: v for k, v in row.items() if 'error' not in k}])


def test_feet_air_time_rewards_a_touchdown_by_its_time_in_the_air(tmp_path):
    """legged_gym's feet_air_time: 0 while the feet stay down; at a touchdown, the seconds the foot
    was in the air minus `target`; nothing without feet (privileged.contact_bodies) to name."""
    env = DistillEnv('quadruped')
    env.reset(seed=0, options={'command': (1.0, 0.0, 0.0)})
    terms = {'feet_air_time': env.task.reward['feet_air_time']}
    target = terms['feet_air_time'].params['target']
    for _ in range(25):                               # the robot starts a little above the floor: settle
        env.step(np.zeros(12))
    standing = [env.step(np.zeros(12))[4]['reward_terms']['feet_air_time'] for _ in range(20)]
    assert standing == [0.0] * 20
    # Lift the front-left foot (thigh back, calf folded) for 10 policy steps, then put it down.
    lift = np.zeros(12)
    lift[1], lift[2] = -3.0, -3.0
    values = [env.step(lift)[4]['reward_terms']['feet_air_time'] for _ in range(10)]
    values += [env.step(np.zeros(12))[4]['reward_terms']['feet_air_time'] for _ in range(15)]
    touchdowns = [v for v in values if v != 0.0]
    assert len(touchdowns) >= 1
    air = touchdowns[0] / terms['feet_air_time'].weight + target
    assert 0.1 <= air <= 0.6                          # ~10-12 policy steps of 0.02 s in the air
    data = arm_task(tmp_path, reward={'feet_air_time': 1.0})
    with pytest.raises(TaskConfigError, match='feet_air_time needs the feet'):
        build(tmp_path, data)


def test_the_shipped_quadruped_teacher_walks_where_it_is_told():
    """distill_ros/teachers/quadruped follows a commanded velocity: forward, sideways and turning,
    each within 0.15 m/s or rad/s over the last 2 s of 4 (a robot standing still misses by 0.5)."""
    from distill_ros.distill.evaluate import privileged_actor
    from distill_ros.policies import checkpoint as ckpt_io
    from distill_ros.teachers import shipped_teacher
    act = privileged_actor(ckpt_io.load(shipped_teacher('quadruped')))
    env = DistillEnv('quadruped')
    for command in [(0.5, 0.0, 0.0), (0.0, -0.5, 0.0), (0.3, 0.0, 0.5)]:
        obs, _ = env.reset(seed=7, options={'command': command})
        errors = []
        for _ in range(200):
            obs, _, terminated, _, info = env.step(act(obs))
            assert not terminated, command
            errors.append(info['tracking_error'])
        linear, yaw = np.mean(errors[100:], axis=0)
        assert linear < 0.15 and yaw < 0.15, (command, linear, yaw)


def test_env_model_from_a_package_share(tmp_path, monkeypatch):
    """env.model: package://<package>/<path>, found through the ament index of the sourced workspace
    (a real index: share/ament_index/resource_index/packages/<package>); distill_ros's own share
    folder; an unknown package refused with the index it searched."""
    pytest.importorskip('ament_index_python')   # comes with rclpy
    prefix = tmp_path / 'install'
    (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages').mkdir(parents=True)
    (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'my_robot').write_text('')
    (prefix / 'share' / 'my_robot' / 'mjcf').mkdir(parents=True)
    (prefix / 'share' / 'my_robot' / 'mjcf' / 'arm.xml').write_text(ARM)
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    data = arm_task(tmp_path)
    data['env']['model'] = 'package://my_robot/mjcf/arm.xml'
    task = parse_task(data, 'arm.yaml')
    assert task.model_file == str((prefix / 'share' / 'my_robot' / 'mjcf' / 'arm.xml').resolve())
    assert DistillEnv(task).action_names == ['elbow', 'shoulder']
    quadruped = yaml.safe_load(open(load_task('quadruped').source))
    quadruped['env']['model'] = 'package://distill_ros/config/tasks/models/quadruped.xml'
    assert parse_task(quadruped, 'q.yaml').model_file == load_task('quadruped').model_file
    data['env']['model'] = 'package://no_such_robot/mjcf/arm.xml'
    with pytest.raises(TaskConfigError, match=r"package 'no_such_robot' of 'package://no_such_robot/mjcf/arm.xml' "
                                              r"is not in the ament index \(AMENT_PREFIX_PATH="):
        parse_task(data, 'arm.yaml')
    data['env']['model'] = 'package://my_robot'
    with pytest.raises(TaskConfigError, match='is not package://<package>/<path'):
        parse_task(data, 'arm.yaml')


# A floating base whose inertia the model writes in a frame of its own: turned 120 degrees about
# (1, 1, 1) (x -> y -> z, as a Menagerie Go2 turns its base inertia about 90 degrees), centre of mass
# at the body origin; no gravity, so a pushed base coasts. `{iquat}` and `{inertia}` are filled in.
FLOATING_BASE = """<mujoco model="floating">
  <option timestep="0.002" gravity="0 0 0"/>
  <worldbody>
    <geom name="ground" type="plane" size="0 0 0.05"/>
    <body name="trunk" pos="0 0 1">
      <freejoint name="base_joint"/>
      <inertial pos="0 0 0" quat="{iquat}" mass="6" diaginertia="{inertia}"/>
      <geom type="box" size="0.2 0.05 0.05" contype="0" conaffinity="0" mass="0"/>
      <body name="leg" pos="0.2 0 0"><joint name="knee" axis="0 1 0"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.2" size="0.02" contype="0" conaffinity="0"/></body>
    </body>
  </worldbody>
  <actuator><motor joint="knee" ctrlrange="-1 1"/></actuator>
</mujoco>
"""


def floating_task(tmp_path, name: str, iquat: str, inertia: str) -> DistillEnv:
    (tmp_path / f'{name}.xml').write_text(FLOATING_BASE.format(iquat=iquat, inertia=inertia))
    data = {'name': name, 'env': {'model': f'{name}.xml', 'max_episode_steps': 50, 'best_return': 1},
            'sensors': {'joints': ['knee']}, 'command': {'vx': [0.4, 0.4], 'vy': [-0.2, -0.2], 'yaw_rate': [0.5, 0.5]},
            'reward': {'lin_vel_tracking': 1.0, 'yaw_rate_tracking': 1.0, 'lin_vel_z': 1.0, 'ang_vel_xy': 1.0}}
    path = tmp_path / f'{name}.yaml'
    path.write_text(yaml.safe_dump(data))
    return DistillEnv(load_task(path), randomize=False, sensor_noise=False, latency=False)


def test_base_velocity_is_measured_in_the_body_frame_whatever_the_inertial_frame(tmp_path):
    """The tracking error and the velocity terms read the base's velocity in its body frame: on a
    base whose inertial frame is turned (x -> y -> z), coasting at (0.4, -0.2, 0) m/s and 0.5 rad/s
    about its own z, they equal the free joint's velocity expressed in the body frame, and equal
    those of the same body written with an unturned inertia. (Read in the inertial frame, the axes
    swap: a 0.63 m/s 'error' while moving at the command.)"""
    turned = floating_task(tmp_path, 'turned', '0.5 0.5 0.5 0.5', '0.02 0.09 0.1')
    # The same body: the turned frame's principal moments, listed along the body's own axes.
    plain = floating_task(tmp_path, 'plain', '1 0 0 0', '0.1 0.02 0.09')
    np.testing.assert_allclose(turned.model.body('trunk').iquat, [0.5, 0.5, 0.5, 0.5])
    results = []
    for env in (turned, plain):
        env.reset(seed=0)
        yaw = 0.7                                          # the base is turned in the world, too
        env.data.qpos[3:7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        rotation = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
        env.data.qvel[:3] = rotation @ [0.4, -0.2, 0.0]    # a free joint's linear velocity: world frame
        env.data.qvel[3:6] = [0.0, 0.0, 0.5]               # its angular velocity: body frame
        import mujoco
        mujoco.mj_forward(env.model, env.data)
        obs, _, _, _, info = env.step(np.zeros(1))
        # The truth from the free joint (the reward reads the last substep's start: 1e-5 apart).
        body = env.data.xmat[env.model.body('trunk').id].reshape(3, 3).T @ env.data.qvel[:3]
        spin = env.data.qvel[3:6]
        linear_error, yaw_error = info['tracking_error']
        assert linear_error == pytest.approx(np.hypot(0.4 - body[0], -0.2 - body[1]), abs=1e-5)
        assert linear_error < 0.01 and yaw_error < 1e-6      # moving at the command
        terms = info['reward_terms']
        assert terms['lin_vel_z'] == pytest.approx(body[2] ** 2, abs=1e-9)
        assert terms['ang_vel_xy'] == pytest.approx(spin[0] ** 2 + spin[1] ** 2, abs=1e-9)
        assert terms['lin_vel_tracking'] > 0.999 and terms['yaw_rate_tracking'] > 0.999
        results.append((info['tracking_error'], terms, obs[PRIVILEGED]))
    (error_a, terms_a, privileged_a), (error_b, terms_b, privileged_b) = results
    np.testing.assert_allclose(error_a, error_b, atol=1e-9)
    assert terms_a == pytest.approx(terms_b, abs=1e-9)
    np.testing.assert_allclose(privileged_a, privileged_b, atol=1e-9)   # qpos/qvel: not the inertial frame


# The arm with an IMU of its own, as a robot's MJCF has one (unitree_mujoco's Go2: site `imu`,
# sensors `imu_gyro`, `imu_quat`): the site turned 90 degrees about x, so its frame is not the link's.
ARM_WITH_IMU = ARM.replace(
    '<geom type="capsule" fromto="0 0 0 0.25 0 0" size="0.02"/></body>',
    '<geom type="capsule" fromto="0 0 0 0.25 0 0" size="0.02"/>'
    '<site name="imu" pos="0.1 0 0" quat="0.7071068 0.7071068 0 0"/></body>').replace(
    '</actuator>', '</actuator>\n  <sensor><gyro name="imu_gyro" site="imu"/><framequat name="imu_quat" objtype="site" '
    'objname="imu"/></sensor>')


def test_a_model_with_its_own_imu_site_loads_and_imu_site_reads_it(tmp_path):
    """A model that has a site `imu` and sensors `imu_gyro`, `imu_quat` no longer clashes with what
    the task adds (`repeated name 'imu' in site` before); `imu.site: imu` reads the model's own site:
    the IMU fields equal the model's own sensors on it, in the site's frame, not the link's."""
    data = arm_task(tmp_path)
    (tmp_path / 'models' / 'arm.xml').write_text(ARM_WITH_IMU)   # in place of the plain arm
    added = build(tmp_path, data)                                  # imu.body: lower, a site of the task's own
    data['imu'] = {'site': 'imu'}
    own = build(tmp_path, data)
    for env in (added, own):
        env.reset(seed=0)
        for _ in range(20):
            obs, *_ = env.step(np.array([0.0, 1.0]))                  # the shoulder spins the arm about y
    gyro, quat = own.data.sensor('imu_gyro').data, own.data.sensor('imu_quat').data   # the model's sensors
    np.testing.assert_array_equal(own.sensor_spec.get(obs[SENSOR], 'imu_angular_velocity'), gyro)
    np.testing.assert_array_equal(own.sensor_spec.get(obs[SENSOR], 'imu_orientation'), [*quat[1:], quat[0]])
    assert abs(gyro[2]) > 0.1 and abs(gyro[1]) < 1e-9                 # about the site's z (the link's -y)
    link_gyro = added.sensor_spec.get(added._observe()[SENSOR], 'imu_angular_velocity')
    assert abs(link_gyro[1]) > 0.1 and abs(link_gyro[2]) < 1e-9       # the added site: the link's frame
    data['imu'] = {'site': 'imu', 'pos': [0.0, 0.0, 0.0]}
    with pytest.raises(TaskConfigError, match=r"imu.site 'imu' is the model's own site.*drop imu.pos"):
        build(tmp_path, data)
    data['imu'] = {'site': 'imu_link'}
    with pytest.raises(TaskConfigError, match=r"imu.site 'imu_link' is not a site of the model; sites are \['imu'\]"):
        build(tmp_path, data)
    data['imu'] = {'bdy': 'lower'}
    with pytest.raises(TaskConfigError, match=r"imu: unknown keys \['bdy'\]; expected some of \['body', 'pos', "):
        build(tmp_path, data)


def test_env_timestep_sets_the_physics_step_and_unknown_env_keys_are_refused(tmp_path, capsys):
    """env.timestep is the physics step of a model-file task (it was silently ignored: the period
    stayed the model's 2 ms); the policy period is timestep x decimation, and `distill-ros tasks`
    prints all three. A key the task format does not know is refused, not ignored."""
    from distill_ros import cli
    data = arm_task(tmp_path, actuation={'type': 'torque', 'decimation': 5})
    data['env']['timestep'] = 0.001
    env = build(tmp_path, data)
    assert env.model.opt.timestep == 0.001 and env.physics_timestep == 0.001 and env.decimation == 5
    assert env.dt == pytest.approx(0.005)
    env.reset(seed=0)
    env.step(np.zeros(2))
    assert env.sim_time == pytest.approx(0.005)
    with pytest.raises(SystemExit):
        cli.main(['tasks', str(tmp_path / 'arm.yaml')])
    assert 'physics timestep 1 ms x decimation 5 = policy period 5 ms (200 Hz)' in capsys.readouterr().out
    for edit, message in [
            (lambda d: d['env'].update(time_step=0.001),
             r"arm.yaml: env: unknown keys \['time_step'\]; expected some of \['id', 'model', .*'timestep'"),
            (lambda d: d['env'].update(timestep=0.0), r'env.timestep must be a physics step in seconds, 0 < timestep'),
            (lambda d: d['env'].update(timestep='1ms'), r"'timestep' must be float, got '1ms'"),
            (lambda d: d['sensors'].update(joint_velocities=True), r"sensors: unknown keys \['joint_velocities'\]"),
            (lambda d: d.update(floor=True), r"arm.yaml: unknown keys \['floor'\]; expected some of \['name', "),
    ]:
        edited = arm_task(tmp_path)
        edit(edited)
        with pytest.raises(TaskConfigError, match=message):
            build(tmp_path, edited)
    cartpole = yaml.safe_load(open(load_task('cartpole').source))
    cartpole['env']['timestep'] = 0.01
    with pytest.raises(TaskConfigError, match=r'env.timestep is for tasks on a model file; gymnasium takes env.kwargs'):
        parse_task(cartpole, 'edited.yaml')


def free_base_task(tmp_path, joint: str) -> DistillEnv:
    """FLOATING_BASE with its free joint written as `joint` and the docs' qpos_exclude [root/x, root/y]."""
    xml = FLOATING_BASE.format(iquat='1 0 0 0', inertia='0.1 0.02 0.09').replace('<freejoint name="base_joint"/>',
                                                                                  joint)
    (tmp_path / 'base.xml').write_text(xml)
    data = {'name': 'base', 'env': {'model': 'base.xml', 'max_episode_steps': 10, 'best_return': 1},
            'sensors': {'joints': ['knee']}, 'privileged': {'qpos_exclude': ['root/x', 'root/y']},
            'reward': {'alive': 1.0}}
    path = tmp_path / 'base.yaml'
    path.write_text(yaml.safe_dump(data))
    return DistillEnv(load_task(path), randomize=False, sensor_noise=False, latency=False)


def test_an_unnamed_free_joint_is_root_and_qpos_exclude_root_fits_any_floating_base(tmp_path):
    """`<freejoint/>` (unnamed, as many robots' MJCFs write it) gives elements `root/x` ... (they read
    `None/x` before and qpos_exclude [root/x, root/y] was refused); a free joint the model names
    keeps its name, and `root/...` in qpos_exclude still means its elements."""
    env = free_base_task(tmp_path, '<freejoint/>')
    assert env.privileged_spec.fields[0].elements == ('root/z', 'root/qw', 'root/qx', 'root/qy', 'root/qz', 'knee')
    assert env.privileged_spec.fields[1].elements == ('root/vx', 'root/vy', 'root/vz', 'root/wx', 'root/wy', 'root/wz',
                                                     'knee')
    obs, _ = env.reset(seed=0)
    assert env.privileged_spec.get(obs[PRIVILEGED], 'qpos')[0] == pytest.approx(1.0)   # root/z: the base's height
    named = free_base_task(tmp_path, '<freejoint name="floating_base"/>')
    assert named.privileged_spec.fields[0].elements[:2] == ('floating_base/z', 'floating_base/qw')
    assert named.privileged_spec.fields[1].elements[0] == 'floating_base/vx'
    quadruped = DistillEnv('quadruped')                                # named `root` in our model: unchanged
    assert quadruped.privileged_spec.fields[0].elements[:2] == ('root/z', 'root/qw')


def test_action_scale_per_joint(tmp_path):
    """actuation.action_scale takes a per-joint mapping as kp and kd do (legged policies scale hips
    by 0.125, thighs and calves by 0.25; it was refused: "must be float"): the simulator's targets
    and the controller's (`position_command`, in any joint order) both use each joint's own scale."""
    actuation = {'type': 'position', 'kp': 20.0, 'kd': 0.5, 'default_pose': {'elbow': 0.3, 'shoulder': -0.2},
                 'action_scale': {'elbow': 0.125, 'shoul.*': 0.25}, 'action_clip': 4.0}
    env = build(tmp_path, arm_task(tmp_path, actuation=actuation))
    np.testing.assert_array_equal(env.position.action_scale, [0.125, 0.25])      # action order: elbow, shoulder
    env.reset(seed=0)
    action = np.array([2.0, -2.0])
    for _ in range(1500):
        obs, *_ = env.step(action)
    position = env.sensor_spec.get(obs[SENSOR], JOINT_POSITION)                  # shoulder, elbow
    np.testing.assert_allclose(position, [-0.2 + 0.25 * -2.0, 0.3 + 0.125 * 2.0], atol=2e-3)
    controller = position_command(env.task, ['shoulder', 'elbow'])
    np.testing.assert_allclose(controller.targets(np.array([-2.0, 2.0])), [-0.7, 0.55])
    for scale, message in [({'elbow': 0.125, 'wrist': 0.25, 'shoulder': 0.25}, r"action_scale names \['wrist'\]"),
                           ({'elbow': 0.125}, r"action_scale gives no value for joint 'shoulder'"),
                           ({'elbow': 0.0, 'shoulder': 0.25}, r'action_scale must be > 0'),
                           ('big', r'action_scale must be a number or a mapping')]:
        with pytest.raises(TaskConfigError, match=message):
            build(tmp_path, arm_task(tmp_path, actuation={**actuation, 'action_scale': scale}))


# A robot MJCF without a scene: a floating box with a flap, gravity on, no floor (the bare robot
# file of a Menagerie-class robot, before its scene.xml adds the floor).
NO_FLOOR = """<mujoco model="bare">
  <worldbody>
    <body name="trunk" pos="0 0 0.5"><freejoint/><geom type="box" size="0.1 0.1 0.1" mass="2"/>
      <body name="flap" pos="0.1 0 0"><joint name="hinge" axis="0 1 0" range="-0.5 0.5"/>
        <geom type="box" size="0.05 0.02 0.01" pos="0.05 0 0" mass="0.1"/></body></body>
  </worldbody>
  <actuator><motor joint="hinge" ctrlrange="-1 1"/></actuator>
</mujoco>
"""


def test_a_floating_base_without_a_floor_is_refused_or_gets_one_by_option(tmp_path):
    """A free-floating robot with no floor fell out of the world; now it is refused with the option
    to set, `env.add_floor: true` adds a floor plane it stands on, `add_floor: false` accepts a
    model meant to float, and add_floor on a model that has a floor is refused."""
    (tmp_path / 'bare.xml').write_text(NO_FLOOR)
    data = {'name': 'bare', 'env': {'model': 'bare.xml', 'max_episode_steps': 500, 'best_return': 1},
            'sensors': {'joints': ['hinge']}, 'reward': {'alive': 1.0}}

    def make(**env) -> DistillEnv:
        path = tmp_path / 'bare.yaml'
        path.write_text(yaml.safe_dump({**data, 'env': {**data['env'], **env}}))
        return DistillEnv(load_task(path), randomize=False, sensor_noise=False, latency=False)

    with pytest.raises(TaskConfigError, match=r"bare.yaml: the model has a floating base \(a free joint\) but no "
                                              r"floor.*add `add_floor: true` to the task's env section"):
        make()
    heights = {}
    for add_floor in (True, False):
        env = make(add_floor=add_floor)
        env.reset(seed=0)
        for _ in range(500):                                           # 1 s
            env.step(np.zeros(1))
        heights[add_floor] = env.data.body('trunk').xpos[2]
    assert heights[True] == pytest.approx(0.1, abs=0.01)              # resting on the floor
    assert heights[False] < -3.0                                      # falling, as asked
    (tmp_path / 'models').mkdir()
    arm = arm_task(tmp_path)
    floor = FLOATING_BASE.format(iquat='1 0 0 0', inertia='0.1 0.02 0.09')   # has a ground plane
    (tmp_path / 'base.xml').write_text(floor)
    data = {**data, 'env': {**data['env'], 'model': 'base.xml'}, 'sensors': {'joints': ['knee']}}
    with pytest.raises(TaskConfigError, match=r"env.add_floor is true but the model has a floor already \(geoms "
                                              r"\['ground'\]\); drop env.add_floor"):
        make(add_floor=True)
    arm['env']['add_floor'] = True
    build(tmp_path, arm)                                              # a fixed arm may have a floor added
    assert DistillEnv('quadruped').model.geom('floor').type == 0      # ours has a floor plane: unchanged


def test_a_task_given_as_a_file_is_kept_by_dataset_and_checkpoint_and_resolved_downstream(tmp_path):
    """A task YAML outside the package (a name no built-in has): the dataset and every checkpoint made
    on it keep its path and hash, so DAgger, evaluation and fine-tuning find it again; a task file
    changed or moved since is refused in one line, and --task stands in for a moved one."""
    from distill_ros.data.dataset import load_dataset
    from distill_ros.distill.config import parse_config
    from distill_ros.distill.dagger import collect_teacher_dataset
    from distill_ros.distill.runner import run_distill
    from distill_ros.paths import config_path
    from distill_ros.policies import checkpoint as ckpt_io
    from distill_ros.teachers import shipped_teacher

    task_yaml = (tmp_path / 'tasks' / 'cart_file.yaml')
    task_yaml.parent.mkdir()
    task_yaml.write_text(config_path('tasks', 'cartpole.yaml').read_text().replace('name: cartpole', 'name: cart_file'))
    teacher = ckpt_io.load(shipped_teacher('cartpole'))   # the same robot: its teacher, relabelled for the file task
    teacher.task = 'cart_file'
    data = collect_teacher_dataset(str(task_yaml), teacher, tmp_path / 'data', episodes=2, progress=False)
    assert data.spec.task == 'cart_file' and data.spec.task_file.path == str(task_yaml.resolve())
    assert load_dataset(tmp_path / 'data').spec.task_file == data.spec.task_file      # kept in the manifest
    cfg = parse_config({'train': {'steps': 30, 'eval_every': 30, 'batch_size': 64},
                        'student': {'sizes': {'hidden': [8]}},
                        'dagger': {'rounds': 1, 'envs': 1, 'episodes_per_round': 1, 'steps_per_round': 10},
                        'eval': {'episodes': 1}})
    summary = run_distill(data, teacher, cfg, tmp_path / 'out', progress=False, log=lambda s: None)
    assert summary['task_file']['sha256'] == data.spec.task_file.sha256 and 'student' in summary['eval']
    assert load_dataset(tmp_path / 'out' / 'dagger' / 'round1').spec.task_file == data.spec.task_file
    student = ckpt_io.load(tmp_path / 'out' / 'student')
    assert student.task_file == data.spec.task_file.to_json()
    assert student.load_task().name == 'cart_file' and student.deployment['policy_rate_hz'] == 25

    original = task_yaml.read_text()
    task_yaml.write_text(original + '# edited\n')
    with pytest.raises(TaskConfigError, match=r'^checkpoint .*student was made on task .cart_file. from '
                                              r'.*cart_file.yaml \(sha256 [0-9a-f]{12}…\), but .* is sha256 '
                                              r'[0-9a-f]{12}…: the task changed since'):
        student.load_task()
    moved = tmp_path / 'elsewhere.yaml'
    task_yaml.rename(moved)
    moved.write_text(original)
    with pytest.raises(TaskConfigError, match=r'^the dataset was made on task .cart_file. from task file .* which '
                                              r'no longer exists; .* pass its new path with --task'):
        data.spec.load_task()
    assert data.spec.load_task(given=moved).name == 'cart_file'
    with pytest.raises(TaskConfigError, match=r"was made on task 'cart_file', but cartpole is task 'cartpole'"):
        data.spec.load_task(given='cartpole')
