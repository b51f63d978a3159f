"""Packaging of the startup hook (setup.py) and install.sh's pins and output filter."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ENV = dict(os.environ, OMP_NUM_THREADS='1', PIP_DISABLE_PIP_VERSION_CHECK='1')


@pytest.fixture(scope='module')
def source_copy(tmp_path_factory):
    """The project's sources in a temp folder, so builds write nothing into the checkout."""
    dst = tmp_path_factory.mktemp('src') / 'kpt_plugin_src'
    skip = shutil.ignore_patterns('.git', '.venv', 'build', 'dist', '*.egg-info', '.mim', '__pycache__', 'work_dirs',
                                  '*.pth', '.pytest_cache')
    shutil.copytree(REPO, dst, ignore=skip)
    shutil.copy(osp.join(REPO, 'kpt_plugin.pth'), dst)  # *.pth above skips checkpoints, not the hook
    return dst


def _root_files(wheel):
    with zipfile.ZipFile(wheel) as z:
        return {n for n in z.namelist() if '/' not in n}, z.read('kpt_plugin.pth').decode()


def test_wheel_puts_the_pth_at_the_site_packages_root(source_copy, tmp_path):
    out = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w',
                          str(tmp_path), '.'], cwd=source_copy, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = tmp_path.glob('kpt_plugin-*.whl')
    roots, pth = _root_files(wheel)
    assert {'kpt_plugin.pth', '_kpt_plugin_hook.py', 'kpt_plugin_cli.py'} <= roots
    with open(osp.join(REPO, 'kpt_plugin.pth')) as f:
        assert pth == f.read() and pth.startswith('import ')  # `site` executes only lines starting with import


def test_editable_wheel_also_has_the_pth(source_copy, tmp_path):
    # PEP 660 (what `pip install -e .` builds): the same file at the root of the editable wheel
    code = f'from setuptools import build_meta; print(build_meta.build_editable({str(tmp_path)!r}))'
    out = subprocess.run([sys.executable, '-c', code], cwd=source_copy, env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    roots, _ = _root_files(tmp_path / out.stdout.strip().splitlines()[-1])
    assert 'kpt_plugin.pth' in roots


def _quiet_pip_stderr(text):
    script = ('eval "$(sed -n \'/^KNOWN_CONFLICTS=/,/^}/p\' install.sh)"\nquiet_pip_stderr')
    out = subprocess.run(['bash', '-c', script], cwd=REPO, input=text, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stderr


def test_install_hides_only_the_known_conflicts():
    header = ("ERROR: pip's dependency resolver does not currently take into account all the packages that are "
              'installed. This behaviour is the source of the following dependency conflicts.')
    known = (f'{header}\nopenmim 0.3.9 requires opendatalab, which is not installed.\n{header}\n'
             'mmpose 1.3.2 requires chumpy, which is not installed.\n'
             'mmpose 1.3.2 requires torchvision, which is not installed.\n'
             "WARNING: Location 'file:///x/' is ignored: it is neither a file nor a directory.\n")
    assert _quiet_pip_stderr(known) == ''
    unknown = f'{header}\nmmpose 1.3.2 requires chumpy, which is not installed.\nfoo 1.0 requires bar<2, but you ' \
              'have bar 3.0 which is incompatible.\nERROR: No matching distribution found for nothing\n'
    assert _quiet_pip_stderr(unknown).splitlines() == [
        header, 'foo 1.0 requires bar<2, but you have bar 3.0 which is incompatible.',
        'ERROR: No matching distribution found for nothing']


def test_install_into_needs_a_python():
    out = subprocess.run(['bash', 'install.sh', '--into', '/nonexistent/env'], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and 'no python at /nonexistent/env' in out.stderr


def test_env_pins_keep_what_the_env_has(tmp_path):
    from importlib import metadata
    out = subprocess.run([sys.executable, osp.join(REPO, 'requirements', 'env_pins.py'), str(tmp_path), '--keep'],
                         env=ENV, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pins = (tmp_path / 'constraints.txt').read_text().split()
    torch_pins = [p for p in pins if p.startswith('torch==')]
    assert torch_pins == [f'torch=={metadata.version("torch")}']  # the env's own torch, never another one
    assert f'numpy=={metadata.version("numpy")}' in pins and 'setuptools<82' in pins
    runtime = (tmp_path / 'runtime.txt').read_text().split()
    assert 'mmengine==0.10.7' in runtime
    # without --keep: our .venv's pins, verbatim
    out = subprocess.run([sys.executable, osp.join(REPO, 'requirements', 'env_pins.py'), str(tmp_path)], env=ENV,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and 'torch==2.13.0' in (tmp_path / 'constraints.txt').read_text().split()
