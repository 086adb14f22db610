"""The dataset format: an append-only folder of per-episode shards with a checksummed manifest.

    DATASET/
      manifest.json               format, task (and the task file a task given as one came from:
                                  path and sha256), every field's shape, dtype and element names, and
                                  one entry per finished episode: shard file, sample count,
                                  sha256, seed, dynamics, latency
      episodes/000000.safetensors one shard per finished episode: one array per field, first axis
                                  = samples in time order

Writes are crash-safe: a shard is written to a temporary file, flushed to disk and renamed, and
only then is the manifest replaced (also by rename). A crash loses at most the episode in flight;
a shard without a manifest entry is ignored. On load every shard's checksum is verified; a damaged
or truncated shard is reported by name and the rest still loads. Nothing is unpickled.
See docs/dataset.md.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.numpy import load_file, save_file

from distill_ros.observation import ObsSpec

if TYPE_CHECKING:
    from distill_ros.sim.task import TaskFile, TaskSpec

FORMAT = 'distill_ros.dataset/1'
MANIFEST = 'manifest.json'
EPISODES = 'episodes'


class DatasetError(ValueError):
    """A dataset folder is missing, inconsistent, or does not match what is being written to it."""


@dataclass(frozen=True)
class DatasetSpec:
    """What every sample holds: named layouts for observations and actions."""

    task: str
    sensor: ObsSpec
    privileged: ObsSpec
    action_names: tuple[str, ...]
    teacher: bool = True   # teacher action and distribution recorded
    task_file: TaskFile | None = None   # a task given as a file: where it was, its hashes (None: built-in)

    def fields(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """field name -> (per-sample shape, dtype)."""
        a = len(self.action_names)
        out = {'sensor_obs': ((self.sensor.size,), 'float64'),
               'privileged_obs': ((self.privileged.size,), 'float64'),
               'action': ((a,), 'float64'),
               'reward': ((), 'float64'),
               'terminated': ((), 'bool'),
               'truncated': ((), 'bool'),
               'stamp_ns': ((), 'int64')}
        if self.teacher:
            out.update({'teacher_action': ((a,), 'float64'), 'teacher_mean': ((a,), 'float64'),
                        'teacher_std': ((a,), 'float64')})
        return out

    def to_json(self) -> dict[str, Any]:
        return {'task': self.task, **({'task_file': self.task_file.to_json()} if self.task_file else {}),
                'sensor': self.sensor.to_json(), 'privileged': self.privileged.to_json(),
                'action_names': list(self.action_names), 'teacher': self.teacher,
                'fields': {k: {'shape': list(s), 'dtype': d} for k, (s, d) in self.fields().items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetSpec:
        from distill_ros.sim.task import TaskFile
        return cls(task=data['task'], sensor=ObsSpec.from_json(data['sensor']),
                   privileged=ObsSpec.from_json(data['privileged']), action_names=tuple(data['action_names']),
                   teacher=bool(data.get('teacher', True)), task_file=TaskFile.from_json(data.get('task_file')))

    @classmethod
    def for_env(cls, env, teacher: bool = True) -> DatasetSpec:
        return cls(env.task.name, env.sensor_spec, env.privileged_spec, tuple(env.action_names), teacher,
                   env.task.file)

    def load_task(self, what: str = 'the dataset', given: str | Path | None = None) -> TaskSpec:
        """The task this data was recorded on (its task file, checked, or the built-in task):
        `sim.task.resolve_task`."""
        from distill_ros.sim.task import resolve_task
        return resolve_task(self.task, self.task_file, what, given)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class DatasetWriter:
    """Appends finished episodes to a dataset folder (creating it, or continuing an existing one)."""

    def __init__(self, folder: str | Path, spec: DatasetSpec):
        self.folder = Path(folder)
        self.spec = spec
        (self.folder / EPISODES).mkdir(parents=True, exist_ok=True)
        manifest_path = self.folder / MANIFEST
        if manifest_path.exists():
            manifest = _read_manifest(manifest_path)
            existing = DatasetSpec.from_json(manifest['spec'])
            if existing.task_file != spec.task_file and (existing.task, existing.task_file) != (spec.task, None):
                was = existing.task_file.path if existing.task_file else 'the built-in task'
                now = (f'{spec.task_file.path} (sha256 {spec.task_file.sha256[:12]}…)' if spec.task_file
                       else 'the built-in task')
                raise DatasetError(f'{self.folder} holds episodes of task {existing.task!r} recorded from {was}'
                                   f'{f" (sha256 {existing.task_file.sha256[:12]}…)" if existing.task_file else ""}'
                                   f'; cannot append episodes of {now}: a changed task is a new dataset')
            if existing != spec:
                raise DatasetError(f'{self.folder} holds a dataset of task {existing.task!r} with another layout; '
                                   f'cannot append episodes of task {spec.task!r} (use a new folder)')
            self.manifest = manifest
        else:
            self.manifest = {'format': FORMAT, 'spec': spec.to_json(), 'episodes': []}
            _atomic_write(manifest_path, json.dumps(self.manifest, indent=1).encode())

    @property
    def episodes(self) -> int:
        return len(self.manifest['episodes'])

    @property
    def samples(self) -> int:
        return sum(e['samples'] for e in self.manifest['episodes'])

    def write_episode(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        fields = self.spec.fields()
        missing = sorted(set(fields) - set(arrays))
        if missing:
            raise DatasetError(f'episode lacks fields {missing}')
        n = len(arrays['stamp_ns'])
        tensors = {}
        for name, (shape, dtype) in fields.items():
            a = np.ascontiguousarray(arrays[name], dtype=dtype)
            if a.shape != (n, *shape):
                raise DatasetError(f'field {name!r} has shape {a.shape}, expected {(n, *shape)}')
            tensors[name] = a.astype(np.uint8) if dtype == 'bool' else a
        index = len(self.manifest['episodes'])
        path = self.folder / EPISODES / f'{index:06d}.safetensors'
        tmp = path.with_name(path.name + '.tmp')
        save_file(tensors, str(tmp), metadata={'episode': str(index), 'meta': json.dumps(meta)})
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        entry = {'file': f'{EPISODES}/{path.name}', 'samples': n, 'sha256': _sha256(path), **meta}
        self.manifest['episodes'].append(entry)
        _atomic_write(self.folder / MANIFEST, json.dumps(self.manifest, indent=1).encode())
        return path


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f'{path}: cannot read the manifest: {exc}') from exc
    if manifest.get('format') != FORMAT:
        raise DatasetError(f'{path}: format is {manifest.get("format")!r}, expected {FORMAT!r}')
    return manifest


@dataclass
class Dataset:
    """A loaded dataset: every field concatenated over episodes, with episode boundaries."""

    folder: Path
    spec: DatasetSpec
    arrays: dict[str, np.ndarray]
    episode_starts: np.ndarray             # index of each episode's first sample
    episodes: list[dict[str, Any]]         # manifest entries of the loaded episodes
    problems: list[str] = field(default_factory=list)  # damaged shards, skipped

    def __len__(self) -> int:
        return len(self.arrays['stamp_ns'])

    def episode(self, i: int) -> dict[str, np.ndarray]:
        start = self.episode_starts[i]
        end = self.episode_starts[i + 1] if i + 1 < len(self.episode_starts) else len(self)
        return {k: v[start:end] for k, v in self.arrays.items()}


def load_dataset(folder: str | Path, verify: bool = True) -> Dataset:
    """Load every intact episode listed in the manifest; damaged shards go to `problems`."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise DatasetError(f'{folder} is not a dataset: {MANIFEST} is missing')
    manifest = _read_manifest(manifest_path)
    spec = DatasetSpec.from_json(manifest['spec'])
    fields = spec.fields()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in fields}
    loaded, problems, starts, total = [], [], [], 0
    for entry in manifest['episodes']:
        path = folder / entry['file']
        if not path.is_file():
            problems.append(f'{path}: missing')
            continue
        if verify and _sha256(path) != entry['sha256']:
            problems.append(f'{path}: checksum mismatch (damaged or truncated); skipped')
            continue
        try:
            tensors = load_file(str(path))
        except Exception as exc:  # safetensors has its own error types
            problems.append(f'{path}: unreadable ({exc}); skipped')
            continue
        starts.append(total)
        total += entry['samples']
        for name, (_, dtype) in fields.items():
            parts[name].append(tensors[name].astype(bool) if dtype == 'bool' else tensors[name])
        loaded.append(entry)
    arrays = {name: (np.concatenate(p) if p else np.zeros((0, *fields[name][0]), dtype=fields[name][1]))
              for name, p in parts.items()}
    return Dataset(folder, spec, arrays, np.asarray(starts, dtype=np.int64), loaded, problems)


class BackgroundWriter:
    """Writes episodes on a worker thread, in order, so a live recorder keeps taking messages while
    a shard is hashed and flushed to disk (file I/O and fsync release the GIL). Crash safety is the
    `DatasetWriter`'s: a shard is listed in the manifest only once it is complete on disk."""

    def __init__(self, writer: DatasetWriter):
        import queue
        import threading

        self.writer = writer
        self.queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name='dataset-writer', daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            try:
                self.writer.write_episode(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller on its next call
                self.error = exc

    def write_episode(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        if self.error is not None:
            raise DatasetError(f'writing {self.writer.folder} failed: {self.error}') from self.error
        self.queue.put((arrays, meta))

    def close(self) -> None:
        """Wait until every queued episode is on disk."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise DatasetError(f'writing {self.writer.folder} failed: {self.error}') from self.error
