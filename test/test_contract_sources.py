"""Policy contracts read from the files users have: an mjlab ONNX export's metadata, a unitree_rl_lab
deploy.yaml, an rl_sar config.yaml over its base.yaml and an Isaac Lab env.yaml, each written here
in its real key structure for a 3-joint robot whose policy order (FL_knee, FR_knee, waist) is not
its SDK order; each missing, contradictory or unrepresentable key refused with one line naming the
file and the key; and the contract written back (YAML, ONNX metadata) and read again unchanged."""
from __future__ import annotations

import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from distill_ros.contract import FRAME_MAJOR, TERM_MAJOR, TERMS, ContractError, group_difference
from distill_ros.contract_sources import (
    ONNX_CONTRACT_KEY,
    attach_onnx_metadata,
    contract_from_deploy_yaml,
    contract_from_isaaclab_env,
    contract_from_mjlab_metadata,
    contract_from_onnx,
    contract_from_rl_sar,
    detect_source,
    load_contract,
    read_onnx_metadata,
    write_contract_yaml,
)

POLICY_JOINTS = ('FL_knee', 'FR_knee', 'waist')
SDK_JOINTS = ['FR_knee', 'FL_knee', '', 'waist']   # motor order; slot 2 has no joint
STIFFNESS = {'FL_knee': 20.0, 'FR_knee': 30.0, 'waist': 50.0}
DAMPING = {'FL_knee': 0.5, 'FR_knee': 0.6, 'waist': 1.0}
DEFAULT = {'FL_knee': 0.3, 'FR_knee': -0.3, 'waist': 0.0}
SCALE = {'FL_knee': 0.25, 'FR_knee': 0.25, 'waist': 0.5}


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def by_joint(contract, values):
    return dict(zip(contract.joints, values))


def assert_robot(contract, action_offset=True):
    """The robot's joints, gains, pose and action scale, by joint name."""
    assert contract.joints == POLICY_JOINTS
    assert by_joint(contract, contract.stiffness) == STIFFNESS
    assert by_joint(contract, contract.damping) == pytest.approx(DAMPING)
    assert by_joint(contract, contract.default_joint_pos) == DEFAULT
    assert by_joint(contract, contract.action_scale) == SCALE
    if action_offset:
        assert by_joint(contract, contract.action_offset) == DEFAULT


def terms(contract):
    return [(t.name, t.scale, t.clip, t.history) for t in contract.observation.terms]


# ---------------------------------------------------------------- unitree_rl_lab deploy.yaml
DEPLOY = textwrap.dedent("""
    joint_ids_map: [1, 0, 3]
    step_dt: 0.02
    stiffness: [30.0, 20.0, 0.0, 50.0]
    damping: [0.6, 0.5, 0.0, 1.0]
    default_joint_pos: [0.3, -0.3, 0.0]
    commands:
      base_velocity:
        ranges:
          lin_vel_x: [-0.5, 1.0]
          lin_vel_y: [-0.3, 0.3]
          ang_vel_z: [-1.2, 1.2]
          heading: null
    actions:
      JointPositionAction:
        clip: null
        joint_names: [.*]
        scale: [0.25, 0.25, 0.5]
        offset: [0.3, -0.3, 0.0]
        joint_ids: null
    observations:
      base_ang_vel:
        params: {}
        clip: null
        scale: [0.2, 0.2, 0.2]
        history_length: 5
      projected_gravity:
        params: {}
        clip: null
        scale: [1.0, 1.0, 1.0]
        history_length: 5
      velocity_commands:
        params: {command_name: base_velocity}
        clip: null
        scale: [1.0, 1.0, 1.0]
        history_length: 5
      joint_pos_rel:
        params: {}
        clip: null
        scale: [1.0, 1.0, 1.0]
        history_length: 5
      joint_vel_rel:
        params: {}
        clip: null
        scale: [0.05, 0.05, 0.05]
        history_length: 5
      last_action:
        params: {}
        clip: [-10.0, 10.0]
        scale: [1.0, 1.0, 1.0]
        history_length: 5
""").lstrip()
DEPLOY_TERMS = [('base_ang_vel', (0.2,) * 3, None, 5), ('projected_gravity', (1.0,) * 3, None, 5),
                ('velocity_command', (1.0,) * 3, None, 5), ('joint_pos_rel', (1.0,) * 3, None, 5),
                ('joint_vel_rel', (0.05,) * 3, None, 5), ('last_action', (1.0,) * 3, (-10.0, 10.0), 5)]


