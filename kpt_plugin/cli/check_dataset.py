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
import io
import json
import os
import os.path as osp
import random
from collections import Counter

import numpy as np

from weight_convert.io import atomic_write_bytes, atomic_write_json

from ..datasets.coco_schema import check_coco, load_json
from ..errors import DatasetError

SPLITS = ('train', 'val')
ANN_NAMES = ('person_keypoints_{}2017.json', 'instance_{}.json')
DATASET_TYPE = 'KeypointTopDownCocoDetDataset'  # what PaddleX reports for keypoint datasets
MAX_SAMPLES = 10


# ---------------------------------------------------------------- layout
def find_layout(root):
    """Return ``(layout, {split: (ann_file, img_dir)})``; splits whose json is missing are left out."""
    if osp.isfile(root) and root.endswith('.json'):
        return 'json', {'val': (root, osp.dirname(osp.abspath(root)))}
    if not osp.isdir(root):
        raise DatasetError(f'{root}: no such directory (expected a dataset folder or an annotation .json)')
    ann_dir = osp.join(root, 'annotations')
    found = {}
    for pattern in ANN_NAMES:
        for split in SPLITS:
            path = osp.join(ann_dir, pattern.format(split))
            if split not in found and osp.isfile(path):
                found[split] = path
    if not found:
        raise DatasetError(f'{root}: no annotation file; expected {root}/annotations/person_keypoints_'
                           '{train,val}2017.json with the images in images/ (PaddleX) or {train,val}2017/ (COCO)')
    if osp.isdir(osp.join(root, 'images')):
        return 'paddlex', {s: (p, osp.join(root, 'images')) for s, p in found.items()}
    return 'coco', {s: (p, osp.join(root, f'{s}2017')) for s, p in found.items()}


# ---------------------------------------------------------------- checking one split
class SplitReport:
    """Findings and statistics for one annotation file (the schema's :class:`CocoCheck` plus the image files)."""

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
        self.images = []  # image records whose file is usable
        self.anns_by_image = {}  # image id -> [(K, 3) keypoints]
        self.file_names = set()

    def problem(self, msg):
        self.problems.append(f'{self.split}: {msg}')

    def warn(self, msg):
        self.warnings.append(f'{self.split}: {msg}')


def _image_file_problem(img, path, decode):
    """Why the image file of ``img`` cannot be used, or None."""
    import cv2
    if not osp.isfile(path):
        return f'image file {path} does not exist (image id {img["id"]}); put it there or fix "file_name"'
    if not decode:
        return None
    arr = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is None:
        return f'image file {path} cannot be decoded (corrupt or not an image); replace it'
    if arr.shape[:2] != (int(img['height']), int(img['width'])):
        return (f'image {img["file_name"]}: the file is {arr.shape[1]}x{arr.shape[0]} but the json says '
                f'{img["width"]}x{img["height"]}; fix "width"/"height"')
    return None


def check_split(split, ann_file, img_dir, decode=True):
    """Check one annotation file (schema, then image files); returns a :class:`SplitReport`."""
    report = SplitReport(split, ann_file, img_dir)
    data, problem = load_json(ann_file)
    if problem is not None:
        report.problem(str(problem))
        return report
    ck = check_coco(data, ann_file, strict=True)
    for p in ck.problems:
        report.problem(str(p))
    for w in ck.warnings:
        report.warn(str(w))
    report.num_keypoints, report.keypoint_names = ck.num_keypoints, ck.keypoint_names
    report.skeleton, report.num_classes = ck.skeleton, ck.num_classes
    for img in ck.images.values():
        problem = _image_file_problem(img, osp.join(img_dir, img['file_name']), decode)
        if problem:
            report.problem(problem)
        else:
            report.images.append(img)
            report.file_names.add(img['file_name'])
    report.num_images = len(report.images)
    usable_ids = {img['id'] for img in report.images}
    K = report.num_keypoints or 0
    report.vis_counts = np.zeros((K, 3), dtype=np.int64)
    per_image = Counter()
    no_kpts = 0
    for i, arr in ck.keypoints.items():
        ann = data['annotations'][i]
        if ann['image_id'] not in usable_ids or ann.get('iscrowd', 0):
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
    labelled = sum(per_image.values()) - no_kpts
    if not labelled and not ck.problems:
        # what training and evaluation need: one instance with a labelled joint on an image that can be read
        report.problem(f'{ann_file}: no usable instance: none of the {sum(per_image.values())} person '
                       f'annotation(s) on the {len(report.images)} readable image(s) has a labelled keypoint '
                       '(visibility > 0); label the keypoints (or fix the image files / "image_id")')
    elif no_kpts:
        report.warn(f'{no_kpts} annotation(s) with no labelled keypoint; training skips them')
    return report


