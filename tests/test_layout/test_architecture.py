"""The layer table in docs/architecture.md is the law: every module is listed once, and imports go only downwards
(to a lower layer, or within a layer without cycles). Function-level imports count too."""
import ast
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOC = osp.join(ROOT, 'docs', 'architecture.md')
SCANNED = ('kpt_plugin', 'weight_convert', 'tools', 'benchmarks', 'kpt_plugin_cli.py', '_kpt_plugin_hook.py')
ROW = re.compile(r'^\|\s*`([\w.]+)`\s*\|\s*(\d+)\s*\|')


def layer_table():
    """``{module or package prefix: layer}`` from the doc's table rows ``| `name` | layer | what |``."""
    with open(DOC, encoding='utf-8') as f:
        rows = [ROW.match(line) for line in f]
    table = {}
    for m in filter(None, rows):
        assert m.group(1) not in table, f'{m.group(1)} is listed twice in docs/architecture.md'
        table[m.group(1)] = int(m.group(2))
    return table


def project_modules():
    """``{dotted module name: path}`` of every project .py file (tests excluded)."""
    mods = {}
    for entry in SCANNED:
        path = osp.join(ROOT, entry)
        if entry.endswith('.py'):
            mods[entry[:-3]] = path
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(('.', '__'))]
            for f in files:
                if f.endswith('.py'):
                    rel = osp.relpath(osp.join(folder, f), ROOT)[:-3].replace(os.sep, '.')
                    mods[rel[:-len('.__init__')] if rel.endswith('.__init__') else rel] = osp.join(folder, f)
    return mods


def imports_of(name, path, known):
    """Project modules that ``name`` imports (absolute or relative, at any depth of the file)."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')
                base = '.'.join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f'{base}.{a.name}' for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition('.')[0]
            if t and t != name:
                found.add(t)
    return found


#: rows that cover only their own ``__init__`` (their submodules need rows of their own)
ROOTS = ('kpt_plugin', 'weight_convert')


def layer_of(name, table):
    first = name
    while name:
        if name in table and (name == first or name not in ROOTS):
            return table[name]
        name = name.rpartition('.')[0]
    return None


def test_every_module_has_a_layer_and_imports_only_downwards():
    table = layer_table()
    mods = project_modules()
    assert len(mods) > 40 and len(table) > 20
    unlisted = sorted(m for m in mods if layer_of(m, table) is None)
    assert not unlisted, f'modules missing from the layer table of docs/architecture.md: {unlisted}'
    stale = sorted(k for k in table if k not in mods and not any(m.startswith(k + '.') for m in mods))
    assert not stale, f'docs/architecture.md lists modules that do not exist: {stale}'
    upward, graph = [], {}
    for name, path in mods.items():
        graph[name] = imports_of(name, path, mods)
        for dep in graph[name]:
            # a package's __init__ runs before any of its submodules: importing a parent package is not upward
            if name.startswith(dep + '.'):
                continue
            if layer_of(dep, table) > layer_of(name, table):
                upward.append(f'{name} (layer {layer_of(name, table)}) -> {dep} (layer {layer_of(dep, table)})')
    assert not upward, 'upward imports:\n' + '\n'.join(sorted(upward))
    # no cycles (parents excluded as above): depth-first search with colours
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(graph[n]):
            if n.startswith(d + '.'):
                continue
            if state.get(d) == 1:
                raise AssertionError('import cycle: ' + ' -> '.join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


def test_a_cycle_and_an_upward_import_are_caught(tmp_path):
    """The checker itself: a synthetic two-module cycle and an upward import are both reported."""
    (tmp_path / 'a.py').write_text('import b\n')
    (tmp_path / 'b.py').write_text('def f():\n    from a import x\n')
    mods = {'a': str(tmp_path / 'a.py'), 'b': str(tmp_path / 'b.py')}
    assert imports_of('a', mods['a'], mods) == {'b'}
    assert imports_of('b', mods['b'], mods) == {'a'}
    assert layer_of('kpt_plugin.inference.runtime.torch', {'kpt_plugin.inference': 6}) == 6
    assert layer_of('kpt_plugin.newpkg.mod', {'kpt_plugin': 4}) is None  # a new package needs its own row


def test_import_weight_convert_stays_below_kpt_plugin():
    """``import weight_convert`` (and its converter) loads no MMPose stack and none of kpt_plugin's registration."""
    code = ('import sys, weight_convert, weight_convert.convert, weight_convert.cli; '
            'bad = sorted({m.split(".")[0] for m in sys.modules} & {"mmpose", "mmengine", "mmcv", "mmdet", '
            '"kpt_plugin"}); print(",".join(bad))')
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '', f'import weight_convert pulled in: {out.stdout.strip()}'


