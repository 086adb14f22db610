"""recorder_node: builds a dataset (and optionally a rosbag2 bag) from the simulator's and the
teacher's topics.

Subscribes (relative names): joint_states, imu/data (sensor-data QoS, deep queue), privileged/state,
teacher/action, teacher/distribution, sim/step, sim/episode. Pairs messages into samples by stamp
(`exact`, or `approximate` within `tolerance`), cuts episodes at the simulator's step reports and
reset announcements, and appends each finished episode as a shard of the dataset (crash-safe:
see docs/dataset.md). With `bag` set, writes every received message to a rosbag2 bag (MCAP by
default) as well. Publishes its counters on /diagnostics once per second. For a task with a velocity
command, sensor_obs takes the command from the command/* fields of privileged/state (the command
sim_node ran with, sampled or from cmd_vel), as the student read it at run time.
"""
from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Imu, JointState

from distill_ros.data.assembler import PAIRING, EpisodeAssembler
from distill_ros.data.bag import STORAGE, STREAMS, BagWriter, deserialize, payload, typestore
from distill_ros.data.cdr import CdrError
from distill_ros.data.dataset import BackgroundWriter, DatasetSpec, DatasetWriter
from distill_ros.nodes import messages as m
from distill_ros.nodes.common import LATCHED, RELIABLE, RELIABLE_DEEP, FinishingNode, run
from distill_ros.nodes.params import Param, ParameterError, declare
from distill_ros.observation import SensorMismatch
from distill_ros.sim import DistillEnv
from distill_ros.stamps import NS_PER_S, stamp_ns

# Best effort with a deep queue: matches a best-effort or a reliable sensor publisher alike.
SENSOR_DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
# stream -> (topic, message type, QoS), in the order the subscriptions are made.
SUBSCRIPTIONS = {
    'joints': ('joint_states', JointState, SENSOR_DEEP),
    'imu': ('imu/data', Imu, SENSOR_DEEP),
    'privileged': ('privileged/state', JointState, RELIABLE_DEEP),
    'step': ('sim/step', JointState, RELIABLE_DEEP),
    'episode': ('sim/episode', JointState, LATCHED),
    'teacher_action': ('teacher/action', JointState, RELIABLE_DEEP),
    'teacher_distribution': ('teacher/distribution', JointState, RELIABLE_DEEP),
}
TEACHER_STREAMS = ('teacher_action', 'teacher_distribution')

PARAMS = (
    Param('task', 'cartpole', 'task whose observation layout the dataset records'),
    Param('dataset', '', 'dataset folder to create or append to (empty: no dataset)'),
    Param('bag', '', 'rosbag2 bag folder to write (empty: no bag); must not exist yet'),
    Param('storage', 'mcap', 'bag storage', choices=STORAGE),
    Param('pairing', 'exact', 'exact: same stamps (simulation); approximate: nearest within tolerance',
          choices=PAIRING),
    Param('tolerance', 0.002, 'approximate pairing: largest stamp difference in seconds', low=0.0, high=1.0),
    Param('teacher', True, 'record teacher/action and teacher/distribution (false: only sim and sensors)'),
    Param('max_episodes', 0, 'exit with status 0 after writing this many episodes (0: never)', low=0,
          high=2**31 - 1),
)


