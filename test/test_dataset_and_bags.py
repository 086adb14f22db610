"""Dataset shards and manifest; bags written by another rosbag2 writer replayed into a dataset."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from distill_ros.data.bag import STREAMS, BagError, bag_to_dataset, typestore
from distill_ros.data.dataset import DatasetError, DatasetSpec, DatasetWriter, load_dataset
from distill_ros.distill.evaluate import privileged_actor
from distill_ros.observation import ObsSpec
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.sim import PRIVILEGED, SENSOR, DistillEnv
from distill_ros.teachers import shipped_teacher


def fake_episode(spec: DatasetSpec, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, (shape, dtype) in spec.fields().items():
        arrays[name] = rng.normal(size=(n, *shape)).astype(dtype) if dtype == 'float64' else np.zeros((n, *shape),
                                                                                                      dtype=dtype)
    arrays['stamp_ns'] = np.arange(n, dtype=np.int64) * 40_000_000
    return arrays


def test_append_only_checksummed_shards(tmp_path):
    spec = DatasetSpec.for_env(DistillEnv('cartpole'))
    writer = DatasetWriter(tmp_path / 'ds', spec)
    episodes = [fake_episode(spec, n, i) for i, n in enumerate([5, 7, 3])]
    for i, arrays in enumerate(episodes):
        writer.write_episode(arrays, {'seed': i})
    # Re-opening appends after what is there.
    DatasetWriter(tmp_path / 'ds', spec).write_episode(fake_episode(spec, 4, 9), {'seed': 9})
    ds = load_dataset(tmp_path / 'ds')
    assert len(ds) == 19 and list(ds.episode_starts) == [0, 5, 12, 15] and not ds.problems
    np.testing.assert_array_equal(ds.episode(1)['sensor_obs'], episodes[1]['sensor_obs'])
    assert ds.episodes[3]['seed'] == 9

    # Damage one shard: it is named, the others still load.
    shard = tmp_path / 'ds' / 'episodes' / '000001.safetensors'
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))
    damaged = load_dataset(tmp_path / 'ds')
    assert len(damaged.episodes) == 3 and len(damaged) == 12
    assert damaged.problems == [f'{shard}: checksum mismatch (damaged or truncated); skipped']
    shard.write_bytes(bytes(data[:40]))  # truncated
    assert '000001.safetensors: checksum mismatch' in load_dataset(tmp_path / 'ds').problems[0]


def test_appending_another_task_is_refused(tmp_path):
    DatasetWriter(tmp_path / 'ds', DatasetSpec.for_env(DistillEnv('cartpole')))
    with pytest.raises(DatasetError, match="task 'cartpole' with another layout; cannot append episodes of task "
                                           "'hopper'"):
        DatasetWriter(tmp_path / 'ds', DatasetSpec.for_env(DistillEnv('hopper')))
    with pytest.raises(DatasetError, match='manifest.json is missing'):
        load_dataset(tmp_path / 'nothing')


def write_bag(path, env: DistillEnv, teacher, seeds, joint_order=None, skip=(), types=None, storage='mcap',
              positions=None, sensor_delay_ns=0, step_age=False):
    """A bag as any rosbag2 writer would record it, built with rosbags' own message classes.
    `positions`: a driver that publishes only that many joint positions (a malformed message).
    `sensor_delay_ns`: joints and imu stamped that long before the step (the reading's age);
    `step_age`: the step reports carry that age as our simulator's `sample_age` field."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = typestore()
    JointState = store.types['sensor_msgs/msg/JointState']
    Imu = store.types['sensor_msgs/msg/Imu']
    Header = store.types['std_msgs/msg/Header']
    Time = store.types['builtin_interfaces/msg/Time']
    Quaternion, Vector3 = store.types['geometry_msgs/msg/Quaternion'], store.types['geometry_msgs/msg/Vector3']
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    writer = Writer(path, version=9, storage_plugin=plugin)
    writer.open()
    connections = {}
    for stream, (topic, msgtype) in STREAMS.items():
        if stream in skip:
            continue
        msgtype = (types or {}).get(stream, msgtype)
        connections[stream] = (writer.add_connection(topic, msgtype, typestore=store), msgtype)

    def header(ns):
        return Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id='')

    def vector(ns, names, values):
        return JointState(header=header(ns), name=list(names), position=np.asarray(values, dtype=np.float64),
                          velocity=np.zeros(0), effort=np.zeros(0))

    def put(stream, ns, msg):
        if stream in connections:
            connection, msgtype = connections[stream]
            if msgtype != STREAMS[stream][1]:
                return  # a topic declared with the wrong type: announced, never written
            writer.write(connection, ns, store.serialize_cdr(msg, msgtype))

    act = privileged_actor(teacher)
    builder = env.sensor_builder
    dt, ns = 40_000_000, (10**9 if sensor_delay_ns else 0)
    for episode, seed in enumerate(seeds):
        obs, info = env.reset(seed=seed)
        names = ['episode', 'seed', 'latency_steps', *(f'dynamics/{k}' for k in info['dynamics'])]
        put('episode', ns, vector(ns, names, [episode, seed, info['latency_steps'], *info['dynamics'].values()]))
        done = False
        while not done:
            reading = builder.reading(obs[SENSOR])
            joints = joint_order or list(reading.joint_position)
            joint_msg = vector(ns - sensor_delay_ns, joints, [reading.joint_position[j] for j in joints])
            if positions is not None:
                joint_msg.position = joint_msg.position[:positions]
            put('joints', ns, joint_msg)
            o, g, a = reading.orientation, reading.angular_velocity, reading.linear_acceleration
            put('imu', ns, Imu(header=header(ns - sensor_delay_ns),
                               orientation=Quaternion(x=o[0], y=o[1], z=o[2], w=o[3]),
                               orientation_covariance=np.zeros(9), angular_velocity=Vector3(x=g[0], y=g[1], z=g[2]),
                               angular_velocity_covariance=np.zeros(9),
                               linear_acceleration=Vector3(x=a[0], y=a[1], z=a[2]),
                               linear_acceleration_covariance=np.zeros(9)))
            put('privileged', ns, vector(ns, env.privileged_spec.element_names(), obs[PRIVILEGED]))
            action = act(obs)
            put('teacher_action', ns, vector(ns, env.action_names, action))
            put('teacher_distribution', ns, vector(ns, ['mean/slider', 'std/slider'], [action[0], 0.5]))
            obs, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            put('step', ns, vector(ns, ['reward', 'terminated', 'truncated', 'episode', 'step', 'action/slider',
                                        *(['sample_age'] if step_age else [])],
                                   [reward, terminated, truncated, episode, 0, action[0],
                                    *([sensor_delay_ns / 1e9] if step_age else [])]))
            ns += dt
    writer.close()


