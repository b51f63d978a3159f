"""``kpt-plugin convert``: through the host CLI (``kpt_plugin_cli``) and on a bare parser with a fake zoo."""
import argparse
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch

from weight_convert import cli
from weight_convert.errors import KptError

from ._helpers import IR, REPO, config_path


def _run(argv, resolver=None):
    parser = argparse.ArgumentParser(prog='t')
    cli.add_parser(parser.add_subparsers(dest='command'), resolver=resolver)
    args = parser.parse_args(['convert'] + argv)
    return args.func(args)


class _Zoo:
    """A fake resolver (what the kpt_plugin zoo passes)."""

    def __init__(self, ckpt):
        self.ckpt, self.fetched = ckpt, []

    def arch(self, name):
        if name != 'Tiny_256':
            raise KptError(f'unknown model {name!r}; available: Tiny_256')
        return 'PP-TinyPose_256x192'

    def fetch(self, name):
        self.fetched.append(name)
        return 'cfg.py', self.ckpt


def test_convert_with_alias_arch_and_model_recorded(random_pdparams, tmp_path, capsys):
    def factory():
        raise AssertionError('the resolver is only built for --model')

    assert _run([random_pdparams, '-o', str(tmp_path / 'a.pth'), '--arch', 'PP-TinyPose_256x192'], factory) == 0
    assert 'pdparams, pp_tinypose_256x192' in capsys.readouterr().out
    assert _run([random_pdparams, '-o', str(tmp_path / 'b.pth'), '--model', 'anything']) == 0
    meta = torch.load(tmp_path / 'b.pth', map_location='cpu', weights_only=True)['meta']
    assert meta['model'] == 'anything' and meta['arch'] == 'pp_tinypose_128x96'


def test_model_through_the_resolver(random_pdparams, tmp_path, capsys):
    zoo = _Zoo(random_pdparams)
    assert _run(['--model', 'Tiny_256', '-o', str(tmp_path / 'copy.pth')], lambda: zoo) == 0
    assert zoo.fetched == ['Tiny_256'] and osp.isfile(tmp_path / 'copy.pth')
    assert 'cfg.py' in capsys.readouterr().out
    with pytest.raises(KptError, match='is pp_tinypose_256x192, not pp_tinypose_128x96'):
        _run(['--model', 'Tiny_256', '--arch', 'pp_tinypose_128x96'], lambda: zoo)
    with pytest.raises(KptError, match='available: Tiny_256'):
        _run(['--model', 'nope'], lambda: zoo)
    assert _run([random_pdparams, '--model', 'Tiny_256', '-o', str(tmp_path / 'm.pth')], lambda: zoo) == 0
    assert torch.load(tmp_path / 'm.pth', map_location='cpu', weights_only=True)['meta']['arch'] == \
        'pp_tinypose_256x192'


@pytest.mark.parametrize('argv, what', [([], 'give SRC'), (['x.pdparams'], '-o OUT.pth is required'),
                                        (['--model', 'm'], 'needs the model zoo'),
                                        (['x.pth', '--to', 'pdparams'], 'needs SRC and -o'),
                                        (['/nonexistent/x.pdparams', '-o', 'y.pth'], 'no such file')])
def test_user_errors_are_kpt_errors(argv, what):
    with pytest.raises(KptError, match=what):
        _run(argv)


def test_unwritable_output_is_a_user_error(random_pdparams, tmp_path):
    (tmp_path / 'file').write_text('')
    with pytest.raises(KptError):
        _run([random_pdparams, '-o', str(tmp_path / 'file' / 'x.pth')])


def test_bad_arch_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        _run(['x', '--arch', 'PP-TinyPose_64x48'])
    assert e.value.code == 2 and 'unknown arch' in capsys.readouterr().err


# ------------------------------------------------------------------------------------ the host CLI

def test_cli_convert_and_back(shared_dir, tmp_path, capsys):
    from kpt_plugin_cli import main
    out = str(tmp_path / 'ncnn.pth')
    src = osp.join(shared_dir, 'weights/pp_tinypose_2021_ncnn_fp16/tinypose_128x96.param')
    assert main(['convert', src, '-o', out]) == 0
    assert 'ncnn, pp_tinypose_128x96' in capsys.readouterr().out
    assert main(['convert', out, '--to', 'pdparams', '-o', str(tmp_path / 'x.pdparams')]) == 0
    assert osp.isfile(tmp_path / 'x.pdparams')


def test_cli_errors_are_one_line(shared_dir, tmp_path, capsys):
    from kpt_plugin_cli import main
    rc = main(['convert', osp.join(shared_dir, IR, '256x192'), '--arch', 'PP-TinyPose_128x96',
               '-o', str(tmp_path / 'x.pth')])
    err = capsys.readouterr().err
    assert rc == 2 and 'pp_tinypose_256x192' in err and 'Traceback' not in err
    rc = main(['convert', str(tmp_path / 'missing'), '-o', str(tmp_path / 'y.pth')])
    assert rc == 2 and 'no such file' in capsys.readouterr().err


def test_cli_convert_and_init_model_loads_without_missing_keys(random_pdparams, tmp_path):
    import kpt_plugin  # noqa: F401 - first: its compat fixes must precede mmpose's import (mmcv-lite)
    from mmengine.runner.checkpoint import _load_checkpoint
    from mmpose.apis import init_model
    out = tmp_path / 'tinypose.pth'
    proc = subprocess.run([sys.executable, '-m', 'kpt_plugin_cli', 'convert', random_pdparams, '-o', str(out)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ck = _load_checkpoint(str(out), map_location='cpu')
    assert ck['meta']['source_format'] == 'pdparams' and ck['meta']['arch'] == 'pp_tinypose_128x96'
    assert len(ck['meta']['source_sha256']) == 64
    model = init_model(config_path('pp_tinypose_128x96'), None, device='cpu')
    missing, unexpected = model.load_state_dict(ck['state_dict'], strict=False)
    assert not missing and not unexpected


def test_console_script_is_installed():
    exe = shutil.which('kpt-plugin', path=osp.dirname(sys.executable))
    assert exe, 'kpt-plugin console script missing: run install.sh'
    proc = subprocess.run([exe, 'convert', '--help'], capture_output=True, text=True)
    assert proc.returncode == 0 and 'pdparams' in proc.stdout


def test_cli_error_is_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'kpt_plugin_cli', 'convert', str(tmp_path / 'nope.pdparams'),
                           '-o', str(tmp_path / 'o.pth')], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert 'nope.pdparams' in proc.stderr and 'Traceback' not in proc.stderr
