"""``kpt-plugin check-dataset``: PaddleX's ``check_dataset`` workflow for COCO keypoint datasets.

Layouts (DIR):

* PaddleX: ``DIR/images/`` + ``DIR/annotations/person_keypoints_{train,val}2017.json`` (PaddleX 3's
  ``instance_{train,val}.json`` names are accepted too);
* COCO: ``DIR/annotations/person_keypoints_{train,val}2017.json`` + ``DIR/{train,val}2017/``;
* a single annotation ``.json`` (images next to it), checked as the ``val`` split.

Every problem is reported (one line each, naming the split, the record and what to fix), then
``Check dataset passed !`` or a failure line. ``OUT/check_dataset_result.json`` carries PaddleX's fields;
``OUT/check_dataset/histogram.png`` and ``OUT/check_dataset/demo_img/`` hold the analysis and sample images
with the skeleton drawn. ``--split TRAIN VAL`` re-splits train/val by image (PaddleX layout), keeping the
first originals as ``*.json.bak``; it is deterministic, so running it again changes nothing.
"""
import json
import math
import os
import os.path as osp
import random
from collections import Counter

import numpy as np

from ..fileio import atomic_output

SPLITS = ('train', 'val')
ANN_NAMES = ('person_keypoints_{}2017.json', 'instance_{}.json')
DATASET_TYPE = 'KeypointTopDownCocoDetDataset'  # what PaddleX reports for keypoint datasets
MAX_SAMPLES = 10
BOX_TOLERANCE = 1.0  # px a box / keypoint may exceed the image (COCO rounding)


class CheckError(ValueError):
    """The dataset cannot be checked or split at all (no annotations, bad --split arguments)."""


# ---------------------------------------------------------------- layout
def find_layout(root):
    """Return ``(layout, {split: (ann_file, img_dir)})``; splits whose json is missing are left out."""
    if osp.isfile(root) and root.endswith('.json'):
        return 'json', {'val': (root, osp.dirname(osp.abspath(root)))}
    if not osp.isdir(root):
        raise CheckError(f'{root}: no such directory (expected a dataset folder or an annotation .json)')
    ann_dir = osp.join(root, 'annotations')
    found = {}
    for pattern in ANN_NAMES:
        for split in SPLITS:
            path = osp.join(ann_dir, pattern.format(split))
            if split not in found and osp.isfile(path):
                found[split] = path
    if not found:
        raise CheckError(f'{root}: no annotation file; expected {root}/annotations/person_keypoints_'
                         '{train,val}2017.json with the images in images/ (PaddleX) or {train,val}2017/ (COCO)')
    if osp.isdir(osp.join(root, 'images')):
        return 'paddlex', {s: (p, osp.join(root, 'images')) for s, p in found.items()}
    return 'coco', {s: (p, osp.join(root, f'{s}2017')) for s, p in found.items()}


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------- checking one split
class SplitReport:
    """Findings and statistics for one annotation file."""

    def __init__(self, split, ann_file, img_dir):
        self.split, self.ann_file, self.img_dir = split, ann_file, img_dir
        self.problems, self.warnings = [], []
        self.num_images = 0
        self.num_keypoints = None
        self.keypoint_names = []
        self.skeleton = []
        self.num_classes = 0
        self.vis_counts = None  # (K, 3): per joint, visibility 0 / 1 / 2
        self.instances_per_image = []
        self.images = []  # valid image records
        self.anns_by_image = {}
        self.file_names = set()

    def problem(self, msg):
        self.problems.append(f'{self.split}: {msg}')

    def warn(self, msg):
        self.warnings.append(f'{self.split}: {msg}')