def test_a_deploy_yaml_by_joint_name_from_the_sdk_motor_order(tmp_path):
    path = write(tmp_path / 'params' / 'deploy.yaml', DEPLOY)
    contract = load_contract(path, sdk_joints=SDK_JOINTS)
    assert detect_source(path) == 'deploy_yaml'
    assert_robot(contract)                       # gains read in SDK motor order, the rest in policy order
    assert contract.step_dt == 0.02 and contract.action_clip is None
    assert contract.command_ranges == {'lin_vel_x': (-0.5, 1.0), 'lin_vel_y': (-0.3, 0.3), 'ang_vel_z': (-1.2, 1.2)}
    assert terms(contract) == DEPLOY_TERMS
    assert contract.observation.history_layout == TERM_MAJOR and contract.observation.spec().size == 5 * 18
    # stiffness/damping of the policy's motors only, still in SDK order (an older exporter's form)
    compact = DEPLOY.replace('[30.0, 20.0, 0.0, 50.0]', '[30.0, 20.0, 50.0]').replace('[0.6, 0.5, 0.0, 1.0]',
                                                                                      '[0.6, 0.5, 1.0]')
    assert load_contract(write(tmp_path / 'compact.yaml', compact), sdk_joints=SDK_JOINTS).to_json()['stiffness'] \
        == [20.0, 30.0, 50.0]
    # the SDK names from the run's env.yaml beside it
    write(tmp_path / 'params' / 'env.yaml', 'scene:\n  robot:\n    joint_sdk_names: [FR_knee, FL_knee, "", waist]\n')
    assert load_contract(path).joints == POLICY_JOINTS


@pytest.mark.parametrize('change, message', [
    (('scale: [0.05, 0.05, 0.05]', 'scale: [0.05, 0.05]'),
     r'deploy.yaml: observations.joint_vel_rel.scale has 2 values, expected 3 \(one per joint\)$'),
    (('step_dt: 0.02\n', ''), r'deploy.yaml: missing key step_dt$'),
    (('  last_action:', '  gait_phase:'),
     r"deploy.yaml: observations.gait_phase: unknown observation term 'gait_phase'; known terms are "
     r"\[.*'base_ang_vel'"),
    (('stiffness: [30.0, 20.0, 0.0, 50.0]', 'stiffness: [30.0, 20.0]'),
     r'deploy.yaml: stiffness has 2 values, expected one per SDK motor \(at least 4\) or one per policy joint \(3\)'),
    (('joint_ids: null', 'joint_ids: [0, 1]'), r'actions.JointPositionAction.joint_ids is \[0, 1\]: an action over'),
    (('clip: null\n    joint_names', 'clip: [[-1, 1], [-1, 1], [-2, 2]]\n    joint_names'),
     r'actions.JointPositionAction.clip: the action clip differs between joints'),
])
def test_a_wrong_deploy_yaml_is_refused_naming_the_key(tmp_path, change, message):
    assert DEPLOY.count(change[0]) >= 1
    path = write(tmp_path / 'deploy.yaml', DEPLOY.replace(*change, 1))
    with pytest.raises(ContractError, match=message) as err:
        load_contract(path, sdk_joints=SDK_JOINTS)
    assert '\n' not in str(err.value)


