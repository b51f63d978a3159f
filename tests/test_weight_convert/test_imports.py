"""``import weight_convert`` stays cheap and below kpt_plugin; the public names resolve."""
import subprocess
import sys

from ._helpers import REPO

_HEAVY = {'mmpose', 'mmengine', 'mmcv', 'mmdet', 'kpt_plugin', 'torch'}


def _modules_after(code):
    code += '; import sys; print(",".join(sorted({m.split(".")[0] for m in sys.modules})))'
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.strip().split(','))


def test_converter_imports_no_mmpose_nor_kpt_plugin():
    loaded = _modules_after('import weight_convert; import weight_convert.convert; import weight_convert.cli')
    assert not loaded & _HEAVY


def test_bare_import_loads_nothing():
    code = ('import sys, weight_convert; assert [m for m in sys.modules if m.startswith("weight_convert.")] == [], '
            'sorted(m for m in sys.modules if m.startswith("weight_convert."))')
    assert 'numpy' not in _modules_after(code)


def test_public_names():
    import weight_convert
    from weight_convert.convert import CONVERTER_VERSION, convert, export_pdparams
    from weight_convert.formats import detect, read_any
    from weight_convert.pdparams import read_pdparams
    assert callable(weight_convert.convert) and weight_convert.convert.convert is convert
    assert weight_convert.export_pdparams is export_pdparams and weight_convert.CONVERTER_VERSION == CONVERTER_VERSION
    assert weight_convert.detect is detect and weight_convert.read_any is read_any
    assert weight_convert.read_pdparams is read_pdparams
    assert issubclass(weight_convert.WeightsError, weight_convert.KptError)
    assert set(weight_convert.__all__) <= set(dir(weight_convert))
