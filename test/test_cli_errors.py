"""User errors end every `distill-ros` verb with one clear message (the file, key or field, what was
found and what was expected) and a non-zero exit status, never a Python traceback."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from distill_ros.cli import main
from distill_ros.distill.config import ConfigError, parse_config
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.students import shipped_student


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """`distill-ros ARGV` in this process: its exit status and its output (any exception but
    SystemExit fails the test, as a traceback would)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    return info.value.code, out.out + out.err


@pytest.fixture(scope='module')
def garbage(tmp_path_factory):
    """Files a new user might hand over by mistake: random bytes, broken YAML, a folder of junk."""
    root = tmp_path_factory.mktemp('garbage')
    (root / 'random.bin').write_bytes(bytes(range(256)) * 3)
    (root / 'broken.yaml').write_text('topics: [unclosed\n  - : :\n')
    (root / 'list.yaml').write_text('- joints\n- imu\n')
    junk = root / 'junk'
    junk.mkdir()
    for name in ('policy.json', 'model.safetensors', 'metadata.yaml', 'eval.json', 'manifest.json'):
        (junk / name).write_bytes(bytes(range(256)))
    return root


def cases(g) -> list[list[str]]:
    """Every verb, each with garbage in one of its file or value arguments."""
    bin_, yml, lst, junk, out = (str(g / 'random.bin'), str(g / 'broken.yaml'), str(g / 'list.yaml'),
                                 str(g / 'junk'), str(g / 'out'))
    return [
        ['tasks', yml],
        ['tasks', bin_],
        ['train-teacher', '--task', 'cartpole', '--out', out, '--config', yml],
        ['train-teacher', '--task', 'cartpole', '--out', out, '--config', bin_],
        ['import-teacher', 'onnx', bin_, '--task', 'cartpole', '--out', out],
        ['import-teacher', 'torchscript', bin_, '--task', 'cartpole', '--out', out],
        ['import-teacher', 'torchscript', bin_, '--task', 'cartpole', '--out', out, '--trust-code'],
        ['import-teacher', 'sb3', bin_, '--task', 'cartpole', '--out', out],
        ['import-teacher', 'sb3', bin_, '--task', 'cartpole', '--out', out, '--normalization', bin_],
        ['import-teacher', 'onnx', bin_, '--task', 'cartpole', '--out', out, '--input-names', bin_],
        ['import-teacher', 'onnx', bin_, '--task', 'cartpole', '--out', out, '--contract', yml],
        ['make-task', '--contract', yml, '--model', bin_, '--name', 'x', '--out', out],
        ['make-task', '--contract', bin_, '--model', bin_, '--name', 'x', '--out', out],
        ['make-task', '--contract', lst, '--model', bin_, '--name', 'x', '--out', out],
        ['check-teacher', '--task', 'cartpole', '--teacher', junk],
        ['check-teacher', '--task', yml, '--teacher', junk],
        ['bag2dataset', bin_, '--out', out],
        ['bag2dataset', junk, '--out', out],
        ['bag2dataset', junk, '--out', out, '--topics', yml],
        ['bag2dataset', junk, '--out', out, '--topics', lst],
        ['bag2dataset', junk, '--out', out, '--topics', bin_],
        ['bag-reindex', bin_],
        ['bag-reindex', junk],
        ['collect', '--teacher', junk, '--out', out],
        ['distill', '--dataset', junk, '--teacher', junk, '--out', out],
        ['distill', '--dataset', junk, '--teacher', junk, '--out', out, '--config', yml],
        ['distill', '--dataset', junk, '--teacher', junk, '--out', out, '--set', 'train.steps=[1'],
        ['eval', '--teacher', junk, '--out', out, '--episodes', '1'],
        ['eval', '--student', f'x={junk}', '--out', out, '--episodes', '1'],
        ['report', junk],
        ['report', str(g)],
        ['export', junk, '--onnx', str(g / 'x.onnx')],
        ['finetune', '--student', junk, '--out', out],
        ['finetune', '--student', junk, '--out', out, '--config', yml],
        ['finetune', '--student', junk, '--out', out, '--set', 'ppo.iterations=[1'],
        ['demo', '--config', yml, '--out', out],
        ['demo', '--teacher', junk, '--out', out],
        ['demo', '--out', str(earlier_demo(g))],
    ]


def earlier_demo(folder: Path) -> Path:
    """An output folder that an earlier demo wrote: a second run must not record into its datasets."""
    (folder / 'demo_out' / 'data').mkdir(parents=True, exist_ok=True)
    return folder / 'demo_out'