def test_a_deploy_yaml_without_joint_names_is_refused(tmp_path):
    path = write(tmp_path / 'deploy.yaml', DEPLOY)
    with pytest.raises(ContractError, match=r'deploy.yaml: names no joints \(joint_ids_map holds SDK motor indices\): '
                                            r'pass sdk_joints='):
        contract_from_deploy_yaml(path)
    with pytest.raises(ContractError, match=r'joint_ids_map reaches SDK motor 3, sdk_joints names 3 motors'):
        contract_from_deploy_yaml(path, sdk_joints=SDK_JOINTS[:3])
    with pytest.raises(ContractError, match=r'joint_ids_map drives SDK motors \[3\], which sdk_joints leaves unnamed'):
        contract_from_deploy_yaml(path, sdk_joints=['FR_knee', 'FL_knee', 'waist', ''])


# ---------------------------------------------------------------- Isaac Lab env.yaml
ENV = textwrap.dedent("""
    viewer:
      eye: !!python/tuple
      - 7.5
      - 7.5
      - 7.5
    sim:
      physics_prim_path: /physicsScene
      dt: 0.005
      render_interval: 4
      gravity: !!python/tuple
      - 0.0
      - 0.0
      - -9.81
    decimation: 4
    scene:
      num_envs: 4096
      robot:
        class_type: isaaclab.assets.articulation.articulation:Articulation
        prim_path: /World/envs/env_.*/Robot
        init_state:
          pos: !!python/tuple
          - 0.0
          - 0.0
          - 0.4
          joint_pos:
            FL_knee: 0.3
            FR_knee: -0.3
          joint_vel:
            .*: 0.0
        actuators:
          N7520-14.3:
            class_type: isaaclab.actuators.actuator_pd:ImplicitActuator
            joint_names_expr:
            - .*_knee
            effort_limit_sim: 88
            stiffness:
              FL_.*: 20.0
              FR_.*: 30.0
            damping:
              FL_knee: 0.5
              FR_knee: 0.6
            armature: 0.01
          waist:
            class_type: isaaclab.actuators.actuator_pd:ImplicitActuator
            joint_names_expr:
            - waist
            stiffness: 50.0
            damping: 1.0
    observations:
      policy:
        concatenate_terms: true
        concatenate_dim: -1
        enable_corruption: true
        history_length: 5
        flatten_history_dim: true
        base_ang_vel:
          func: isaaclab.envs.mdp.observations:base_ang_vel
          params: {}
          modifiers: null
          noise:
            func: isaaclab.utils.noise.noise_model:uniform_noise
            operation: add
            n_min: -0.2
            n_max: 0.2
          clip: null
          scale: 0.2
          history_length: 0
          flatten_history_dim: true
        projected_gravity:
          func: isaaclab.envs.mdp.observations:projected_gravity
          params: {}
          modifiers: null
          noise: null
          clip: null
          scale: null
          history_length: 0
          flatten_history_dim: true
        velocity_commands:
          func: isaaclab.envs.mdp.observations:generated_commands
          params:
            command_name: base_velocity
          modifiers: null
          noise: null
          clip: null
          scale: null
          history_length: 0
          flatten_history_dim: true
        joint_pos_rel:
          func: isaaclab.envs.mdp.observations:joint_pos_rel
          params:
            asset_cfg:
              name: robot
              joint_names: .*
              joint_ids: !!python/object/apply:builtins.slice
              - null
              - null
              - null
              preserve_order: false
          modifiers: null
          noise: null
          clip: null
          scale: null
          history_length: 0
          flatten_history_dim: true
        joint_vel_rel:
          func: isaaclab.envs.mdp.observations:joint_vel_rel
          params: {}
          modifiers: null
          noise: null
          clip: null
          scale: 0.05
          history_length: 0
          flatten_history_dim: true
        last_action:
          func: isaaclab.envs.mdp.observations:last_action
          params: {}
          modifiers: null
          noise: null
          clip: !!python/tuple
          - -10.0
          - 10.0
          scale: null
          history_length: 0
          flatten_history_dim: true
      critic:
        concatenate_terms: true
        history_length: 5
        base_lin_vel:
          func: isaaclab.envs.mdp.observations:base_lin_vel
          params: {}
    actions:
      JointPositionAction:
        class_type: isaaclab.envs.mdp.actions.joint_actions:JointPositionAction
        asset_name: robot
        debug_vis: false
        clip: null
        joint_names:
        - .*
        scale:
          .*_knee: 0.25
          waist: 0.5
        offset: 0.0
        preserve_order: false
        use_default_offset: true
    commands:
      base_velocity:
        class_type: isaaclab.envs.mdp.commands.velocity_command:UniformVelocityCommand
        resampling_time_range: !!python/tuple
        - 10.0
        - 10.0
        heading_command: false
        ranges:
          lin_vel_x: !!python/tuple
          - -0.5
          - 1.0
          lin_vel_y: !!python/tuple
          - -0.3
          - 0.3
          ang_vel_z: !!python/tuple
          - -1.2
          - 1.2
          heading: null
""").lstrip()