def _load_json(report):
    try:
        with open(report.ann_file, encoding='utf-8') as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        report.problem(f'{report.ann_file} is not valid JSON ({e}); re-export it')
        return None
    except (OSError, UnicodeDecodeError) as e:
        report.problem(f'{report.ann_file} cannot be read ({e})')
        return None
    if not isinstance(data, dict):
        report.problem(f'{report.ann_file}: expected a COCO JSON object with "images", "annotations", '
                       '"categories"')
        return None
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(data.get(key), list):
            report.problem(f'{report.ann_file}: "{key}" is missing or not a list')
    if any(not isinstance(data.get(k), list) for k in ('images', 'annotations', 'categories')):
        return None
    return data


def _check_categories(report, categories):
    cats = {}
    sizes = set()
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or 'id' not in cat:
            report.problem(f'categories[{i}] has no "id"')
            continue
        if cat['id'] in cats:
            report.problem(f'categories[{i}]: duplicate category id {cat["id"]}')
        cats[cat['id']] = cat
        kpts = cat.get('keypoints')
        if not isinstance(kpts, list) or not kpts or not all(isinstance(n, str) for n in kpts):
            report.problem(f'category {cat["id"]} ({cat.get("name")!r}) has no "keypoints" name list: a keypoint '
                           'dataset needs e.g. "keypoints": ["nose", "left_eye", ...]')
            continue
        sizes.add(len(kpts))
        if report.num_keypoints is None:
            report.num_keypoints, report.keypoint_names = len(kpts), kpts
            for j, link in enumerate(cat.get('skeleton') or []):
                if (isinstance(link, list) and len(link) == 2 and all(isinstance(v, int) for v in link)
                        and all(1 <= v <= len(kpts) for v in link)):
                    report.skeleton.append((link[0] - 1, link[1] - 1))
                else:
                    report.problem(f'category {cat["id"]}: skeleton[{j}] = {link!r} is not a pair of 1-based '
                                   f'keypoint indices in 1..{len(kpts)}')
    if not categories:
        report.problem('"categories" is empty: add the person category with its "keypoints" names')
    if len(sizes) > 1:
        report.problem(f'categories disagree on the number of keypoints: {sorted(sizes)}')
    report.num_classes = len(cats)
    return cats


def _check_images(report, images, decode):
    import cv2
    ids, names = Counter(), Counter()
    for i, img in enumerate(images):
        if not isinstance(img, dict):
            report.problem(f'images[{i}] is not an object')
            continue
        missing = [k for k in ('id', 'file_name', 'width', 'height') if k not in img]
        if missing:
            report.problem(f'images[{i}] lacks {missing}')
            continue
        ids[img['id']] += 1
        names[img['file_name']] += 1
        if ids[img['id']] == 2:
            report.problem(f'duplicate image id {img["id"]} (images[{i}], {img["file_name"]}): ids must be unique')
        if names[img['file_name']] == 2:
            report.problem(f'image {img["file_name"]} is listed twice (images[{i}])')
        if ids[img['id']] > 1 or names[img['file_name']] > 1:
            continue
        if not (_is_number(img['width']) and _is_number(img['height']) and img['width'] > 0 and img['height'] > 0):
            report.problem(f'image {img["file_name"]} (id {img["id"]}): width/height must be positive numbers, '
                           f'got {img["width"]!r} x {img["height"]!r}')
            continue
        path = osp.join(report.img_dir, img['file_name'])
        if not osp.isfile(path):
            report.problem(f'image file {path} does not exist (image id {img["id"]})')
            continue
        if decode:
            arr = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
            if arr is None:
                report.problem(f'image file {path} cannot be decoded (corrupt or not an image)')
                continue
            if arr.shape[:2] != (int(img['height']), int(img['width'])):
                report.problem(f'image {img["file_name"]}: the file is {arr.shape[1]}x{arr.shape[0]} but the json '
                               f'says {img["width"]}x{img["height"]}; fix "width"/"height"')
                continue
        report.images.append(img)
        report.file_names.add(img['file_name'])
    report.num_images = len(report.images)
    return {img['id']: img for img in report.images}, set(ids)