def test_every_verb_refuses_garbage_with_one_message(garbage, capsys):
    verbs = set()
    for argv in cases(garbage):
        status, output = run_cli(argv, capsys)
        assert status != 0, (argv, output)
        assert 'Traceback' not in output, (argv, output)
        lines = [line for line in output.splitlines() if line.strip()]
        assert lines and lines[-1].startswith(f'distill-ros {argv[0]}: error: '), (argv, output)
        assert str(garbage) in lines[-1] or 'expected' in lines[-1], (argv, lines[-1])
        verbs.add(argv[0])
    from distill_ros.cli import build_parser
    choices = next(a for a in build_parser()._actions if a.dest == 'command').choices
    assert verbs == set(choices), f'verbs without a garbage case: {set(choices) - verbs}'


def test_the_installed_command_prints_no_traceback(garbage):
    """The console script as a user runs it: one line on stderr, status 2."""
    result = subprocess.run([sys.executable, '-m', 'distill_ros.cli', 'bag2dataset', str(garbage / 'junk'),
                             '--out', str(garbage / 'o'), '--topics', str(garbage / 'broken.yaml')],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr
    assert result.stderr.strip() == (f'distill-ros bag2dataset: error: topics YAML {garbage / "broken.yaml"} is not '
                                     f"valid YAML (line 2, column 5): expected ',' or ']', but got ':'")


def test_files_that_are_not_what_they_should_be_are_named(garbage, capsys):
    status, output = run_cli(['bag2dataset', str(garbage / 'junk'), '--out', str(garbage / 'o'),
                              '--topics', str(garbage / 'random.bin')], capsys)
    assert status == 2 and f'topics YAML {garbage / "random.bin"} is not UTF-8 text' in output
    status, output = run_cli(['bag2dataset', str(garbage / 'junk'), '--out', str(garbage / 'o'),
                              '--topics', str(garbage / 'list.yaml')], capsys)
    assert status == 2 and f'topics YAML {garbage / "list.yaml"} holds a list; expected a mapping' in output


@pytest.mark.parametrize('sizes, message', [
    ({'hiden': [64]}, r"unknown key student\.sizes\.hiden for a 'mlp' student; expected some of \['hidden'\]"),
    ({'hidden': [64, 0]}, r'student\.sizes\.hidden is \[64, 0\]; expected a list of positive integers'),
    ({'hidden': [64, -3]}, r'student\.sizes\.hidden is \[64, -3\]'),
    ({'hidden': 64}, r'student\.sizes\.hidden is 64; expected a list of positive integers'),
])
def test_student_sizes_are_checked_when_the_config_is_read(sizes, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({'student': {'type': 'mlp', 'sizes': sizes}})
    with pytest.raises(ConfigError, match=r'student\.sizes\.hidden_size is 0; expected a positive integer'):
        parse_config({'student': {'type': 'gru', 'sizes': {'hidden_size': 0}}})
    with pytest.raises(ConfigError, match=r"progressive\.stages\[0\]\.sizes: unknown key|unknown key "
                                          r"progressive\.stages\[0\]\.sizes\.channels for a 'mlp' student"):
        parse_config({'progressive': {'stages': [{'sizes': {'channels': [8]}}]}})
    parse_config({'student': {'type': 'tcn', 'sizes': {'channels': [8, 8], 'kernel_size': 3, 'latent': 16}}})


def copy_checkpoint(tmp_path, name='ckpt'):
    import shutil
    folder = tmp_path / name
    shutil.copytree(shipped_student('cartpole'), folder)
    return folder


@pytest.mark.parametrize('change, message', [
    # Terabytes if allocated: refused from the file's header, nothing built.
    (lambda a: a.update(hidden=[1_000_000, 1_000_000]), 'shape mismatch'),
    (lambda a: a.update(hidden=[64, 64, 64]), 'missing tensors'),
    (lambda a: a.update(hidden=[-5]), 'malformed spec'),
    (lambda a: a.update(hidden='wide'), 'malformed spec'),
    (lambda a: a.update(type='Transformer'), "unknown architecture type 'Transformer'"),
    (lambda a: a.update(depth=3), 'malformed spec'),
])
def test_checkpoint_json_is_checked_against_the_tensor_file_before_building(tmp_path, change, message):
    folder = copy_checkpoint(tmp_path)
    spec = json.loads((folder / 'policy.json').read_text())
    change(spec['architecture'])
    (folder / 'policy.json').write_text(json.dumps(spec))
    start = time.perf_counter()
    with pytest.raises(ckpt_io.CheckpointError, match=message):
        ckpt_io.load(folder)
    assert time.perf_counter() - start < 2.0, 'the absurd model was built before the check'


def test_checkpoint_json_that_is_not_an_object_is_refused(tmp_path, capsys):
    folder = copy_checkpoint(tmp_path)
    (folder / 'policy.json').write_text('[1, 2, 3]')
    status, output = run_cli(['export', str(folder), '--onnx', str(tmp_path / 'x.onnx')], capsys)
    assert status == 2 and 'policy.json: holds a list; expected a JSON object' in output


class Payload:
    """What a malicious policy.pth carries: an object whose unpickling calls a function."""

    def __reduce__(self):
        return (print, ('this ran while loading',))


def test_sb3_zip_with_pickled_code_is_refused_by_name(tmp_path, capsys):
    buffer = io.BytesIO()
    torch.save({'action_net.weight': torch.zeros(1, 7), 'payload': Payload()}, buffer)
    with zipfile.ZipFile(tmp_path / 'evil.zip', 'w') as archive:
        archive.writestr('policy.pth', buffer.getvalue())
    status, output = run_cli(['import-teacher', 'sb3', str(tmp_path / 'evil.zip'), '--task', 'cartpole',
                              '--out', str(tmp_path / 'o')], capsys)
    assert status == 2, output
    assert 'policy.pth holds pickled Python objects' in output and 'it is not loaded' in output
    assert 'weights_only' not in output and 'this ran while loading' not in output
    assert not (tmp_path / 'o').exists()


def test_torchscript_import_asks_for_trust_code(tmp_path, capsys):
    module = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(7, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)))
    module.save(str(tmp_path / 'policy.pt'))
    status, output = run_cli(['import-teacher', 'torchscript', str(tmp_path / 'policy.pt'), '--task', 'cartpole',
                              '--out', str(tmp_path / 'o')], capsys)
    assert status == 2 and 'importing it runs its code; pass --trust-code' in output
    status, output = run_cli(['import-teacher', 'torchscript', str(tmp_path / 'policy.pt'), '--task', 'cartpole',
                              '--out', str(tmp_path / 'o'), '--trust-code'], capsys)
    assert status == 0, output
    assert ckpt_io.load(tmp_path / 'o').model.obs_dim == 7
    help_text = subprocess.run([sys.executable, '-m', 'distill_ros.cli', 'import-teacher', '--help'],
                               capture_output=True, text=True, timeout=120).stdout
    assert '--trust-code' in help_text and 'runs its code' in help_text.replace('\n', ' ')