@pytest.fixture
def short_cartpole(tmp_path):
    """cart-pole with 30-step episodes so bags stay small."""
    import yaml

    from distill_ros.paths import config_path
    from distill_ros.sim.task import parse_task
    data = yaml.safe_load(config_path('tasks', 'cartpole.yaml').read_text())
    data['env']['max_episode_steps'] = 30
    return parse_task(data)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_foreign_bag_with_reordered_joints_replays_into_the_dataset(tmp_path, short_cartpole, storage):
    teacher = ckpt_io.load(shipped_teacher('cartpole'))
    env = DistillEnv(short_cartpole)
    write_bag(tmp_path / 'bag', env, teacher, seeds=[3, 4], joint_order=['hinge', 'slider'], storage=storage)
    spec = DatasetSpec.for_env(env)
    stats = bag_to_dataset(tmp_path / 'bag', tmp_path / 'ds', spec, has_imu=True)
    assert stats.episodes == 2 and not stats.unpaired
    ds = load_dataset(tmp_path / 'ds')
    assert [e['seed'] for e in ds.episodes] == [3, 4] and len(ds) == 60
    for i, seed in enumerate([3, 4]):
        obs, _ = env.reset(seed=seed)
        episode = ds.episode(i)
        np.testing.assert_array_equal(episode['sensor_obs'][0], obs[SENSOR])  # joints mapped by name
        np.testing.assert_array_equal(episode['privileged_obs'][0], obs[PRIVILEGED])
    assert ds.arrays['truncated'].sum() == 2


