"""tools/test.py (what ``mim test kpt_plugin`` runs): progress, timing line, metrics table + json, bad inputs."""
import importlib.util
import json
import os.path as osp

import pytest

import kpt_plugin  # noqa: F401
from kpt_plugin.zoo import get_config_path

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_spec = importlib.util.spec_from_file_location('kpt_coco_cases', osp.join(REPO, 'tests', 'test_datasets',
                                                                          'coco_cases.py'))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)


def _load_script():
    spec = importlib.util.spec_from_file_location('kpt_test_script', osp.join(REPO, 'tools', 'test.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def ckpt(enhance_ckpt):
    return enhance_ckpt('128x96')


def _args(shared_dir, ckpt, tmp_path, *extra, root=None, ann='test_coco.json'):
    root = root or osp.join(shared_dir, 'data', 'coco_val2017_mini')
    return [get_config_path('PP-TinyPose_128x96'), ckpt, '--work-dir', str(tmp_path), *extra, '--cfg-options',
            f'test_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.ann_file={ann}',
            'test_dataloader.dataset.data_prefix.img=', f'test_evaluator.ann_file={osp.join(root, ann)}',
            f'test_evaluator.outfile_prefix={tmp_path}/res', 'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False']


def test_runs_and_reports(shared_dir, ckpt, tmp_path, capsys):
    script = _load_script()
    assert script.main(_args(shared_dir, ckpt, tmp_path, '--no-flip')) == 0
    out = capsys.readouterr().out
    assert '12/12' in out  # progress bar
    assert '| AP | AP .5 | AP .75 | AP (M) | AP (L) | AR |' in out
    with open(tmp_path / 'metrics.json') as f:
        report = json.load(f)
    assert report['flip_test'] is False and report['num_instances'] == 12 and report['num_images'] == 4
    assert report['seconds_per_image'] > report['seconds_per_instance'] > 0
    with open(osp.join(shared_dir, 'fixtures', 'enhance', 'results', '128x96_coco_noflip.txt')) as f:
        golden_row = f.read().strip().splitlines()[-1]
    assert f"| {report['metrics']['coco/AP']:.3f} |" in golden_row
    assert osp.isfile(tmp_path / 'res.keypoints.json')
    with open(next(tmp_path.glob('*/*.log'))) as f:
        assert 'ms per image' in f.read()


def test_missing_checkpoint(shared_dir, tmp_path, capsys):
    assert _load_script().main(_args(shared_dir, str(tmp_path / 'nope.pth'), tmp_path)) == 2
    assert 'checkpoint' in capsys.readouterr().err


def test_malformed_annotation_json(shared_dir, ckpt, tmp_path, capsys):
    (tmp_path / 'bad.json').write_text('{"images": [')
    assert _load_script().main(_args(shared_dir, ckpt, tmp_path, root=str(tmp_path), ann='bad.json')) == 2
    assert 'not valid JSON' in capsys.readouterr().err


def test_missing_image_file(shared_dir, ckpt, tmp_path, capsys):
    with open(osp.join(shared_dir, 'data', 'coco_val2017_mini', 'test_coco.json')) as f:
        ann = json.load(f)
    (tmp_path / 'a.json').write_text(json.dumps(ann))  # images are not beside this copy
    assert _load_script().main(_args(shared_dir, ckpt, tmp_path, root=str(tmp_path), ann='a.json')) == 2
    err = capsys.readouterr().err
    assert '000000000785.jpg' in err and 'missing_images' in err


def test_undecodable_image_is_left_out(shared_dir, ckpt, tmp_path, capsys):
    src = osp.join(shared_dir, 'data', 'coco_val2017_mini')
    with open(osp.join(src, 'test_coco.json')) as f:
        ann = json.load(f)
    for img in ann['images'][1:]:
        (tmp_path / img['file_name']).symlink_to(osp.join(src, img['file_name']))
    (tmp_path / ann['images'][0]['file_name']).write_bytes(b'\xff\xd8 truncated')
    (tmp_path / 'a.json').write_text(json.dumps(ann))
    assert _load_script().main(_args(shared_dir, ckpt, tmp_path, root=str(tmp_path), ann='a.json')) == 0
    with open(tmp_path / 'res.keypoints.json') as f:
        kept = {r['image_id'] for r in json.load(f)}
    assert kept == {img['id'] for img in ann['images'][1:]}
    with open(tmp_path / 'metrics.json') as f:
        assert 0 < json.load(f)['metrics']['coco/AP'] < 1


def _dummy_ckpt(tmp_path):
    # the data check runs before the Runner, so a bad file never reaches the checkpoint
    (tmp_path / 'never_loaded.pth').write_bytes(b'')
    return str(tmp_path / 'never_loaded.pth')


def _one_line_error(capsys, prefix, fragments):
    out, err = capsys.readouterr()
    assert out == ''  # no environment / config dump
    assert err.count('\n') == 1 and err.startswith(prefix), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.mark.parametrize('name', sorted(cases.CASES))
def test_bad_annotation_is_one_line_before_the_runner(name, shared_dir, tmp_path, capsys):
    path = cases.write_case(shared_dir, name, tmp_path / 'a.json')
    args = _args(shared_dir, _dummy_ckpt(tmp_path), tmp_path, root=str(tmp_path), ann='a.json')
    assert _load_script().main(args) == 2
    _one_line_error(capsys, f'error: ann_file {path}: ', cases.CASES[name][1])


@pytest.mark.parametrize('name', sorted(cases.DET_CASES))
def test_bad_bbox_file_is_one_line_before_the_runner(name, shared_dir, tmp_path, capsys):
    path = cases.write_det_case(shared_dir, name, tmp_path / 'dets.json')
    args = _args(shared_dir, _dummy_ckpt(tmp_path), tmp_path) + [f'test_dataloader.dataset.bbox_file={path}']
    assert _load_script().main(args) == 2
    _one_line_error(capsys, f'error: bbox_file {path}: ', cases.DET_CASES[name][1])


def test_data_check_passes_the_unmodified_files(shared_dir, tmp_path):
    """Positive control of the tables above (ground-truth and detector boxes); the full run is tested above."""
    script = _load_script()
    path = cases.write_case(shared_dir, None, tmp_path / 'a.json')
    args = _args(shared_dir, _dummy_ckpt(tmp_path), tmp_path, root=str(tmp_path), ann='a.json')
    assert script.check_data(script.build_cfg(script.parse_args(args))) is None
    dets = osp.join(shared_dir, *cases.MINI, 'test_coco_det_AP_H_56.json')
    cfg = script.build_cfg(script.parse_args(args + [f'test_dataloader.dataset.bbox_file={dets}']))
    assert script.check_data(cfg) is None
    assert [ds['ann_file'] for ds in script._datasets(cfg.test_dataloader.dataset)] == [osp.basename(path)]


def test_missing_annotation_file_is_one_line(shared_dir, tmp_path, capsys):
    args = _args(shared_dir, _dummy_ckpt(tmp_path), tmp_path, root=str(tmp_path), ann='nope.json')
    assert _load_script().main(args) == 2
    _one_line_error(capsys, f'error: ann_file {tmp_path}/nope.json: does not exist', [])
