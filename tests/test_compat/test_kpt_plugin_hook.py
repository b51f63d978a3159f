"""The startup hook (``kpt_plugin.pth`` -> ``_kpt_plugin_hook``): MMPose's own entry points work in a fresh
interpreter that never imports ``kpt_plugin`` first, and interpreter start stays free."""
import glob
import json
import os
import os.path as osp
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'pp_tinypose', 'td-hm_pp-tinypose_4xb512-420e_aic-coco-128x96.py')
HEAVY = ('torch', 'numpy', 'mmengine', 'mmcv', 'mmdet', 'mmpose', 'kpt_plugin', 'weight_convert', 'logging')


def _mmpose_demo():
    import mmpose
    path = osp.join(osp.dirname(mmpose.__file__), '.mim', 'demo', 'image_demo.py')
    assert osp.isfile(path), 'the mmpose wheel ships demo/image_demo.py under .mim'
    return path


def test_interpreter_start_imports_nothing_heavy(fresh_python):
    out = fresh_python('import sys, _kpt_plugin_hook as h\n'
                       f'print(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})))\n'
                       'print(h._Trigger in sys.meta_path)')
    assert out.returncode == 0, out.stderr
    heavy, armed = out.stdout.split('\n')[:2]
    assert heavy == '[]' and armed == 'True', out.stdout


def test_hook_module_loads_only_itself(fresh_python):
    # the whole startup cost is one small stdlib-only module: nothing else gets imported (-S: no site-packages, so
    # an installed kpt_plugin.pth has not loaded it already)
    code = ('import os, sys\nbefore = set(sys.modules)\n'
            f'sys.path.insert(0, {REPO!r})\nimport _kpt_plugin_hook\n'
            'print(sorted(set(sys.modules) - before))')
    out = fresh_python(code, hook=False, path=(), flags=('-S',))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['_kpt_plugin_hook']"


def test_pth_line_never_fails_startup(fresh_python, pth_dir):
    # the hook module is not importable (uninstalled, broken path): startup says nothing and goes on
    out = fresh_python(f'import site; site.addsitedir({pth_dir!r}); print("ok")', hook=False, path=(), flags=('-S',),
                       env={'KPT_PLUGIN_NO_HOOK': ''})
    assert out.returncode == 0 and out.stdout.strip() == 'ok' and out.stderr == '', out.stderr


def test_broken_compat_warns_and_leaves_imports_alone(fresh_python, tmp_path):
    fake = tmp_path / 'fake' / 'kpt_plugin'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text('')
    (fake / '_compat.py').write_text('raise RuntimeError("boom")\n')
    out = fresh_python('import mmengine; print(mmengine.__version__)', path=(str(tmp_path / 'fake'), REPO))
    assert out.returncode == 0, out.stderr
    assert 'kpt_plugin startup hook failed' in out.stderr and 'boom' in out.stderr


@pytest.mark.parametrize('statement', ['import mmpose.models', 'from mmpose.apis import init_model',
                                       'import mmdet.apis', 'import mmdet.models'])
def test_upstream_entry_points_without_importing_kpt_plugin(fresh_python, statement):
    out = fresh_python(f'{statement}\nimport sys\nprint("kpt_plugin" in sys.modules)')
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == 'False', 'the fix must not need the kpt_plugin package'
    # the known upstream warnings are silenced for the user's own scripts too
    for noise in ('pkg_resources is deprecated', 'MultiScaleDeformableAttention'):
        assert noise not in out.stderr, out.stderr[-3000:]


def test_without_the_hook_mmpose_models_fails(fresh_python, mmcv_lite):
    # the control: what the hook fixes (mmcv-lite has no mmcv._ext)
    if not mmcv_lite:
        pytest.skip('full mmcv installed: mmpose.models imports on its own')
    out = fresh_python('import mmpose.models', hook=False)
    assert out.returncode != 0 and "No module named 'mmcv._ext'" in out.stderr


