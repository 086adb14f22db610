"""Where the package's files live (config/ and launch/, installed or in a source checkout; the shipped
checkpoints), and reading the files a user names."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

PACKAGE = 'distill_ros'


def share_dir() -> Path:
    """The folder holding `config/` and `launch/`.

    Looked up in this order: `$DISTILL_ROS_SHARE`; the ament index (a colcon install, when
    `ament_index_python` is importable); `<prefix>/share/distill_ros` of this interpreter (a plain
    pip install) or of the install prefix this module lies in; the source checkout this module
    was imported from (an editable install).
    """
    candidates: list[Path] = []
    if os.environ.get('DISTILL_ROS_SHARE'):
        candidates.append(Path(os.environ['DISTILL_ROS_SHARE']))
    source_root = Path(__file__).resolve().parent.parent
    candidates.append(source_root)
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            candidates.append(Path(get_package_share_directory(PACKAGE)))
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset (no sourced workspace)
            pass
    except ImportError:
        pass
    candidates.append(Path(sys.prefix) / 'share' / PACKAGE)
    # <prefix>/lib/pythonX.Y/site-packages/distill_ros -> <prefix>/share/distill_ros (colcon install, unsourced)
    parents = Path(__file__).resolve().parents
    if len(parents) > 4:
        candidates.append(parents[4] / 'share' / PACKAGE)
    for candidate in candidates:
        if (candidate / 'config').is_dir():
            return candidate
    raise FileNotFoundError(f'cannot find the distill_ros share folder (with config/); looked in '
                            f'{[str(c) for c in candidates]}; set DISTILL_ROS_SHARE to the folder')


def config_path(*parts: str) -> Path:
    return share_dir().joinpath('config', *parts)


def shipped_checkpoint(folder: Path, role: str, task: str, hint: str) -> Path:
    """`folder/<task>`, a checkpoint shipped with the package (distill_ros/teachers/ or students/),
    or a `CheckpointError` naming the `role` and the tasks shipped, and saying `hint` (how to make one)."""
    path = folder / task
    if not (path / 'policy.json').is_file():
        from distill_ros.policies.checkpoint import CheckpointError  # torch: only on this path

        have = sorted(p.name for p in folder.iterdir() if (p / 'policy.json').is_file()) if folder.is_dir() else []
        raise CheckpointError(f'no {role} is shipped for task {task!r} (shipped: {have}); {hint}')
    return path


class UserFileError(ValueError):
    """A file the user named cannot be read as what it should be: the message names it."""


def read_user_text(path: str | Path, what: str) -> str:
    """The text of a file the user gave (`what` says which, e.g. 'topics YAML'), or a
    `UserFileError` naming the file and the problem (missing, a folder, not UTF-8 text)."""
    path = Path(path)
    try:
        return path.read_text(encoding='utf-8')
    except FileNotFoundError:
        raise UserFileError(f'{what} {path} does not exist') from None
    except IsADirectoryError:
        raise UserFileError(f'{what} {path} is a folder; expected a file') from None
    except UnicodeDecodeError as exc:
        raise UserFileError(f'{what} {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset '
                            f'{exc.start}); expected a text file') from None
    except OSError as exc:
        raise UserFileError(f'{what} {path}: cannot read: {exc.strerror}') from None


def load_user_yaml(path: str | Path, what: str, mapping: bool = True) -> Any:
    """A YAML file the user gave, parsed safely; with `mapping` (the default) it must be a mapping
    (an empty file is an empty one). Problems raise `UserFileError` naming the file."""
    import yaml

    text = read_user_text(path, what)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' (line {mark.line + 1}, column {mark.column + 1})' if mark is not None else ''
        problem = getattr(exc, 'problem', None) or str(exc).splitlines()[0]
        raise UserFileError(f'{what} {path} is not valid YAML{where}: {problem}') from None
    if mapping:
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise UserFileError(f'{what} {path} holds a {type(data).__name__}; expected a mapping (key: value)')
    return data


def load_user_json(path: str | Path, what: str) -> Any:
    """A JSON file the user gave, or a `UserFileError` naming the file and the problem."""
    import json

    text = read_user_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserFileError(f'{what} {path} is not valid JSON (line {exc.lineno}, column {exc.colno}): '
                            f'{exc.msg}') from None