def test_an_isaac_lab_env_yaml_resolves_its_regexes_over_the_joints_and_agrees_with_its_deploy_yaml(tmp_path):
    path = write(tmp_path / 'env.yaml', ENV)
    contract = load_contract(path, joints=list(POLICY_JOINTS))
    assert detect_source(path) == 'isaaclab_env'
    assert_robot(contract)               # regex-keyed gains, init pose (waist unmatched: 0) and scale
    assert contract.step_dt == pytest.approx(0.02)
    assert terms(contract) == DEPLOY_TERMS   # the group's history_length 5 applies to every term
    # the run's deploy.yaml describes the same policy
    deploy = contract_from_deploy_yaml(write(tmp_path / 'deploy.yaml', DEPLOY), sdk_joints=SDK_JOINTS)
    assert group_difference(deploy.observation, contract.observation) is None
    expected = {k: v for k, v in deploy.to_json().items() if k != 'step_dt'}
    assert {k: v for k, v in contract.to_json().items() if k != 'step_dt'} == expected
    # preserve_order: the action's order is its expressions', whatever order the joints are given in
    ordered = ENV.replace('    - .*\n    scale:', '    - waist\n    - FR_knee\n    - FL_knee\n    scale:')
    ordered = ordered.replace('preserve_order: false\n    use_default', 'preserve_order: true\n    use_default')
    other = contract_from_isaaclab_env(write(tmp_path / 'ordered.yaml', ordered),
                                       joints=['FR_knee', 'waist', 'FL_knee'])
    assert other.joints == ('waist', 'FR_knee', 'FL_knee')
    assert by_joint(other, other.stiffness) == STIFFNESS and by_joint(other, other.action_scale) == SCALE
    assert other.observation.joints == ('FR_knee', 'waist', 'FL_knee')   # the articulation's order
    assert other.observation.action_names == other.joints


@pytest.mark.parametrize('change, message', [
    (('\n      waist:\n        class_type: isaaclab.actuators.actuator_pd:ImplicitActuator\n        joint_names_expr:\n'
      '        - waist\n        stiffness: 50.0\n        damping: 1.0\n', '\n'),
     r"env.yaml: scene.robot.actuators: no actuator group drives the action's joints \['waist'\]$"),
    (('history_length: 5\n    flatten_history_dim: true', 'history_length: 5\n    flatten_history_dim: false'),
     r'env.yaml: observations.policy.base_ang_vel: history 5 with flatten_history_dim false has no place'),
    (('func: isaaclab.envs.mdp.observations:projected_gravity', 'func: isaaclab.envs.mdp.observations:height_scan'),
     r"observations.policy.projected_gravity.func: unknown observation term 'height_scan' "
     r"\(isaaclab.envs.mdp.observations:height_scan\); known terms are \['base_ang_vel'"),
    (('      FR_knee: -0.3\n', '      FR_knee: -0.3\n        RL_knee: 0.3\n'),
     r"scene.robot.init_state.joint_pos: \['RL_knee'\] match none of the joints"),
    (('  dt: 0.005\n', ''), r'env.yaml: missing key sim.dt$'),
    (('          FR_.*: 30.0\n', ''), r"actuators.N7520-14.3.stiffness: no expression matches joint 'FR_knee'"),
    (('scale: 0.05', 'scale: [0.05, 0.05]'),
     r'observations.policy.joint_vel_rel.scale has 2 values, expected 3 \(one per joint\)$'),
])
def test_a_wrong_env_yaml_is_refused_naming_the_key(tmp_path, change, message):
    assert change[0] in ENV
    path = write(tmp_path / 'env.yaml', ENV.replace(*change, 1))
    with pytest.raises(ContractError, match=message) as err:
        load_contract(path, joints=list(POLICY_JOINTS))
    assert '\n' not in str(err.value)


