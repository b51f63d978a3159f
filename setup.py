import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    ns = {}
    with open(osp.join(HERE, 'kpt_plugin', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


def read_requirements(name):
    with open(osp.join(HERE, 'requirements', name)) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]


def add_mim_extension():
    """Copy configs/tools/model-index into ``kpt_plugin/.mim`` so ``mim train/test kpt_plugin`` find them
    in a regular (non-editable) install, the way MMPose ships its own."""
    mim_path = osp.join(HERE, 'kpt_plugin', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in ('configs', 'tools', 'model-index.yml'):
        src = osp.join(HERE, name)
        dst = osp.join(mim_path, name)
        if not osp.exists(src):
            continue
        if osp.isdir(dst):
            shutil.rmtree(dst)
        elif osp.exists(dst):
            os.remove(dst)
        if osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copyfile(src, dst)


class BuildPyWithHook(build_py):
    """Also ship ``kpt_plugin.pth`` at the root of site-packages, where ``site`` runs it at interpreter start.

    The .pth imports :mod:`_kpt_plugin_hook` (standard library only, ~0 startup cost), which applies
    ``kpt_plugin._compat`` on the first import of mmengine/mmcv/mmdet/mmpose, so MMPose's own scripts work
    without ``import kpt_plugin`` first. Regular installs get it from the wheel root (= build_lib); an editable
    install (setuptools >= 64, PEP 660) builds here with ``editable_mode`` and gets it from the unpacked wheel.
    """

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            target = self.distribution.get_command_obj('install').install_lib  # the editable wheel's root
        else:
            target = self.build_lib
        if target:
            self.copy_file(osp.join(HERE, PTH), osp.join(target, PTH))

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [osp.join(self.build_lib, PTH)]


PTH = 'kpt_plugin.pth'
add_mim_extension()

setup(
    name='kpt_plugin',
    version=read_version(),
    description='PP-TinyPose (PaddleDetection) for MMPose 1.x: modules, weight converter, eval, inference',
    long_description=open(osp.join(HERE, 'README.md')).read() if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['kpt_plugin', 'kpt_plugin.*', 'weight_convert', 'weight_convert.*']),
    # kpt_plugin_cli: the launcher, outside the package so `--help` imports no torch; _kpt_plugin_hook: the startup
    # hook run by kpt_plugin.pth (see BuildPyWithHook)
    py_modules=['kpt_plugin_cli', '_kpt_plugin_hook'],
    cmdclass={'build_py': BuildPyWithHook},
    include_package_data=True,
    package_data={'kpt_plugin': ['.mim/**/*', '.mim/*', 'zoo/*.yml']},
    # What kpt_plugin imports, bounded where the stack is known to break. torch is unpinned so an existing torch is
    # kept (never a download); mmcv is not named: mmcv-lite or the full mmcv both provide it (naming one would
    # install it over the other). mmpose's own deps (chumpy, torchvision, an xtcocotools wheel for numpy 1) break
    # on torch 2.13 CPU + numpy 2: `bash install.sh --into ENV` installs around them (docs in install.sh).
    install_requires=['torch', 'mmengine>=0.10,<1', 'mmpose>=1.3,<1.4', 'mmdet>=3.0,<3.4', 'numpy<2.4',
                      'opencv-python<5', 'pyyaml', 'pillow'],
    # hpip: the high-performance backends (use_hpip=True / --backend hpip|openvino|onnxruntime)
    extras_require={'tests': read_requirements('tests.txt'), 'serving': read_requirements('serving.txt'),
                    'hpip': ['onnx', 'onnxruntime', 'openvino']},
    entry_points={'console_scripts': ['kpt-plugin=kpt_plugin_cli:main']},
    zip_safe=False,
)
