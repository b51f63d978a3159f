"""`kpt-plugin check-dataset`: good datasets pass, each defect is reported, --split is safe and idempotent."""
import importlib.util
import json
import os
import os.path as osp
import shutil

import pytest

from kpt_plugin_cli import main as cli_main
from kpt_plugin.cli.check_dataset import check_dataset, split_dataset

_spec = importlib.util.spec_from_file_location(
    'kpt_coco_cases', osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_datasets', 'coco_cases.py'))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

PADDLEX_FIELDS = ('done_flag', 'check_pass', 'attributes', 'analysis', 'dataset_path', 'show_type', 'dataset_type')


def _load_mini(shared_dir):
    with open(osp.join(shared_dir, 'data', 'coco_val2017_mini', 'test_coco.json')) as f:
        return json.load(f)


def _subset(coco, image_ids):
    return dict(coco, images=[i for i in coco['images'] if i['id'] in image_ids],
                annotations=[a for a in coco['annotations'] if a['image_id'] in image_ids])


def make_paddlex(shared_dir, root, edit=None):
    """coco_val2017_mini in PaddleX layout: 3 train images, 1 val image (images are symlinks)."""
    coco = _load_mini(shared_dir)
    os.makedirs(osp.join(root, 'images'))
    os.makedirs(osp.join(root, 'annotations'))
    for img in coco['images']:
        os.symlink(osp.join(shared_dir, 'data', 'coco_val2017_mini', img['file_name']),
                   osp.join(root, 'images', img['file_name']))
    ids = [i['id'] for i in coco['images']]
    splits = {'train': _subset(coco, ids[:3]), 'val': _subset(coco, ids[3:])}
    if edit is not None:
        edit(splits, root)
    for split, data in splits.items():
        if data is None:
            continue
        path = osp.join(root, 'annotations', f'person_keypoints_{split}2017.json')
        with open(path, 'w') as f:
            f.write(data if isinstance(data, str) else json.dumps(data))
    return root


def test_good_paddlex_dataset_passes(shared_dir, tmp_path, capsys):
    root = make_paddlex(shared_dir, str(tmp_path / 'ds'))
    out = str(tmp_path / 'out')
    assert cli_main(['check-dataset', root, '--out', out]) == 0
    assert 'Check dataset passed !' in capsys.readouterr().out
    with open(osp.join(out, 'check_dataset_result.json')) as f:
        res = json.load(f)
    assert all(k in res for k in PADDLEX_FIELDS)
    assert res['check_pass'] is True and res['done_flag'] is True
    attrs = res['attributes']
    assert (attrs['num_classes'], attrs['train_samples'], attrs['val_samples']) == (1, 3, 1)
    assert len(attrs['train_sample_paths']) == 3 and len(attrs['val_sample_paths']) == 1
    for rel in attrs['train_sample_paths'] + attrs['val_sample_paths'] + [res['analysis']['histogram']]:
        path = osp.join(out, rel)
        assert osp.getsize(path) > 1000, rel
    with open(osp.join(out, res['analysis']['histogram']), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert res['dataset_type'] == 'KeypointTopDownCocoDetDataset' and res['show_type'] == 'image'


def test_plain_coco_layout_and_single_json(shared_dir, tmp_path):
    coco = _load_mini(shared_dir)
    root = tmp_path / 'coco'
    for split, ids in (('train', [785, 40083]), ('val', [196141, 197388])):
        (root / f'{split}2017').mkdir(parents=True)
        for img in coco['images']:
            if img['id'] in ids:
                os.symlink(osp.join(shared_dir, 'data', 'coco_val2017_mini', img['file_name']),
                           root / f'{split}2017' / img['file_name'])
        (root / 'annotations').mkdir(exist_ok=True)
        (root / 'annotations' / f'person_keypoints_{split}2017.json').write_text(json.dumps(_subset(coco, ids)))
    res = check_dataset(str(root), str(tmp_path / 'out'), log=lambda m: None)
    assert res['check_pass'], res['problems']
    assert res['attributes']['train_samples'] == 2 and res['attributes']['val_samples'] == 2
    single = check_dataset(osp.join(shared_dir, 'data', 'coco_val2017_mini', 'test_coco.json'),
                           str(tmp_path / 'out2'), log=lambda m: None)
    assert single['check_pass'] and single['attributes']['val_samples'] == 4


def _ann(splits, split, i=0):
    return splits[split]['annotations'][i]


DEFECTS = {
    'missing image file': (lambda s, r: os.remove(osp.join(r, 'images', s['val']['images'][0]['file_name'])),
                           'does not exist'),
    'undecodable image': (lambda s, r: (os.remove(osp.join(r, 'images', s['val']['images'][0]['file_name'])),
                                        open(osp.join(r, 'images', s['val']['images'][0]['file_name']), 'wb')
                                        .write(b'\xff\xd8 not a jpeg')), 'cannot be decoded'),
    'image size mismatch': (lambda s, r: s['train']['images'][0].update(width=641), 'but the json says 641x425'),
    'category without keypoint names': (lambda s, r: s['train']['categories'][0].pop('keypoints'),
                                        'has no "keypoints" name list'),
    'unknown category id': (lambda s, r: _ann(s, 'train').update(category_id=7), 'category_id 7 is not in'),
    'keypoint array length': (lambda s, r: _ann(s, 'train').update(keypoints=_ann(s, 'train')['keypoints'][:-3]),
                              '48 keypoint values, expected 3 x 17 = 51'),
    'visibility value': (lambda s, r: _ann(s, 'train')['keypoints'].__setitem__(2, 3), 'visibility values [3.0]'),
    'duplicate annotation id': (lambda s, r: _ann(s, 'train', 1).update(id=_ann(s, 'train', 0)['id']),
                                'duplicate annotation id'),
    'duplicate image id': (lambda s, r: s['train']['images'][1].update(id=s['train']['images'][0]['id']),
                           'duplicate image id'),
    'annotation of a missing image': (lambda s, r: _ann(s, 'val').update(image_id=123456789),
                                      'no image with this id'),
    'zero-width bbox': (lambda s, r: _ann(s, 'train')['bbox'].__setitem__(2, 0), 'non-positive width/height'),
    'bbox outside the image': (lambda s, r: _ann(s, 'train')['bbox'].__setitem__(0, 900.0), 'lies outside the'),
    'keypoint outside the image': (lambda s, r: _ann(s, 'train')['keypoints'].__setitem__(15, 5000.0),
                                   'labelled keypoints lie outside'),
    'malformed json': (lambda s, r: s.__setitem__('val', '{"images": [}'), 'is not valid JSON'),
    'missing val annotations': (lambda s, r: s.__setitem__('val', None), 'person_keypoints_val2017.json is missing'),
    'images key missing': (lambda s, r: s['val'].pop('images'), '"images" is missing or not a list'),
}


@pytest.mark.parametrize('defect', sorted(DEFECTS))
def test_each_defect_is_reported(defect, shared_dir, tmp_path):
    edit, expected = DEFECTS[defect]
    root = make_paddlex(shared_dir, str(tmp_path / 'ds'), edit=lambda s, r: edit(s, r))
    lines = []
    res = check_dataset(root, str(tmp_path / 'out'), log=lines.append)
    assert res['check_pass'] is False
    assert any(expected in p for p in res['problems']), res['problems']
    assert any(expected in line for line in lines) and 'Check dataset passed !' not in lines
    assert res['err_type'] == 'CheckFailedError' and expected in res['err_msg']
    with open(osp.join(str(tmp_path / 'out'), 'check_dataset_result.json')) as f:
        assert json.load(f)['check_pass'] is False


def test_all_problems_are_listed_together_and_cli_exit_code(shared_dir, tmp_path, capsys):
    def edit(s, r):
        for name in ('visibility value', 'duplicate image id', 'zero-width bbox'):
            DEFECTS[name][0](s, r)
    root = make_paddlex(shared_dir, str(tmp_path / 'ds'), edit=edit)
    assert cli_main(['check-dataset', root, '--out', str(tmp_path / 'out')]) == 1
    out = capsys.readouterr().out
    for name in ('visibility value', 'duplicate image id', 'zero-width bbox'):
        assert DEFECTS[name][1] in out


def test_warnings_do_not_fail(shared_dir, tmp_path):
    def edit(s, r):
        s['val']['annotations'] = []  # an image without people
        s['val']['images'].append(dict(s['train']['images'][0]))  # and an image in both splits
    root = make_paddlex(shared_dir, str(tmp_path / 'ds'), edit=edit)
    res = check_dataset(root, str(tmp_path / 'out'), log=lambda m: None)
    assert any('without people' in w for w in res['warnings'])
    assert any('in both train and val' in w for w in res['warnings'])
    assert any('no usable person annotation' in p for p in res['problems'])  # val has no person at all


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def test_split_keeps_bak_is_idempotent_and_complete(shared_dir, tmp_path, capsys):
    root = make_paddlex(shared_dir, str(tmp_path / 'ds'))
    ann = osp.join(root, 'annotations')
    originals = {s: _read(osp.join(ann, f'person_keypoints_{s}2017.json')) for s in ('train', 'val')}
    assert cli_main(['check-dataset', root, '--split', '50', '50', '--out', str(tmp_path / 'o1')]) == 0
    assert 'Check dataset passed !' in capsys.readouterr().out
    first = {s: _read(osp.join(ann, f'person_keypoints_{s}2017.json')) for s in ('train', 'val')}
    for s in ('train', 'val'):
        assert _read(osp.join(ann, f'person_keypoints_{s}2017.json.bak')) == originals[s]
    tr, va = (json.loads(first[s]) for s in ('train', 'val'))
    names = [i['file_name'] for i in tr['images']] + [i['file_name'] for i in va['images']]
    assert len(tr['images']) == 2 and len(va['images']) == 2 and len(set(names)) == 4
    assert len(tr['annotations']) + len(va['annotations']) == 14
    assert all(a['image_id'] in {i['id'] for i in tr['images']} for a in tr['annotations'])
    assert first['train'] != originals['train']

    # again, same arguments: byte-identical files, backups untouched
    split_dataset(root, 50, 50)
    for s in ('train', 'val'):
        assert _read(osp.join(ann, f'person_keypoints_{s}2017.json')) == first[s]
        assert _read(osp.join(ann, f'person_keypoints_{s}2017.json.bak')) == originals[s]
    assert not [f for f in os.listdir(ann) if f.startswith('.')]  # no temp files left behind
    # another ratio re-splits the same pool
    split_dataset(root, 75, 25)
    tr = json.loads(_read(osp.join(ann, 'person_keypoints_train2017.json')))
    assert len(tr['images']) == 3


@pytest.mark.parametrize('args,msg', [(['60', '30'], 'summing to 100'), (['100', '0'], 'summing to 100')])
def test_bad_split_arguments(args, msg, shared_dir, tmp_path, capsys):
    root = make_paddlex(shared_dir, str(tmp_path / 'ds'))
    before = _read(osp.join(root, 'annotations', 'person_keypoints_train2017.json'))
    assert cli_main(['check-dataset', root, '--split', *args, '--out', str(tmp_path / 'o')]) == 2
    assert msg in capsys.readouterr().err
    assert _read(osp.join(root, 'annotations', 'person_keypoints_train2017.json')) == before
    assert not osp.exists(osp.join(root, 'annotations', 'person_keypoints_train2017.json.bak'))


def test_split_refuses_coco_layout_and_broken_json(shared_dir, tmp_path, capsys):
    root = make_paddlex(shared_dir, str(tmp_path / 'ds'), edit=DEFECTS['malformed json'][0])
    assert cli_main(['check-dataset', root, '--split', '80', '20']) == 2
    assert 'cannot split' in capsys.readouterr().err
    coco = tmp_path / 'coco'
    shutil.copytree(root, coco, symlinks=True)
    os.rename(coco / 'images', coco / 'val2017')
    assert cli_main(['check-dataset', str(coco), '--split', '80', '20']) == 2
    assert 'needs the PaddleX layout' in capsys.readouterr().err


def test_missing_dataset_is_one_clear_error(tmp_path, capsys):
    assert cli_main(['check-dataset', str(tmp_path / 'nope')]) == 2
    assert 'no such directory' in capsys.readouterr().err
    (tmp_path / 'empty').mkdir()
    assert cli_main(['check-dataset', str(tmp_path / 'empty')]) == 2
    assert 'no annotation file' in capsys.readouterr().err


def test_no_decode_only_checks_existence(shared_dir, tmp_path):
    root = make_paddlex(shared_dir, str(tmp_path / 'ds'), edit=DEFECTS['undecodable image'][0])
    assert check_dataset(root, str(tmp_path / 'o1'), decode=False, log=lambda m: None)['check_pass'] is True
    assert check_dataset(root, str(tmp_path / 'o2'), decode=True, log=lambda m: None)['check_pass'] is False


@pytest.mark.parametrize('name', sorted(cases.CASES))
def test_bad_annotation_table(name, shared_dir, tmp_path):
    """The dataset's and tools/test.py's cases (one validator): each fails the check with the same message."""
    for img in _load_mini(shared_dir)['images']:
        os.symlink(osp.join(shared_dir, *cases.MINI, img['file_name']), tmp_path / img['file_name'])
    path = cases.write_case(shared_dir, name, tmp_path / 'a.json')
    res = check_dataset(path, str(tmp_path / 'out'), decode=False, log=lambda m: None)
    assert res['check_pass'] is False
    assert any(p.startswith(f'val: {path}: ') and all(f in p for f in cases.CASES[name][1])
               for p in res['problems']), res['problems']