def test_bag_errors_name_bag_topic_and_expectation(tmp_path, short_cartpole):
    teacher = ckpt_io.load(shipped_teacher('cartpole'))
    env = DistillEnv(short_cartpole)
    spec = DatasetSpec.for_env(env)
    write_bag(tmp_path / 'missing', env, teacher, seeds=[1], skip={'step'})
    with pytest.raises(BagError, match=r'missing: topic /sim/step \(step\) is not in the bag; expected '
                                       r'sensor_msgs/msg/JointState'):
        bag_to_dataset(tmp_path / 'missing', tmp_path / 'a', spec, has_imu=True)
    write_bag(tmp_path / 'wrongtype', env, teacher, seeds=[1], types={'imu': 'sensor_msgs/msg/JointState'})
    with pytest.raises(BagError, match=r'topic /imu/data \(imu\) has type sensor_msgs/msg/JointState, expected '
                                       r'sensor_msgs/msg/Imu'):
        bag_to_dataset(tmp_path / 'wrongtype', tmp_path / 'b', spec, has_imu=True)
    write_bag(tmp_path / 'empty', env, teacher, seeds=[])
    with pytest.raises(BagError, match='empty: the bag is empty'):
        bag_to_dataset(tmp_path / 'empty', tmp_path / 'c', spec, has_imu=True)
    (tmp_path / 'corrupt').mkdir()
    (tmp_path / 'corrupt' / 'metadata.yaml').write_text('rosbag2_bagfile_information: [')
    with pytest.raises(BagError, match='corrupt: cannot open as a rosbag2 bag'):
        bag_to_dataset(tmp_path / 'corrupt', tmp_path / 'd', spec, has_imu=True)
    for damaged in ('rosbag2_bagfile_information:\n  version: 9\n  storage_identifier: mc',   # truncated
                    '\x00\x01 not yaml {{', 'just a line of text'):
        (tmp_path / 'corrupt' / 'metadata.yaml').write_text(damaged)
        with pytest.raises(BagError) as refused:
            bag_to_dataset(tmp_path / 'corrupt', tmp_path / 'd', spec, has_imu=True)
        assert '\n' not in str(refused.value) and 'corrupt: cannot open as a rosbag2 bag' in str(refused.value)
    write_bag(tmp_path / 'cut', env, teacher, seeds=[1, 2])
    mcap = next((tmp_path / 'cut').glob('*.mcap'))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    with pytest.raises(BagError, match='cut'):
        bag_to_dataset(tmp_path / 'cut', tmp_path / 'e', spec, has_imu=True)
    with pytest.raises(BagError, match='nowhere: no such bag'):
        bag_to_dataset(tmp_path / 'nowhere', tmp_path / 'f', spec, has_imu=True)
    assert not (tmp_path / 'a').exists(), 'a refused bag creates no dataset'


def test_bag_without_privileged_state_distils_from_the_recorded_teacher(tmp_path, short_cartpole, capsys):
    """The README's claim, on a bag written by rosbags (not by our recorder) with no privileged
    topic: bag2dataset and `distill --bag` label with the recorded teacher distribution; feature
    matching, which needs privileged state, is refused with a message saying so."""
    from distill_ros.cli import main

    teacher = ckpt_io.load(shipped_teacher('cartpole'))
    env = DistillEnv(short_cartpole)
    write_bag(tmp_path / 'bag', env, teacher, seeds=[1, 2, 3, 4], skip={'privileged'})
    stats = bag_to_dataset(tmp_path / 'bag', tmp_path / 'ds', DatasetSpec.for_env(env), has_imu=True)
    assert stats.episodes == 4 and not stats.unpaired
    ds = load_dataset(tmp_path / 'ds')
    assert ds.spec.privileged.size == 0 and ds.arrays['privileged_obs'].shape == (120, 0)
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(ds.episode(0)['sensor_obs'][0], obs[SENSOR])
    np.testing.assert_array_equal(ds.arrays['teacher_mean'][:, 0], ds.arrays['teacher_action'][:, 0])

    tiny = ['--set', 'train.steps=40', '--set', 'train.eval_every=20', '--set', 'eval.episodes=1',
            '--set', 'student.sizes={hidden: [16]}', '--no-progress']
    args = ['distill', '--bag', str(tmp_path / 'bag'), '--teacher', str(shipped_teacher('cartpole')), *tiny]
    with pytest.raises(SystemExit) as refused:
        main([*args, '--out', str(tmp_path / 'refused'), '--set', 'losses.feature={weight: 0}'])
    assert refused.value.code == 2
    assert 'has no privileged state (a bag recorded without it), so DAgger rounds' in capsys.readouterr().err
    args += ['--set', 'dagger.rounds=0']
    with pytest.raises(SystemExit) as refused:
        main([*args, '--out', str(tmp_path / 'refused')])
    assert refused.value.code == 2
    assert 'feature matching needs privileged observations' in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main([*args, '--out', str(tmp_path / 'run'), '--set', 'losses.feature={weight: 0}'])
    assert done.value.code == 0, capsys.readouterr()
    student = ckpt_io.load(tmp_path / 'run' / 'student')
    assert student.obs_source == 'sensor' and student.action_names == ['slider']