def test_an_env_yaml_needs_the_joint_order(tmp_path):
    path = write(tmp_path / 'env.yaml', ENV)
    with pytest.raises(ContractError, match=r'env.yaml: holds joint name expressions, not the joint order: '
                                            r'pass joints='):
        load_contract(path)
    with pytest.raises(ContractError, match=r"actions.JointPositionAction.joint_names: \['FL_.\*'\] match none"):
        contract_from_isaaclab_env(write(tmp_path / 'fl.yaml', ENV.replace('    - .*\n    scale:', '    - FL_.*\n'
                                                                                                   '    scale:')),
                                   joints=['hip', 'knee', 'waist'])


# ---------------------------------------------------------------- rl_sar config.yaml over base.yaml
RL_SAR_BASE = textwrap.dedent("""
    # Copyright (c) 2024-2025 Ziqi Fan
    bot:
      dt: 0.005
      decimation: 4
      fixed_kp: [60.0, 60.0, 60.0]
      fixed_kd: [3.0, 3.0, 3.0]
      num_of_dofs: 3
      wheel_indices: []
      torque_limits: [23.5, 23.5, 23.5]
      default_dof_pos: [0.3, -0.3, 0.0]
      joint_names: ["FR_knee", "FL_knee", "waist"]
      joint_controller_names: ["FR_knee_controller", "FL_knee_controller", "waist_controller"]
      joint_mapping: [1, 0, 2]
""").lstrip()
RL_SAR_CONFIG = textwrap.dedent("""
    bot/robot_lab:
      model_name: "policy.pt"
      num_observations: 18
      observations: ["ang_vel", "gravity_vec", "commands", "dof_pos", "dof_vel", "actions"]
      observations_history: [2, 1, 0]  # 0 is the latest observation
      observations_history_priority: "time"  # "time" or "term" priority
      clip_obs: 100.0
      clip_actions_lower: [-10.0, -10.0, -10.0]
      clip_actions_upper: [10.0, 10.0, 10.0]
      rl_kp: [20.0, 30.0, 50.0]
      rl_kd: [0.5, 0.6, 1.0]
      num_of_dofs: 3
      action_scale: [0.25, 0.25, 0.5]
      wheel_indices: []
      lin_vel_scale: 2.0
      ang_vel_scale: 0.25
      dof_pos_scale: 1.0
      dof_vel_scale: 0.05
      commands_scale: [1.0, 1.0, 1.0]
      torque_limits: [23.5, 23.5, 23.5]
""").lstrip()


def rl_sar_files(tmp_path, config=RL_SAR_CONFIG):
    write(tmp_path / 'policy' / 'bot' / 'base.yaml', RL_SAR_BASE)
    return write(tmp_path / 'policy' / 'bot' / 'robot_lab' / 'config.yaml', config)