def _check_annotation(report, i, ann, cats, images, all_image_ids):
    if not isinstance(ann, dict) or 'id' not in ann or 'image_id' not in ann:
        report.problem(f'annotations[{i}] lacks "id" / "image_id"')
        return None
    where = f'annotation id {ann["id"]} (image id {ann["image_id"]})'
    if ann['image_id'] not in all_image_ids:
        report.problem(f'{where}: no image with this id in "images"')
        return None
    if ann.get('category_id') not in cats:
        report.problem(f'{where}: category_id {ann.get("category_id")!r} is not in "categories"')
    img = images.get(ann['image_id'])
    bbox = ann.get('bbox')
    ok = True
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        report.problem(f'{where}: "bbox" must be [x, y, w, h] numbers, got {bbox!r}')
        ok = False
    elif bbox[2] <= 0 or bbox[3] <= 0:
        report.problem(f'{where}: bbox {bbox} has a non-positive width/height')
        ok = False
    elif img is not None:
        x, y, w, h = bbox
        W, H = img['width'], img['height']
        if x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or x + w > W + BOX_TOLERANCE or y + h > H + BOX_TOLERANCE:
            report.problem(f'{where}: bbox {bbox} lies outside the {W}x{H} image')
            ok = False
    kpts = ann.get('keypoints')
    K = report.num_keypoints
    if not isinstance(kpts, list) or not all(_is_number(v) for v in kpts):
        report.problem(f'{where}: "keypoints" must be a list of numbers')
        return None
    if K is not None and len(kpts) != 3 * K:
        report.problem(f'{where}: {len(kpts)} keypoint values, expected 3 x {K} = {3 * K} (x, y, visibility)')
        return None
    arr = np.asarray(kpts, dtype=np.float64).reshape(-1, 3)
    bad_vis = sorted({v for v in arr[:, 2].tolist() if v not in (0, 1, 2)})
    if bad_vis:
        report.problem(f'{where}: visibility values {bad_vis} (allowed: 0 unlabelled, 1 occluded, 2 visible)')
        return None
    labelled = arr[:, 2] > 0
    if img is not None and labelled.any():
        xy = arr[labelled, :2]
        if ((xy < -BOX_TOLERANCE).any() or (xy[:, 0] > img['width'] + BOX_TOLERANCE).any()
                or (xy[:, 1] > img['height'] + BOX_TOLERANCE).any()):
            report.problem(f'{where}: labelled keypoints lie outside the {img["width"]}x{img["height"]} image')
            ok = False
    if 'num_keypoints' in ann and ann['num_keypoints'] != int(labelled.sum()):
        report.warn(f'{where}: num_keypoints is {ann["num_keypoints"]} but {int(labelled.sum())} keypoints are '
                    'labelled')
    return arr if ok else None


def check_split(split, ann_file, img_dir, decode=True):
    """Check one annotation file; returns a :class:`SplitReport`."""
    report = SplitReport(split, ann_file, img_dir)
    data = _load_json(report)
    if data is None:
        return report
    cats = _check_categories(report, data['categories'])
    images, all_image_ids = _check_images(report, data['images'], decode)
    K = report.num_keypoints or 0
    report.vis_counts = np.zeros((K, 3), dtype=np.int64)
    ann_ids = Counter()
    per_image = Counter()
    no_kpts = 0
    for i, ann in enumerate(data['annotations']):
        if isinstance(ann, dict) and 'id' in ann:
            ann_ids[ann['id']] += 1
            if ann_ids[ann['id']] == 2:
                report.problem(f'duplicate annotation id {ann["id"]} (annotations[{i}]): ids must be unique')
        arr = _check_annotation(report, i, ann, cats, images, all_image_ids)
        if arr is None or ann['image_id'] not in images:
            continue
        if ann.get('iscrowd', 0):
            continue
        per_image[ann['image_id']] += 1
        report.anns_by_image.setdefault(ann['image_id'], []).append(arr)
        if K:
            for v in (0, 1, 2):
                report.vis_counts[:, v] += arr[:, 2] == v
        no_kpts += not (arr[:, 2] > 0).any()
    report.instances_per_image = [per_image.get(img['id'], 0) for img in report.images]
    empty = [img['file_name'] for img in report.images if not per_image.get(img['id'])]
    if empty:
        report.warn(f'{len(empty)} image(s) without people (no usable annotation), e.g. {empty[:3]}; they add '
                    'nothing to top-down training')
    if no_kpts:
        report.warn(f'{no_kpts} annotation(s) with no labelled keypoint; training skips them')
    if report.images and not per_image:
        report.problem('no usable person annotation at all')
    return report