def test_a_commanded_task_records_the_command_from_the_privileged_state(tmp_path):
    """Recorder and bag replay (one assembler): a task whose sensor observation ends with a velocity
    command takes it from the command/* fields of privileged/state, as sim_node publishes them, so
    sensor_obs is what the student saw; without privileged state there is nowhere to take it from."""
    from types import SimpleNamespace

    import yaml

    from distill_ros.data.assembler import EpisodeAssembler
    from distill_ros.data.bag import streams_to_replay
    from distill_ros.paths import config_path
    from distill_ros.sim.task import parse_task
    data = yaml.safe_load(config_path('tasks', 'quadruped.yaml').read_text())
    data['env']['max_episode_steps'] = 12
    data['env']['model'] = str(config_path('tasks', 'models', 'quadruped.xml'))
    env = DistillEnv(parse_task(data))
    spec = DatasetSpec.for_env(env, teacher=False)
    assembler = EpisodeAssembler(spec, DatasetWriter(tmp_path / 'ds', spec))
    builder, vec = env.sensor_builder, SimpleNamespace
    expected, dt, ns = [], 20_000_000, 0
    for episode, seed in enumerate((1, 2)):
        obs, info = env.reset(seed=seed)
        assembler.add('episode', ns, (['episode', 'seed'], [episode, seed]))
        done, k = False, 0
        while not done:
            if k == 5:
                env.set_command(0.3, -0.1, 0.7)   # from cmd_vel mid-episode: in the next observations
            reading = builder.reading(obs[SENSOR])   # what sim_node publishes: no command on joint_states
            assembler.add('joints', ns, vec(name=list(builder.joints), position=list(reading.joint_position.values()),
                                            velocity=list(reading.joint_velocity.values()), effort=[]))
            g, a, o = (vec(**dict(zip(keys, values))) for keys, values in (
                ('xyz', reading.angular_velocity), ('xyz', reading.linear_acceleration),
                ('xyzw', reading.orientation)))
            assembler.add('imu', ns, vec(angular_velocity=g, linear_acceleration=a, orientation=o))
            assembler.add('privileged', ns, (env.privileged_spec.element_names(), obs[PRIVILEGED]))
            expected.append(obs[SENSOR])
            obs, reward, terminated, truncated, _ = env.step(np.zeros(12))
            done = terminated or truncated
            assembler.add('step', ns, (['reward', 'terminated', 'truncated', 'episode',
                                        *(f'action/{n}' for n in env.action_names)],
                                       [reward, terminated, truncated, episode, *np.zeros(12)]))
            ns, k = ns + dt, k + 1
    stats = assembler.finish()
    assert stats.episodes == 2 and not stats.unpaired and not stats.bad
    ds = load_dataset(tmp_path / 'ds')
    np.testing.assert_array_equal(ds.arrays['sensor_obs'], expected)
    assert ds.arrays['sensor_obs'][6:12, -3:].tolist() == [[0.3, -0.1, 0.7]] * 6
    with pytest.raises(ValueError, match=r"velocity command \(command\).*lacks \['command/vx'"):
        EpisodeAssembler(dataclasses.replace(spec, privileged=ObsSpec([])), None)
    robot_bag = vec(message_count=1, connections=[vec(topic='/joint_states', msgtype=STREAMS['joints'][1])])
    with pytest.raises(BagError, match=r"robot: topic /privileged/state \(privileged\) is not in the bag; task "
                                       r"'quadruped' reads a velocity command"):
        streams_to_replay(tmp_path / 'robot', robot_bag, spec, True, {s: t for s, (t, _) in STREAMS.items()})