def test_an_rl_sar_config_over_its_base_yaml(tmp_path):
    path = rl_sar_files(tmp_path)
    contract = load_contract(path)
    assert detect_source(path) == 'rl_sar'
    assert_robot(contract)                  # joint_names in robot order, mapped to the policy's by joint_mapping
    assert contract.step_dt == pytest.approx(0.02) and contract.action_clip == (-10.0, 10.0)
    assert contract.observation.history_layout == FRAME_MAJOR   # whole observations stacked, oldest first
    # rl_sar clips after scaling: the clip before scaling is clip_obs / scale
    assert terms(contract) == [('base_ang_vel', (0.25,) * 3, (-400.0, 400.0), 3),
                               ('projected_gravity', (1.0,) * 3, (-100.0, 100.0), 3),
                               ('velocity_command', (1.0,) * 3, (-100.0, 100.0), 3),
                               ('joint_pos_rel', (1.0,) * 3, (-100.0, 100.0), 3),
                               ('joint_vel', (0.05,) * 3, (-2000.0, 2000.0), 3),
                               ('last_action', (1.0,) * 3, (-100.0, 100.0), 3)]
    assert contract.observation.spec().size == 3 * 18
    # a scale that differs between a term's elements: no clip before scaling is the same, unless dropped
    legged = rl_sar_files(tmp_path, RL_SAR_CONFIG.replace('commands_scale: [1.0, 1.0, 1.0]',
                                                          'commands_scale: [2.0, 2.0, 0.25]'))
    with pytest.raises(ContractError, match=r'clip_obs 100.0 clips commands after its scale commands_scale '
                                            r'\[2.0, 2.0, 0.25\], which differs between elements'):
        load_contract(legged)
    dropped = load_contract(legged, clip_obs=None)
    assert dropped.observation.terms[2].scale == (2.0, 2.0, 0.25)
    assert all(t.clip is None for t in dropped.observation.terms)


@pytest.mark.parametrize('change, message', [
    (('observations_history: [2, 1, 0]', 'observations_history: [0, 1, 2]'),
     r'observations_history \[0, 1, 2\] \(0 = newest\) cannot be represented: a contract stacks every step, oldest '
     r'first, \[2, 1, 0\]'),
    (('num_observations: 18', 'num_observations: 45'),
     r"num_observations is 45, the observations \[.*\] give 18 per step"),
    (('"dof_vel", "actions"', '"dof_vel", "height_scan"'),
     r"observations\[5\]: unknown rl_sar observation 'height_scan'; known terms are \["),
    (('rl_kd: [0.5, 0.6, 1.0]', 'rl_kd: [0.5, 0.6]'), r'rl_kd has 2 values, expected 3 \(one per joint\)$'),
    (('clip_actions_lower: [-10.0, -10.0, -10.0]', 'clip_actions_lower: [-10.0, -5.0, -10.0]'),
     r'clip_actions_lower/clip_actions_upper: the action clip differs between joints'),
    (('  rl_kp: [20.0, 30.0, 50.0]\n', ''), r'config.yaml \(over .*base.yaml\): missing key rl_kp$'),
])
def test_a_wrong_rl_sar_config_is_refused_naming_the_key(tmp_path, change, message):
    assert change[0] in RL_SAR_CONFIG
    with pytest.raises(ContractError, match=message) as err:
        load_contract(rl_sar_files(tmp_path, RL_SAR_CONFIG.replace(*change)))
    assert '\n' not in str(err.value)


def test_an_rl_sar_config_without_its_base_names_the_missing_key(tmp_path):
    path = write(tmp_path / 'config.yaml', RL_SAR_CONFIG)
    with pytest.raises(ContractError, match=r'config.yaml: missing key joint_names$'):
        contract_from_rl_sar(path)
    base = write(tmp_path / 'elsewhere' / 'base.yaml', RL_SAR_BASE)
    assert contract_from_rl_sar(path, base=base).joints == POLICY_JOINTS


# ---------------------------------------------------------------- mjlab ONNX metadata
MJLAB_METADATA = {
    'run_path': 'someone/velocity/abc123',
    'joint_names': 'FL_knee,FR_knee,waist',
    'joint_stiffness': '20.000,30.000,50.000',
    'joint_damping': '0.500,0.600,1.000',
    'default_joint_pos': '0.300,-0.300,0.000',
    'command_names': 'twist',
    'observation_names': 'base_lin_vel,base_ang_vel,projected_gravity,joint_pos,joint_vel,actions,command',
    'action_scale': '0.250,0.250,0.500',
}
MJLAB_TERMS = ['base_lin_vel', 'base_ang_vel', 'projected_gravity', 'joint_pos_rel', 'joint_vel_rel', 'last_action',
               'velocity_command']