# ---------------------------------------------------------------- outputs
def _atomic_write(path, write):
    with atomic_output(path) as tmp:
        with open(tmp, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())


def write_json(path, obj):
    _atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2, ensure_ascii=False) + '\n').encode()))


def draw_histogram(reports, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ok = [r for r in reports if r.vis_counts is not None and r.num_keypoints]
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5), dpi=100, gridspec_kw=dict(width_ratios=[3, 1]))
    if ok:
        names = ok[0].keypoint_names
        counts = sum(r.vis_counts for r in ok if r.vis_counts.shape == ok[0].vis_counts.shape)
        x = np.arange(len(names))
        bottom = np.zeros(len(names))
        for v, label, color in ((2, 'visible (2)', '#2a9d8f'), (1, 'occluded (1)', '#e9c46a'),
                                (0, 'unlabelled (0)', '#cccccc')):
            axes[0].bar(x, counts[:, v], bottom=bottom, label=label, color=color)
            bottom += counts[:, v]
        axes[0].set_xticks(x, names, rotation=60, ha='right', fontsize=8)
        axes[0].set_ylabel('instances')
        axes[0].set_title('keypoint visibility per joint (' + ' + '.join(r.split for r in ok) + ')')
        axes[0].legend(fontsize=8)
        top = max([max(r.instances_per_image, default=0) for r in ok] + [1])
        bins = np.arange(top + 2) - 0.5
        axes[1].hist([r.instances_per_image for r in ok], bins=bins, label=[r.split for r in ok])
        axes[1].set_xlabel('people per image')
        axes[1].set_ylabel('images')
        axes[1].set_title('instances per image')
        axes[1].legend(fontsize=8)
    fig.tight_layout()

    def save(f):
        fig.savefig(f, format='png')
    _atomic_write(path, save)
    plt.close(fig)