def test_bag_reindex_keeps_every_complete_message_of_a_torn_bag(tmp_path, capsys):
    """An MCAP bag cut short (no summary, no footer, half a chunk) and without metadata.yaml, as a
    killed writer leaves it: bag-reindex keeps every complete message, says how many, and the
    recovered bag replays into the episodes of the intact bag."""
    from distill_ros.cli import main
    from distill_ros.data.reindex import ReindexError, reindex

    teacher = ckpt_io.load(shipped_teacher('cartpole'))
    env = DistillEnv('cartpole')
    write_bag(tmp_path / 'bag', env, teacher, seeds=[1, 2, 3])   # about 2 MB: two 1 MB chunks and a tail
    spec = DatasetSpec.for_env(env)
    intact = bag_to_dataset(tmp_path / 'bag', tmp_path / 'intact', spec, has_imu=True)
    mcap = next((tmp_path / 'bag').glob('*.mcap'))
    data = mcap.read_bytes()
    mcap.write_bytes(data[:int(len(data) * 0.75)])
    (tmp_path / 'bag' / 'metadata.yaml').unlink()
    with pytest.raises(BagError, match='without metadata.yaml .*bag-reindex'):
        bag_to_dataset(tmp_path / 'bag', tmp_path / 'x', spec, has_imu=True)
    with pytest.raises(SystemExit) as done:
        main(['bag-reindex', str(tmp_path / 'bag'), '--out', str(tmp_path / 'fixed')])
    out = capsys.readouterr().out
    assert done.value.code == 0 and 'recovered ' in out and 'dropped an incomplete record' in out, out
    recovered = bag_to_dataset(tmp_path / 'fixed', tmp_path / 'recovered', spec, has_imu=True)
    assert 1 <= recovered.episodes < intact.episodes
    a, b = load_dataset(tmp_path / 'intact'), load_dataset(tmp_path / 'recovered')
    for i in range(recovered.episodes):
        for name in ('sensor_obs', 'privileged_obs', 'teacher_mean', 'action'):
            np.testing.assert_array_equal(b.episode(i)[name], a.episode(i)[name])
    with pytest.raises(ReindexError, match='already exists'):
        reindex(tmp_path / 'bag', tmp_path / 'fixed')
    (tmp_path / 'notmcap').mkdir()
    (tmp_path / 'notmcap' / 'x.mcap').write_bytes(b'hello')
    with pytest.raises(ReindexError, match='not an MCAP file'):
        reindex(tmp_path / 'notmcap')


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_a_foreign_bag_on_a_sample_age_task_takes_the_age_from_the_stamps(tmp_path, short_cartpole, storage):
    """A bag written by rosbags whose step reports carry only the standard fields, on a task whose
    student reads its sample age: the age of every sample is the step's stamp minus its joint_states
    header stamp (as the controller computes it on a robot); a bag carrying our simulator's
    sample_age field gives the same ages; joints stamped after their step are refused naming the topic."""
    import dataclasses

    from distill_ros.data.bag import BagError

    task = dataclasses.replace(short_cartpole, sample_age=True)
    teacher = ckpt_io.load(shipped_teacher('cartpole'))
    env = DistillEnv(task)
    age_index = env.sensor_builder.sample_age_index
    spec = DatasetSpec.for_env(env)
    datasets = {}
    for name, step_age in (('stamps', False), ('field', True)):
        write_bag(tmp_path / name, env, teacher, seeds=[3, 4], storage=storage, sensor_delay_ns=7_000_000,
                  joint_order=['hinge', 'slider'], step_age=step_age)
        stats = bag_to_dataset(tmp_path / name, tmp_path / f'ds_{name}', spec, has_imu=True)
        assert stats.episodes == 2 and not stats.unpaired and not stats.bad, stats
        datasets[name] = load_dataset(tmp_path / f'ds_{name}')
    ages = datasets['stamps'].arrays['sensor_obs'][:, age_index]
    np.testing.assert_allclose(ages, 0.007, atol=1e-12)             # step stamp - joint_states stamp
    np.testing.assert_array_equal(datasets['stamps'].arrays['sensor_obs'], datasets['field'].arrays['sensor_obs'])
    obs, _ = env.reset(seed=3)
    first = datasets['stamps'].episode(0)['sensor_obs'][0]
    others = [i for i in range(env.sensor_spec.size) if i != age_index]
    np.testing.assert_array_equal(first[others], obs[SENSOR][others])  # the readings themselves unchanged
    write_bag(tmp_path / 'late', env, teacher, seeds=[1], sensor_delay_ns=-5_000_000)
    with pytest.raises(BagError, match=r'/joint_states message is stamped .* after the step; a sample age needs '
                                       r'header stamps'):
        bag_to_dataset(tmp_path / 'late', tmp_path / 'ds_late', spec, has_imu=True)
