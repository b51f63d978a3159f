import os
import os.path as osp
import shutil

from setuptools import find_packages, setup

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
    include_package_data=True,
    package_data={'kpt_plugin': ['.mim/**/*', '.mim/*', 'zoo/*.yml']},
    install_requires=['torch', 'mmengine>=0.10', 'mmpose>=1.3', 'numpy', 'opencv-python<5'],
    # hpip: the high-performance backends (use_hpip=True / --backend hpip|openvino|onnxruntime)
    extras_require={'tests': read_requirements('tests.txt'), 'hpip': ['onnx', 'onnxruntime', 'openvino']},
    entry_points={'console_scripts': ['kpt-plugin=kpt_plugin.cli:main']},
    zip_safe=False,
)