NODES = ('sim_node', 'teacher_node', 'recorder_node', 'distill_node', 'student_controller_node')


def test_every_node_refuses_garbage_with_one_message(garbage, tmp_path):
    """Each node with a params file that is not parameter YAML, and with a junk checkpoint, task or
    dataset: status 2 and a line naming the problem, no traceback."""
    from distill_ros.procs import node_command, ros_arguments

    runs = [(node, ['--params-file', str(garbage / 'broken.yaml')], {}, "Couldn't parse params file") for node in NODES]
    runs += [
        ('sim_node', [], {'task': str(garbage / 'broken.yaml')}, 'is not valid YAML (line 2, column 5)'),
        ('teacher_node', [], {'checkpoint': str(garbage / 'junk')}, "parameter 'checkpoint'"),
        ('recorder_node', [], {'task': str(garbage / 'random.bin'), 'dataset': str(tmp_path / 'ds')}, 'unknown task'),
        ('distill_node', [], {'dataset': str(garbage / 'junk'), 'out': str(tmp_path / 'o'),
                              'config': str(garbage / 'broken.yaml')}, "parameter 'config': distillation config"),
        ('student_controller_node', [], {'checkpoint': str(garbage / 'junk'), 'auto_activate': True},
         "parameter 'checkpoint'"),
    ]
    procs = []
    for node, ros_args, params, expected in runs:
        args = ros_arguments(params, ros_args)
        procs.append((node, expected, subprocess.Popen(node_command(node) + args, stdout=subprocess.PIPE,
                                                       stderr=subprocess.STDOUT, text=True)))
    for node, expected, proc in procs:
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 2, (node, proc.returncode, output)
        assert 'Traceback' not in output and expected in output, (node, output)