# ---------------------------------------------------------------- outputs
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
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def draw_samples(report, out_dir, rel_root, num=MAX_SAMPLES):
    """Draw the labelled keypoints and the dataset's own skeleton (green visible, orange occluded) on up to ``num``
    images; returns their paths relative to OUT. A few cv2 calls: MMPose's visualizer needs a metainfo file, and
    a custom dataset's layout is only in its categories."""
    import cv2
    paths = []
    for img in [img for img in report.images if img['id'] in report.anns_by_image][:num]:
        arr = cv2.imread(osp.join(report.img_dir, img['file_name']), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if arr is None:
            continue
        thick = max(1, round(2 * max(1.0, max(arr.shape[:2]) / 640)))
        for kpts in report.anns_by_image[img['id']]:
            pts = [(int(round(x)), int(round(y))) for x, y in kpts[:, :2]]
            for a, b in report.skeleton:
                if kpts[a, 2] > 0 and kpts[b, 2] > 0:
                    cv2.line(arr, pts[a], pts[b], (255, 128, 0), thick, cv2.LINE_AA)
            for pt, v in zip(pts, kpts[:, 2]):
                if v > 0:
                    cv2.circle(arr, pt, thick + 2, (0, 200, 0) if v == 2 else (0, 200, 255), -1, cv2.LINE_AA)
        name = osp.join(report.split, img['file_name'])
        ext = osp.splitext(name)[1].lower()
        ok, buf = cv2.imencode(ext if ext in ('.jpg', '.jpeg', '.png', '.bmp') else '.jpg', arr)
        if ok:
            atomic_write_bytes(osp.join(out_dir, name), buf.tobytes())
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
        raise DatasetError(f'--split {train_pct} {val_pct}: give two positive whole percentages summing to 100, '
                           'e.g. --split 80 20')
    layout, splits = find_layout(root)
    if layout != 'paddlex':
        raise DatasetError(f'--split needs the PaddleX layout ({root}/images/ holding every image); this dataset '
                           f'is laid out as {layout!r}')
    for split, (ann_file, _) in splits.items():
        data, problem = load_json(ann_file)
        # the records must at least hold together (ids, image_id links) for images to move with their annotations
        problems = [problem] if problem else check_coco(data, ann_file, need_instances=False).problems
        if problems:
            more = f' (and {len(problems) - 1} more: run check-dataset without --split)' if len(problems) > 1 else ''
            raise DatasetError(f'cannot split: {problems[0]}{more}')
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
                atomic_write_bytes(path + '.bak', f.read())
    for split, path in targets.items():
        chosen = parts[split]
        ann_list = [a for n in chosen for _, a in sorted(anns.get(n, {}).items(), key=lambda kv: str(kv[0]))]
        atomic_write_json(path, dict(images=[images[n] for n in chosen], annotations=ann_list, categories=categories))
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
    atomic_write_json(osp.join(out, 'check_dataset_result.json'), result)
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
    if args.split:
        counts = split_dataset(args.dataset, args.split[0], args.split[1], seed=args.seed)
        print(f'Split dataset: train {counts["train"]} / val {counts["val"]} images '
              '(originals kept as *.json.bak)')
    result = check_dataset(args.dataset, args.out, decode=not args.no_decode, num_samples=args.samples)
    return 0 if result['check_pass'] else 1
