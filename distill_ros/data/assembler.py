"""Pair stamped messages from several streams into samples and cut them into episodes.

The live recorder node and bag replay (`distill-ros bag2dataset`) feed the same `EpisodeAssembler`,
so a bag replayed offline gives the dataset the recorder would have written live.

Streams (all keyed by header stamp, in nanoseconds):
  joints, imu            the sensors (sensor_msgs/JointState, sensor_msgs/Imu)
  privileged             the simulator's named privileged vector
  teacher_action         the teacher's action by joint name
  teacher_distribution   mean/<joint>, std/<joint>
  step                   the simulator's step report (reward, terminated, truncated, episode,
                         executed action/<joint>), stamped with the observation it answered
  episode                reset announcements (episode, seed, latency, dynamics)

Each step report defines one sample. In `exact` pairing every other stream must have a message
with the same stamp (simulation); in `approximate` pairing the nearest message within `tolerance_ns`
is used (hardware clocks jitter). An episode is written once its final step (terminated or
truncated) has arrived and every stream has moved past its end, so late messages on one topic are
still paired. Samples that cannot be paired are dropped and counted per missing stream.

A task whose student reads the sample age (`sensors.sample_age`) takes it from our simulator's step
reports where they carry it (`sample_age`, seconds: the sensor messages of a step are those stamped
that much earlier, as the simulator stamps them when the reading was taken). A step report without
it (a bag written by another tool, or a robot's) takes it from the stamps, as the student
controller does on a robot (its clock's now - the newest joint_states header stamp): the step's
stamp minus the header stamp of the newest joint_states message that arrived before it (bag replay
and the live recorder feed messages in arrival order). On our own bags the two agree. A step with no
joint_states before it, or one stamped before its joint_states, cannot give an age and is refused
naming the topics.

A task whose sensor observation ends with a velocity command (the student reads it from cmd_vel
at run time) takes it from the command/* fields of the paired privileged state, where the
simulator publishes the command it ran with: the recorded sensor_obs is what the student saw.
"""
from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distill_ros.data.dataset import DatasetSpec, DatasetWriter
from distill_ros.observation import COMMAND, SensorMessageError, SensorMismatch, SensorObsBuilder, check_named_arrays
from distill_ros.stamps import NS_PER_S, stamp_text

PAIRING = ('exact', 'approximate')
SENSOR_STREAMS = ('joints', 'imu')


@dataclass
class AssemblerStats:
    episodes: int = 0
    samples: int = 0
    unpaired: Counter = field(default_factory=Counter)   # stream -> samples dropped for lack of it
    messages: Counter = field(default_factory=Counter)   # stream -> messages received
    dropped_episodes: int = 0                            # unfinished at shutdown
    bad: Counter = field(default_factory=Counter)        # stream -> malformed messages dropped
    last_bad: str = ''                                   # the newest one: topic, stamp, cause

    def as_dict(self) -> dict[str, Any]:
        return {'episodes': self.episodes, 'samples': self.samples, 'unpaired': dict(self.unpaired),
                'messages': dict(self.messages), 'dropped_episodes': self.dropped_episodes,
                'bad': dict(self.bad), 'last_bad': self.last_bad}


class _Stream:
    """Messages of one stream by stamp, with exact or nearest lookup."""

    def __init__(self):
        self.by_stamp: dict[int, Any] = {}
        self.stamps: list[int] = []   # sorted; messages arrive in order per topic, insort keeps it so otherwise
        self.latest = -1

    def add(self, stamp: int, payload: Any) -> None:
        if stamp not in self.by_stamp:
            if not self.stamps or stamp > self.stamps[-1]:
                self.stamps.append(stamp)
            else:
                bisect.insort(self.stamps, stamp)
        self.by_stamp[stamp] = payload
        self.latest = max(self.latest, stamp)

    def find(self, stamp: int, tolerance_ns: int) -> Any:
        if stamp in self.by_stamp or tolerance_ns <= 0:
            return self.by_stamp.get(stamp)
        i = bisect.bisect_left(self.stamps, stamp)
        best = None
        for j in (i - 1, i):
            if 0 <= j < len(self.stamps) and abs(self.stamps[j] - stamp) <= tolerance_ns:
                if best is None or abs(self.stamps[j] - stamp) < abs(best - stamp):
                    best = self.stamps[j]
        return None if best is None else self.by_stamp[best]

    def drop_through(self, stamp: int) -> None:
        cut = bisect.bisect_right(self.stamps, stamp)
        for s in self.stamps[:cut]:
            del self.by_stamp[s]
        del self.stamps[:cut]