def tiny_onnx(path, width: int, metadata: dict[str, str] | None = None, actions: int = 3):
    """A linear policy `obs (1, width) -> actions (1, 3)` with string metadata, as mjlab exports one."""
    weight = numpy_helper.from_array(np.zeros((width, actions), dtype=np.float32), 'weight')
    graph = helper.make_graph([helper.make_node('MatMul', ['obs', 'weight'], ['actions'])], 'policy',
                              [helper.make_tensor_value_info('obs', TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info('actions', TensorProto.FLOAT, [1, actions])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_an_mjlab_onnx_export_with_the_period_and_scales_it_does_not_record(tmp_path):
    path = tiny_onnx(tmp_path / 'policy.onnx', 21, MJLAB_METADATA)
    assert detect_source(path) == 'mjlab_onnx'
    contract = load_contract(path, step_dt=0.02, term_scales={'base_ang_vel': 0.25, 'joint_vel': 0.05})
    assert_robot(contract)
    assert contract.step_dt == 0.02 and contract.action_clip is None
    assert [t.name for t in contract.observation.terms] == MJLAB_TERMS   # mjlab's names mapped, order kept
    scales = {t.name: t.scale for t in contract.observation.terms}
    assert scales['base_ang_vel'] == (0.25,) * 3 and scales['joint_vel_rel'] == (0.05,) * 3
    assert scales['projected_gravity'] == (1.0,) * 3                     # not given: 1
    assert all(t.history == 1 and t.clip is None for t in contract.observation.terms)
    # a scalar action scale (mjlab writes str(float)) is every joint's
    scalar = contract_from_mjlab_metadata({**MJLAB_METADATA, 'action_scale': '0.25'}, 'meta', step_dt=0.02)
    assert scalar.action_scale == (0.25,) * 3
    # exporters that write each term's scale, clip and history (lists as str(list), joined by commas)
    extended = {**MJLAB_METADATA,
                'observation_terms_scale': '1.000,[0.25, 0.25, 0.25],1.000,1.000,0.050,1.000,1.000',
                'observation_terms_clip': '[-inf, inf],[-inf, inf],[-inf, inf],[-inf, inf],[-inf, inf],[-5.0, 5.0],'
                                          '[-inf, inf]',
                'observation_terms_history_length': '0,0,0,0,0,0,0',
                'observation_terms_flatten_history_dim': 'True,True,True,True,True,True,True'}
    read = contract_from_onnx(tiny_onnx(tmp_path / 'extended.onnx', 21, extended), step_dt=0.02)
    assert terms(read)[1] == ('base_ang_vel', (0.25,) * 3, None, 1)
    assert terms(read)[4] == ('joint_vel_rel', (0.05,) * 3, None, 1)
    assert terms(read)[5] == ('last_action', (1.0,) * 3, (-5.0, 5.0), 1)


@pytest.mark.parametrize('overrides, metadata, message', [
    ({}, {}, r'policy.onnx: metadata has no step_dt \(mjlab does not record the policy period\); pass step_dt=$'),
    ({'step_dt': 0.02}, {'observation_names': 'base_ang_vel,height_scan'},
     r"policy.onnx: metadata observation_names: unknown observation term 'height_scan'; known terms are \["),
    ({'step_dt': 0.02, 'term_history': 2}, {},
     r"policy.onnx: the model's input 'obs' takes 21 values, the contract's observation has 42 \(base_lin_vel x2, "),
    ({'step_dt': 0.02}, {'joint_stiffness': '20.000,30.000'},
     r'policy.onnx: metadata joint_stiffness has 2 values, expected 3 \(one per joint\)$'),
    ({'step_dt': 0.02}, {'default_joint_pos': None}, r'policy.onnx: missing metadata key default_joint_pos'),
    ({'step_dt': 0.02, 'term_scales': {'base_ang_vel': 0.25}}, {'observation_terms_scale': '1,1,1,1,1,1,1'},
     r'metadata has observation_terms_scale; term_scales= would contradict it'),
    ({'step_dt': 0.02, 'sdk_joints': ['a']}, {}, r"\['sdk_joints'\] cannot be given for an mjlab ONNX export"),
])
def test_a_wrong_mjlab_export_is_refused_naming_the_key(tmp_path, overrides, metadata, message):
    meta = {k: v for k, v in {**MJLAB_METADATA, **metadata}.items() if v is not None}
    path = tiny_onnx(tmp_path / 'policy.onnx', 21, meta)
    with pytest.raises(ContractError, match=message) as err:
        load_contract(path, **overrides)
    assert '\n' not in str(err.value)


# ---------------------------------------------------------------- writing a contract back
def test_a_contract_round_trips_through_yaml_and_onnx_metadata(tmp_path):
    contract = load_contract(write(tmp_path / 'deploy.yaml', DEPLOY), sdk_joints=SDK_JOINTS)
    yaml_path = write_contract_yaml(contract, tmp_path / 'bot.contract.yaml')
    assert detect_source(yaml_path) == 'distill_ros'
    again = load_contract(yaml_path)
    assert again.to_json() == contract.to_json() and again.source == str(yaml_path)
    with pytest.raises(ContractError, match=r"is a distill_ros contract, which takes no overrides; got \['step_dt'\]"):
        load_contract(yaml_path, step_dt=0.02)

    model = tiny_onnx(tmp_path / 'policy.onnx', contract.observation.spec().size, {'run_path': 'someone/run'})
    attach_onnx_metadata(model, contract)
    attach_onnx_metadata(model, contract)       # again: keys replaced, not repeated
    keys = [p.key for p in onnx.load(str(model)).metadata_props]
    assert sorted(keys) == sorted(set(keys)) and 'run_path' in keys
    assert detect_source(model) == 'distill_ros'
    assert load_contract(model).to_json() == contract.to_json()
    # the mjlab keys beside it say the same joints, gains, pose, scale and terms
    meta = read_onnx_metadata(model)
    assert meta['joint_names'] == 'FL_knee,FR_knee,waist' and ONNX_CONTRACT_KEY in meta
    as_mjlab = contract_from_mjlab_metadata({k: v for k, v in meta.items() if k != ONNX_CONTRACT_KEY}, str(model))
    assert as_mjlab.step_dt == 0.02
    assert_robot(as_mjlab, action_offset=False)
    assert [t.name for t in as_mjlab.observation.terms] == [t.name for t in contract.observation.terms]
    # a contract whose observation is not the model's input is refused
    small = tiny_onnx(tmp_path / 'small.onnx', 18)
    attach_onnx_metadata(small, contract)
    with pytest.raises(ContractError, match=r"small.onnx: the model's input 'obs' takes 18 values, the contract's "
                                            r"observation has 90"):
        load_contract(small)


def test_a_file_of_no_known_source_is_refused(tmp_path):
    with pytest.raises(ContractError, match=r'other.yaml: not a contract file this reads: expected a distill_ros '
                                            r'contract \(format: distill_ros.contract/1\), a unitree_rl_lab'):
        load_contract(write(tmp_path / 'other.yaml', 'robot: go2\nrate: 50\n'))
    with pytest.raises(ContractError, match=r"\['joints'\] cannot be given for an rl_sar config.yaml; it takes "
                                            r"\['base', 'clip_obs'\]"):
        load_contract(rl_sar_files(tmp_path), joints=list(POLICY_JOINTS))
    bare = tiny_onnx(tmp_path / 'bare.onnx', 4)
    for read in (load_contract, detect_source):
        with pytest.raises(ContractError, match=r'bare.onnx: its metadata holds no contract'):
            read(bare)
    assert set(TERMS) >= {'velocity_command', 'joint_pos_rel', 'last_action'}