def draw_samples(report, out_dir, rel_root, num=MAX_SAMPLES):
    """Draw boxes-free keypoints and skeleton on up to ``num`` images; returns paths relative to OUT."""
    import cv2
    paths = []
    chosen = [img for img in report.images if img['id'] in report.anns_by_image][:num]
    for img in chosen:
        arr = cv2.imread(osp.join(report.img_dir, img['file_name']), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if arr is None:
            continue
        scale = max(1.0, max(arr.shape[:2]) / 640)
        thick = max(1, int(round(2 * scale)))
        for kpts in report.anns_by_image[img['id']]:
            for a, b in report.skeleton:
                if kpts[a, 2] > 0 and kpts[b, 2] > 0:
                    cv2.line(arr, tuple(int(round(v)) for v in kpts[a, :2]), tuple(int(round(v)) for v in kpts[b, :2]),
                             (255, 128, 0), thick, cv2.LINE_AA)
            for x, y, v in kpts:
                if v > 0:
                    color = (0, 200, 0) if v == 2 else (0, 200, 255)
                    cv2.circle(arr, (int(round(x)), int(round(y))), thick + 2, color, -1, cv2.LINE_AA)
        name = osp.join(report.split, img['file_name'])
        dst = osp.join(out_dir, name)
        ext = osp.splitext(dst)[1] or '.jpg'
        ok, buf = cv2.imencode(ext if ext.lower() in ('.jpg', '.jpeg', '.png', '.bmp') else '.jpg', arr)
        if ok:
            _atomic_write(dst, lambda f: f.write(buf.tobytes()))
            paths.append(osp.join(rel_root, name).replace(os.sep, '/'))
    return paths


# ---------------------------------------------------------------- split
def _pool(files):
    """Images (deduplicated by file_name, canonical order) with their annotations, and the categories."""
    images, anns, categories = {}, {}, {}
    for path in files:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        id_to_name = {}
        for img in data['images']:
            id_to_name[img['id']] = img['file_name']
            images.setdefault(img['file_name'], img)
        for ann in data['annotations']:
            name = id_to_name.get(ann['image_id'])
            if name is not None:
                anns.setdefault(name, {}).setdefault(ann['id'], ann)
        for cat in data['categories']:
            categories.setdefault(cat['id'], cat)
    # distinct images sharing an id (e.g. both files numbered from 1) get fresh ids
    used, next_id = set(), max([img['id'] for img in images.values() if isinstance(img['id'], int)] + [0]) + 1
    for name in sorted(images):
        img = images[name]
        if img['id'] in used:
            img = images[name] = dict(img, id=next_id)
            for ann_id, ann in anns.get(name, {}).items():
                anns[name][ann_id] = dict(ann, image_id=next_id)
            next_id += 1
        used.add(img['id'])
    return images, anns, [categories[k] for k in sorted(categories)]


def split_dataset(root, train_pct, val_pct, seed=0):
    """Re-split train/val by image; returns ``{split: number of images}``.

    Deterministic (images sorted by file name, then shuffled with ``seed``), so a second run with the
    same arguments rewrites identical files. The first originals are kept as ``*.json.bak`` (never
    overwritten). Each file is replaced atomically; the backups exist before anything is replaced.
    """
    if not (isinstance(train_pct, int) and isinstance(val_pct, int)) or train_pct <= 0 or val_pct <= 0 \
            or train_pct + val_pct != 100:
        raise CheckError(f'--split {train_pct} {val_pct}: give two positive whole percentages summing to 100, '
                         'e.g. --split 80 20')
    layout, splits = find_layout(root)
    if layout != 'paddlex':
        raise CheckError(f'--split needs the PaddleX layout ({root}/images/ holding every image); this dataset '
                         f'is laid out as {layout!r}')
    for split, (ann_file, _) in splits.items():
        report = SplitReport(split, ann_file, '')
        if _load_json(report) is None:
            raise CheckError('cannot split: ' + '; '.join(report.problems))
    pattern = next(p for p in ANN_NAMES if any(osp.basename(f) == p.format(s) for s, (f, _) in splits.items()))
    targets = {s: osp.join(root, 'annotations', pattern.format(s)) for s in SPLITS}
    images, anns, categories = _pool([f for f, _ in splits.values()])
    names = sorted(images)
    random.Random(seed).shuffle(names)
    n_train = round(len(names) * train_pct / 100)
    if len(names) >= 2:
        n_train = min(max(n_train, 1), len(names) - 1)
    parts = {'train': sorted(names[:n_train]), 'val': sorted(names[n_train:])}
    for split, path in targets.items():
        if osp.isfile(path) and not osp.exists(path + '.bak'):
            with open(path, 'rb') as f:
                original = f.read()
            _atomic_write(path + '.bak', lambda f: f.write(original))
    for split, path in targets.items():
        chosen = parts[split]
        ann_list = [a for n in chosen for _, a in sorted(anns.get(n, {}).items(), key=lambda kv: str(kv[0]))]
        write_json(path, dict(images=[images[n] for n in chosen], annotations=ann_list, categories=categories))
    return {s: len(v) for s, v in parts.items()}


# ---------------------------------------------------------------- command
def check_dataset(root, out='output', decode=True, num_samples=MAX_SAMPLES, log=print):
    """Check a dataset and write the PaddleX-style result; returns the result dict."""
    layout, splits = find_layout(root)
    reports = [check_split(s, *splits[s], decode=decode) for s in SPLITS if s in splits]
    if len(reports) == 2:
        both = reports[0].file_names & reports[1].file_names
        if both:
            reports[1].warn(f'{len(both)} image(s) are in both train and val, e.g. {sorted(both)[:3]}')
        k = {r.num_keypoints for r in reports if r.num_keypoints}
        if len(k) > 1:
            reports[1].problem(f'train and val have different keypoint counts {sorted(k)}')
    problems = [p for r in reports for p in r.problems]
    warnings = [w for r in reports for w in r.warnings]
    if layout != 'json' and len(splits) < 2:
        missing = [s for s in SPLITS if s not in splits][0]
        problems.append(f'{missing}: annotation file {root}/annotations/person_keypoints_{missing}2017.json is '
                        'missing (or create it with --split TRAIN VAL)')

    vis_dir = osp.join(out, 'check_dataset')
    hist = osp.join(vis_dir, 'histogram.png')
    draw_histogram(reports, hist)
    by_split = {r.split: r for r in reports}
    samples = {s: (draw_samples(by_split[s], osp.join(vis_dir, 'demo_img'), 'check_dataset/demo_img', num_samples)
                   if s in by_split else []) for s in SPLITS}
    passed = not problems
    result = dict(
        done_flag=True,
        check_pass=passed,
        attributes=dict(
            num_classes=max([r.num_classes for r in reports] + [0]),
            train_samples=by_split['train'].num_images if 'train' in by_split else 0,
            train_sample_paths=samples['train'],
            val_samples=by_split['val'].num_images if 'val' in by_split else 0,
            val_sample_paths=samples['val'],
            num_keypoints=next((r.num_keypoints for r in reports if r.num_keypoints), None),
        ),
        analysis=dict(histogram='check_dataset/histogram.png'),
        dataset_path=root,
        show_type='image',
        dataset_type=DATASET_TYPE,
        problems=problems,
        warnings=warnings,
    )
    if not passed:
        result.update(err_type='CheckFailedError', err_msg='\n'.join(problems))
    write_json(osp.join(out, 'check_dataset_result.json'), result)
    for w in warnings:
        log(f'warning: {w}')
    for p in problems:
        log(f'problem: {p}')
    if passed:
        log('Check dataset passed !')
    else:
        log(f'Check dataset failed: {len(problems)} problem(s) listed above; '
            f'details in {osp.join(out, "check_dataset_result.json")}')
    return result


def add_parser(subparsers):
    p = subparsers.add_parser('check-dataset', help='validate (and re-split) a COCO keypoint dataset',
                              description='Validate a COCO keypoint dataset as PaddleX check_dataset does '
                              '(PaddleX or COCO layout); optionally re-split train/val first.')
    p.add_argument('dataset', metavar='DIR', help='dataset folder (PaddleX or COCO layout) or an annotation .json')
    p.add_argument('--split', nargs=2, type=int, metavar=('TRAIN_PCT', 'VAL_PCT'),
                   help='re-split train/val by image first, e.g. --split 80 20 (PaddleX layout)')
    p.add_argument('--out', default='output', help='where check_dataset_result.json and check_dataset/ go '
                   '(default: ./output, as PaddleX)')
    p.add_argument('--seed', type=int, default=0, help='shuffle seed for --split (default 0)')
    p.add_argument('--samples', type=int, default=MAX_SAMPLES, help='sample images drawn per split')
    p.add_argument('--no-decode', action='store_true', help='check that image files exist without decoding them')
    p.set_defaults(func=run)


def run(args):
    from kpt_plugin.cli import CLIError
    try:
        if args.split:
            counts = split_dataset(args.dataset, args.split[0], args.split[1], seed=args.seed)
            print(f'Split dataset: train {counts["train"]} / val {counts["val"]} images '
                  '(originals kept as *.json.bak)')
        result = check_dataset(args.dataset, args.out, decode=not args.no_decode, num_samples=args.samples)
    except CheckError as e:
        raise CLIError(str(e)) from None
    return 0 if result['check_pass'] else 1