class RecorderNode(FinishingNode):
    def __init__(self):
        super().__init__('recorder_node')
        p = declare(self, PARAMS)
        self.params = p
        if not p['dataset'] and not p['bag']:
            raise ParameterError("parameters 'dataset' and 'bag' are both empty; set at least one")
        env = DistillEnv(p['task'])
        spec = DatasetSpec.for_env(env, teacher=p['teacher'])
        has_imu = env.task.has_imu
        env.close()
        # Shards are written on a worker thread so a slow disk flush never stalls the subscriptions.
        self.writer = BackgroundWriter(DatasetWriter(p['dataset'], spec)) if p['dataset'] else None
        self.topics = {stream: self.resolve_topic_name(topic) for stream, (topic, _, _) in SUBSCRIPTIONS.items()}
        self.assembler = EpisodeAssembler(spec, self.writer, p['pairing'], int(p['tolerance'] * NS_PER_S), has_imu,
                                          self.topics)
        self.bag = BagWriter(p['bag'], p['storage']) if p['bag'] else None
        self.closed = False
        self.store = typestore()
        self.last_message = time.monotonic()
        for stream in SUBSCRIPTIONS:
            if (stream != 'imu' or has_imu) and (stream not in TEACHER_STREAMS or p['teacher']):
                self.listen(stream)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, m.DIAGNOSTICS, RELIABLE)
        self.create_timer(1.0, self.guarded(self.on_timer))
        self.get_logger().info(f"recording task {p['task']} to dataset {p['dataset'] or '-'} and bag {p['bag'] or '-'}"
                               f" ({p['pairing']} pairing)")

    def listen(self, stream: str) -> None:
        """Subscribe to `stream` with raw (CDR) delivery: the bag gets the bytes as they came; they
        are decoded once, by the same decoder bag replay uses, so live recording and replay see
        identical messages."""
        topic, msg_type, qos = SUBSCRIPTIONS[stream]
        bag_type = STREAMS[stream][1]
        self.create_subscription(msg_type, topic, self.guarded(
            lambda raw: self.on_message(stream, self.topics[stream], bag_type, raw)), qos, raw=True)

    def on_message(self, stream: str, topic: str, bag_type: str, raw: bytes) -> None:
        self.last_message = time.monotonic()
        if self.bag is not None:
            self.bag.write(topic, bag_type, time.time_ns(), raw)
        try:
            msg = deserialize(self.store, raw, bag_type)
        except CdrError as exc:  # undecodable bytes: a bad sample like a malformed message
            self.assembler.stats.bad[stream] += 1
            self.assembler.stats.last_bad = f'{topic}: {exc}'
            return
        try:
            self.assembler.add(stream, stamp_ns(msg.header.stamp), payload(stream, msg))
        except SensorMismatch as exc:  # well-formed messages of another task: a setup error
            self.get_logger().error(f"{exc}; is the simulator or robot running task {self.params['task']}, the "
                                    f"recorder's? exiting with status 2")
            self.finish(2)
            return
        self.check_done()

    def check_done(self) -> None:
        limit = self.params['max_episodes']
        if limit and self.assembler.stats.episodes >= limit:
            self.get_logger().info(f'{self.assembler.stats.episodes} episodes recorded; exiting')
            self.finish(0)

    def on_timer(self) -> None:
        # When the streams fall silent (the simulator stopped), an ended episode will get no
        # later messages to prove nothing is still in flight: write it now.
        if time.monotonic() - self.last_message > 1.0 and self.assembler.ended:
            self.assembler.flush_ended()
            self.check_done()
        self.publish_diagnostics()

    def publish_diagnostics(self) -> None:
        stats = self.assembler.stats
        unpaired, bad = sum(stats.unpaired.values()), sum(stats.bad.values())
        message = f'{stats.episodes} episodes, {stats.samples} samples, {unpaired} unpaired'
        if bad:
            message += f', {bad} bad messages dropped (newest: {stats.last_bad})'
        values = {'episodes': stats.episodes, 'samples': stats.samples, 'unpaired': unpaired,
                  'bad_messages': bad, 'last_bad': stats.last_bad, 'bag_messages': self.bag.count if self.bag else 0}
        values.update({f'unpaired/{k}': v for k, v in stats.unpaired.items()})
        values.update({f'messages/{k}': v for k, v in stats.messages.items()})
        self.diagnostics_pub.publish(m.diagnostics(
            self.get_clock().now().to_msg(), f'{self.get_name()}: recording', 'warn' if unpaired or bad else 'ok',
            message, self.params['task'], values))

    def close(self) -> None:
        """On a clean stop: write finished episodes still waiting for stragglers; close the bag."""
        if self.closed:
            return
        self.closed = True
        stats = self.assembler.finish()
        if self.writer is not None:
            self.writer.close()
        if self.bag is not None:
            self.bag.close()
        text = (f'recorded {stats.episodes} episodes, {stats.samples} samples; unpaired {dict(stats.unpaired)}; '
                f'unfinished episodes dropped {stats.dropped_episodes}; bad messages dropped {dict(stats.bad)}')
        if self.context.ok():
            self.get_logger().info(text)
        else:  # after Ctrl-C the context is gone: the logger could not reach /rosout
            print(f'[recorder_node] {text}', flush=True)


def main(args: list[str] | None = None) -> None:
    raise SystemExit(run(RecorderNode, args))


if __name__ == '__main__':
    main()