class EpisodeAssembler:
    def __init__(self, spec: DatasetSpec, writer: DatasetWriter | None, pairing: str = 'exact',
                 tolerance_ns: int = 0, has_imu: bool = True, topics: dict[str, str] | None = None,
                 strict: bool = False):
        """`topics` (stream -> topic) names topics in the causes of bad messages. A malformed
        message (see `SensorObsBuilder.check_message`, `check_named_arrays`) is dropped and counted,
        or, with `strict`, raised as `SensorMessageError` naming its topic and stamp."""
        if pairing not in PAIRING:
            raise ValueError(f'unknown pairing {pairing!r}; expected one of {PAIRING}')
        self.spec, self.writer = spec, writer
        self.tolerance_ns = tolerance_ns if pairing == 'approximate' else 0
        self.builder = SensorObsBuilder.from_spec(spec.sensor)
        self.privileged_names = spec.privileged.element_names()
        # The velocity command of the sensor observation, read from the privileged state.
        self.command_names = spec.sensor.fields[-1].element_names() if self.builder.has_command else []
        missing = [n for n in self.command_names if n not in self.privileged_names]
        if missing:
            raise ValueError(f'task {spec.task}: the sensor observation has a velocity command ({COMMAND}), taken '
                             f'from the privileged state, whose layout lacks {missing}; it has {self.privileged_names}')
        self.action_names = list(spec.action_names)
        self.step_action_names = [f'action/{n}' for n in self.action_names]
        self.mean_names = [f'mean/{n}' for n in self.action_names]
        self.std_names = [f'std/{n}' for n in self.action_names]
        # A dataset without privileged state (a bag from a robot) has an empty privileged layout.
        required = ['joints', 'step'] + (['privileged'] if spec.privileged.size else []) + (['imu'] if has_imu else [])
        if spec.teacher:
            required += ['teacher_action', 'teacher_distribution']
        self.required = required
        self.streams = {name: _Stream() for name in required}
        self.announcements: dict[int, dict[str, float]] = {}    # episode index -> announcement
        self.steps_by_episode: dict[int, list[int]] = {}        # episode index -> step stamps
        self.ended: dict[int, int] = {}                         # episode index -> final step stamp
        self.has_age = self.builder.has_sample_age
        self.newest_sensor_ns: dict[str, int] = {}          # sensor stream -> header stamp of its newest arrival
        self.derived_age_ns: dict[int, int] = {}             # step stamp -> age from the stamps (no sample_age field)
        self.stats = AssemblerStats()
        self.topics = topics or {}
        self.strict = strict
        self._index_cache: dict[tuple, tuple[list[str], list[int]]] = {}

    # ---------------------------------------------------------------- input
    def add(self, stream: str, stamp_ns: int, payload: Any) -> None:
        """Add one message. Payloads: JointState/Imu-like objects for joints and imu; (names,
        values) pairs for named vectors and step reports; a dict for episode announcements."""
        self.stats.messages[stream] += 1
        if stream not in self.streams and stream != 'episode':
            return  # a stream this dataset does not record (e.g. imu on a robot without one)
        try:
            if stream == 'joints':
                self.builder.check_message(joints=payload)
            elif stream == 'imu':
                self.builder.check_message(imu=payload)
            elif isinstance(payload, tuple):
                check_named_arrays(payload[0], {'position': payload[1]}, what=f'named vector ({stream})')
                if stream == 'episode':
                    payload = dict(zip(payload[0], (float(v) for v in payload[1])))
                if stream in ('step', 'episode'):
                    self._check_finite(stream, payload)
        except SensorMessageError as exc:
            self._reject(stream, stamp_ns, exc)
            return
        if stream == 'episode':
            self.announcements[int(payload['episode'])] = dict(payload, stamp_ns=stamp_ns)
            return
        if stream in SENSOR_STREAMS:
            self.newest_sensor_ns[stream] = stamp_ns
        if stream == 'step' and self.has_age and 'sample_age' not in payload[0]:
            try:
                self.derived_age_ns[stamp_ns] = self._age_from_stamps(stamp_ns)
            except SensorMessageError as exc:
                self._reject(stream, stamp_ns, exc)
                return
        self.streams[stream].add(stamp_ns, payload)
        if stream == 'step':
            names, values = payload
            terminated, truncated, episode = self._columns('step', names, ('terminated', 'truncated', 'episode'))
            episode = int(values[episode])
            self.steps_by_episode.setdefault(episode, []).append(stamp_ns)
            if values[terminated] or values[truncated]:
                self.ended[episode] = stamp_ns
        self._flush_ready()

    def _check_finite(self, stream: str, payload) -> None:
        names, values = (list(payload), list(payload.values())) if isinstance(payload, dict) else payload
        have = dict(zip(names, values))
        wanted = (('terminated', 'truncated', 'episode', *(['sample_age'] if 'sample_age' in have else []))
                  if stream == 'step' else ('episode',))
        missing = [w for w in wanted if w not in have]
        if missing:
            raise SensorMessageError(f'{stream} message lacks {missing}; it has {list(names)}', stream)
        if not all(np.isfinite(float(have[w])) for w in wanted):
            raise SensorMessageError(f'{stream} message with NaN or Inf in {[f"{w}={have[w]}" for w in wanted]}',
                                     stream)

    def _reject(self, stream: str, stamp_ns: int, exc: SensorMessageError) -> None:
        """Count a bad message with its cause; in strict mode refuse it."""
        topic = self.topics.get(stream, stream)
        cause = f'{topic}: message stamped {stamp_text(stamp_ns)} s: {exc}'
        self.stats.bad[stream] += 1
        self.stats.last_bad = cause
        if self.strict:
            raise type(exc)(cause, stream) from None

    def _columns(self, stream: str, names, wanted) -> list[int]:
        """Positions of `wanted` in a named vector's `names` (cached: a stream's names rarely change)."""
        key = (stream, tuple(wanted))
        cached = self._index_cache.get(key)
        if cached is not None and cached[0] == names:
            return cached[1]
        lookup = {n: i for i, n in enumerate(names)}
        missing = [w for w in wanted if w not in lookup]
        if missing:
            raise SensorMismatch(f'{self.topics.get(stream, stream)}: message lacks {missing}; it has {list(names)}',
                                 stream)
        columns = [lookup[w] for w in wanted]
        self._index_cache[key] = (list(names), columns)
        return columns

    def _age_from_stamps(self, step_ns: int) -> int:
        """A step's sample age from the stamps (ns): its stamp minus the newest joint_states stamp."""
        joints = self.topics.get('joints', 'joints')
        newest = self.newest_sensor_ns.get('joints')
        if newest is None:
            raise SensorMessageError(f'no {joints} message arrived before this step, so its sample age (step stamp '
                                     f'- joint_states header stamp) cannot be read; record {joints} with header '
                                     f'stamps from the sensor\'s clock', 'step')
        if newest > step_ns or newest <= 0:
            raise SensorMessageError(f'the newest {joints} message is stamped {stamp_text(newest)} s, '
                                     f'{"after" if newest > step_ns else "at zero, before"} the step; a sample age '
                                     f'needs header stamps of when each reading was taken, on the same clock as the '
                                     f'step\'s', 'step')
        return step_ns - newest

    def _age(self, step, stamp_ns: int) -> float:
        """A step's sample age in seconds: the field our simulator writes, else from the stamps."""
        names, values = step
        if 'sample_age' in names:
            return float(values[self._columns('step', names, ('sample_age',))[0]])
        return self.derived_age_ns[stamp_ns] / NS_PER_S

    def _flush_ready(self) -> None:
        for episode in sorted(self.ended):
            end = self.ended[episode]
            # a task with the sample age: its final sensor sample is stamped that much earlier
            sensor_end = end - (round(self._age(self.streams['step'].by_stamp[end], end) * NS_PER_S)
                                if self.has_age else 0)
            if all(s.latest >= (sensor_end if name in SENSOR_STREAMS else end) + self.tolerance_ns
                   for name, s in self.streams.items()):
                self._write(episode)
            else:
                break  # episodes are written in order

    def flush_ended(self) -> None:
        """Write every episode whose final step arrived, without waiting for later messages."""
        for episode in sorted(self.ended):
            self._write(episode)

    def finish(self) -> AssemblerStats:
        """At the end of the input: write every episode that ended; drop the one in flight."""
        self.flush_ended()
        self.stats.dropped_episodes += len(self.steps_by_episode)
        self.steps_by_episode.clear()
        return self.stats

    # ---------------------------------------------------------------- output
    def _write(self, episode: int) -> None:
        end = self.ended.pop(episode)
        stamps = self.steps_by_episode.pop(episode, [])
        found = {name: [stream.find(t, self.tolerance_ns) for t in stamps] for name, stream in self.streams.items()
                 if not (self.has_age and name in SENSOR_STREAMS)}
        ages = None
        if self.has_age:  # the sensor samples are as old as the step says
            ages = [None if step is None else self._age(step, t) for step, t in zip(found['step'], stamps)]
            for name in SENSOR_STREAMS:
                if name in self.streams:
                    found[name] = [None if age is None else
                                   self.streams[name].find(t - round(age * NS_PER_S), self.tolerance_ns)
                                   for t, age in zip(stamps, ages)]
        keep = []
        for i in range(len(stamps)):
            missing = [name for name, parts in found.items() if parts[i] is None]
            if missing:
                self.stats.unpaired.update(missing)
            else:
                keep.append(i)
        for stream in self.streams.values():
            stream.drop_through(end)
        for stamp in [s for s in self.derived_age_ns if s <= end]:
            del self.derived_age_ns[stamp]
        announcement = self.announcements.pop(episode, {})
        if not keep:
            return
        arrays = self._arrays(found, keep, np.asarray(stamps, dtype=np.int64)[keep],
                              None if ages is None else [ages[i] for i in keep])
        meta = {'episode': episode, 'task': self.spec.task, 'first_stamp_ns': int(stamps[0]),
                'seed': int(announcement['seed']) if 'seed' in announcement else None,
                'latency_steps': int(announcement['latency_steps']) if 'latency_steps' in announcement else None,
                'dynamics': {k.split('/', 1)[1]: v for k, v in announcement.items() if k.startswith('dynamics/')},
                'complete': len(keep) == len(stamps)}
        if self.writer is not None:
            self.writer.write_episode(arrays, meta)
        self.stats.episodes += 1
        self.stats.samples += len(keep)

    def _named_columns(self, stream: str, parts: list, keep: list[int], wanted: list[str]) -> np.ndarray:
        """(samples, len(wanted)) from named-vector payloads, each mapped by name."""
        rows = np.empty((len(keep), len(wanted)))
        for j, i in enumerate(keep):
            names, values = parts[i]
            rows[j] = np.asarray(values, dtype=np.float64)[self._columns(stream, names, wanted)]
        return rows

    def _arrays(self, found: dict[str, list], keep: list[int], stamps: np.ndarray,
                ages: list[float] | None) -> dict[str, np.ndarray]:
        """The episode's fields, in the dataset's layout, from the paired messages (`ages`: each
        sample's age in seconds, for a task with the sample age)."""
        sensor = np.empty((len(keep), self.spec.sensor.size))
        joints, imu = found['joints'], found.get('imu')
        command = (self._named_columns('privileged', found['privileged'], keep, self.command_names)
                   if self.command_names else [None] * len(keep))
        for j, i in enumerate(keep):
            self.builder.build_from_messages(joints[i], imu[i] if imu is not None else None, out=sensor[j],
                                             command=command[j], sample_age=None if ages is None else ages[j])
        step = self._named_columns('step', found['step'], keep,
                                   ['reward', 'terminated', 'truncated', *self.step_action_names])
        arrays = {'sensor_obs': sensor,
                  'privileged_obs': (self._named_columns('privileged', found['privileged'], keep, self.privileged_names)
                                     if 'privileged' in found else np.empty((len(keep), 0))),
                  'action': step[:, 3:], 'reward': step[:, 0], 'terminated': step[:, 1] != 0,
                  'truncated': step[:, 2] != 0, 'stamp_ns': stamps}
        if self.spec.teacher:
            arrays['teacher_action'] = self._named_columns('teacher_action', found['teacher_action'], keep,
                                                           self.action_names)
            dist = self._named_columns('teacher_distribution', found['teacher_distribution'], keep,
                                       self.mean_names + self.std_names)
            a = len(self.action_names)
            arrays['teacher_mean'], arrays['teacher_std'] = dist[:, :a], dist[:, a:]
        return arrays