def test_mmpose_image_demo_runs_with_our_config(fresh_python, enhance_ckpt, shared_dir, tmp_path):
    """MMPose's unmodified demo/image_demo.py, our config and a converted checkpoint, on the CPU."""
    out_file = tmp_path / 'vis.jpg'
    argv = [_mmpose_demo(), osp.join(shared_dir, 'data', 'demo', 'demo_2.jpg'), CONFIG, enhance_ckpt('128x96'),
            '--out-file', str(out_file), '--device', 'cpu']
    code = f'import runpy, sys\nsys.argv = {argv!r}\nrunpy.run_path(sys.argv[0], run_name="__main__")'
    out = fresh_python(code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out_file.stat().st_size > 10_000
    assert 'Warning' not in out.stderr, out.stderr[-3000:]


def test_mmpose_inferencer_without_a_detector(fresh_python, enhance_ckpt, shared_dir, tmp_path):
    """``MMPoseInferencer`` with our config: ``det_model='whole_image'`` and ``None`` both use the whole image (our
    dataset type is not in MMPose's default-detector table)."""
    code = f'''
import json
from mmpose.apis import MMPoseInferencer
img = {osp.join(shared_dir, 'data', 'demo', 'demo_2.jpg')!r}
for det in ('whole_image', None):
    inferencer = MMPoseInferencer(pose2d={CONFIG!r}, pose2d_weights={enhance_ckpt('128x96')!r}, det_model=det,
                                  device='cpu')
    assert inferencer.inferencer.detector is None
    result = next(inferencer(img, pred_out_dir={str(tmp_path)!r}))
    people = result['predictions'][0]
    print(json.dumps([len(people), len(people[0]['keypoints']), people[0]['bbox'][0]]))
'''
    out = fresh_python(code)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith('[')]
    assert len(rows) == 2
    for n, k, bbox in rows:
        assert n == 1 and k == 17 and bbox[:2] == [0.0, 0.0] and bbox[2] > 800
    assert glob.glob(str(tmp_path / '*.json'))


def test_installed_environment_has_the_pth():
    """The environment running the tests (install.sh's .venv) got ``kpt_plugin.pth`` beside the package."""
    import importlib.metadata as md
    try:
        dist = md.distribution('kpt_plugin')
    except md.PackageNotFoundError:
        pytest.skip('kpt_plugin is not installed in this interpreter (tests run from the source tree only)')
    site_dir = str(dist.locate_file(''))
    assert osp.isfile(osp.join(site_dir, 'kpt_plugin.pth')), f'kpt_plugin.pth missing from {site_dir}'
    assert any(osp.samefile(site_dir, p) for p in sys.path if osp.isdir(p)), 'not a site dir of this interpreter'
    assert not os.environ.get('KPT_PLUGIN_NO_HOOK')


def test_help_stays_light_with_the_hook_armed_and_lists_only_real_commands(fresh_python, capsys):
    """``kpt-plugin --help`` at interpreter start, hook armed: no torch / OpenMMLab import (the issue: 6.7 s), and
    every command it lists exists and answers ``--help``."""
    import json
    import re
    code = ('import contextlib, io, json, sys, kpt_plugin_cli\nbuf = io.StringIO()\n'
            'with contextlib.redirect_stdout(buf):\n    try:\n        kpt_plugin_cli.main(["--help"])\n'
            '    except SystemExit as e:\n        code = e.code\n'
            'heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "mmpose", "mmengine", "mmcv", "mmdet", '
            '"kpt_plugin", "numpy", "cv2"})\n'
            'print(json.dumps(dict(code=code, heavy=heavy, hook="_kpt_plugin_hook" in sys.modules, '
            'help=buf.getvalue())))')
    out = fresh_python(code)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res['code'] == 0 and res['hook'] and res['heavy'] == [], res
    import kpt_plugin_cli
    listed = re.findall(r'^    (\S+)', res['help'], flags=re.M)
    assert listed == list(kpt_plugin_cli.SUBCOMMANDS)
    for name in listed:
        with pytest.raises(SystemExit) as e:
            kpt_plugin_cli.main([name, '--help'])
        assert e.value.code == 0, name
        assert capsys.readouterr().out.startswith(f'usage: kpt-plugin {name}')