@pytest.mark.parametrize('argv', [['--help'], ['--version'], ['convert', '--help']])
def test_light_cli_commands_import_no_torch(argv):
    """``kpt-plugin --help`` / ``--version`` / ``convert --help`` import neither torch nor MMPose (issue: 6.7 s)."""
    code = ('import sys, kpt_plugin_cli\ntry:\n    kpt_plugin_cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n'
            'bad = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "mmpose", "mmengine", "kpt_plugin"})\n'
            'print("IMPORTED:" + ",".join(bad))')
    out = subprocess.run([sys.executable, '-c', code] + argv, cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith('IMPORTED:'), out.stdout[-300:]


def _last_line(code):
    """The last line ``code`` prints in a fresh interpreter started in the repo root (which must exit 0)."""
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_predict_with_a_released_model_imports_no_openmmlab(enhance_ckpt, shared_dir):
    """``import kpt_plugin`` and a released model's ``create_model(...).predict`` load no MMPose stack (~3 s of a
    fresh process); MMPose's API imported afterwards still finds our modules (the registries import them)."""
    image = osp.join(shared_dir, 'data', 'coco_val2017_mini', '000000197388.jpg')
    code = ('import sys\nOMM = {"mmpose", "mmengine", "mmcv", "mmdet"}\n'
            'def loaded():\n    return sorted({m.split(".")[0] for m in sys.modules} & OMM)\n'
            'import kpt_plugin\nassert not loaded(), loaded()\n'
            f'model = kpt_plugin.create_model("PP-TinyPose_128x96", model_dir={enhance_ckpt("128x96")!r})\n'
            f'res = list(model.predict({image!r}, bboxes=[[100, 50, 200, 300]]))\n'
            'assert res[0]["kpts"] and not loaded(), loaded()\n'
            'from mmpose.apis import init_model\nfrom kpt_plugin.zoo import get_config_path\n'
            'net = init_model(get_config_path("PP-TinyPose_128x96"), None, device="cpu")\n'
            'from mmdet.registry import MODELS\n'
            'print("OK", type(net.backbone).__name__, MODELS.get("PicoDet").__name__)\n')
    assert _last_line(code) == 'OK PPLiteHRNet PicoDet'


def test_pipeline_imports_no_mmpose_or_mmdet(enhance_ckpt, shared_dir):
    """The human-keypoint pipeline (PicoDet -> TinyPose) runs on plain modules too: mmengine reads the detector's
    config, nothing imports MMPose, mmdet or mmcv."""
    image = osp.join(shared_dir, 'data', 'coco_val2017_mini', '000000197388.jpg')
    det = osp.join(shared_dir, 'fixtures', 'picodet', 'picodet_s_320_lcnet_pedestrian_folded.pdparams')
    code = ('import sys\nimport kpt_plugin\n'
            f'pipe = kpt_plugin.create_pipeline("human_keypoint_detection", det_model_dir={det!r}, '
            f'kpt_model_dir={enhance_ckpt("128x96")!r})\n'
            f'res = list(pipe.predict({image!r}))\n'
            'bad = sorted({m.split(".")[0] for m in sys.modules} & {"mmpose", "mmdet", "mmcv"})\n'
            'print("OK", len(res[0]["boxes"]) > 0, bad)\n')
    assert _last_line(code) == 'OK True []'
