"""Parity of our COCO evaluation with PaddleDetection's golden results (``tools/dev/parity_eval.py``).

Golden data: ``../shared/fixtures/enhance/results/{size}_coco_{flip,noflip}.json`` (ppdet's results
json after rescoring and OKS-NMS) and ``..._raw.npz`` (``stats``: ppdet's 10 COCO numbers), made by
ppdet's own ``tools/eval.py`` with the official enhance weights on ``../shared/data/coco_val2017_mini``.
"""
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional

import numpy as np

from kpt_plugin.evaluation.pp_coco_metric import STATS_NAMES

SIZES = ('128x96', '256x192')
#: the issue's acceptance tolerances
TOL_PX = 0.01
TOL_SCORE = 1e-4


def run_coco_eval(config: str, checkpoint: str, data_root: str, ann_file: str, outfile_prefix: str,
                  flip: bool, bbox_file: Optional[str] = None, img_prefix: str = '',
                  work_dir: Optional[str] = None) -> Dict:
    """Evaluate ``checkpoint`` with ``config``'s test pipeline/metric on a COCO-format set.

    Only the data paths, the flip switch and the results prefix are overridden, the way a user
    would with ``--cfg-options``.

    Returns:
        dict: ``metrics`` (name -> value), ``results`` (results json path), ``seconds``,
        ``num_instances``.
    """
    import kpt_plugin  # noqa: F401
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(config)
    ds = dict(data_root=data_root, ann_file=ann_file, data_prefix=dict(img=img_prefix), bbox_file=bbox_file)
    cfg.merge_from_dict({f'test_dataloader.dataset.{k}': v for k, v in ds.items()})
    cfg.merge_from_dict({'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False,
                         'test_evaluator.outfile_prefix': outfile_prefix,
                         'test_evaluator.ann_file': osp.join(data_root, ann_file),
                         'model.test_cfg.flip_test': bool(flip)})
    cfg.load_from = checkpoint
    cfg.work_dir = work_dir or osp.dirname(osp.abspath(outfile_prefix))
    cfg.experiment_name = f'eval_{osp.basename(outfile_prefix)}_{os.getpid()}_{time.time_ns()}'
    cfg.default_hooks = dict(cfg.get('default_hooks', {}), logger=dict(type='LoggerHook', interval=1000))
    cfg.custom_hooks = [dict(type='PPTestProgressHook')]
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    hook = next(h for h in runner.hooks if type(h).__name__ == 'PPTestProgressHook')
    return dict(metrics={k.split('/', 1)[-1]: float(v) for k, v in metrics.items()},
                results=f'{outfile_prefix}.keypoints.json', seconds=hook.seconds,
                num_instances=hook.num_instances)


def compare_results(ours: List[dict], golden: List[dict]) -> Dict:
    """Instance-by-instance differences between two COCO keypoint results lists.

    Each golden instance is paired with the closest remaining one of ours on the same image (mean
    keypoint distance), so the order does not matter; unpaired instances are counted in ``unmatched``.
    """
    by_img: Dict[int, List[dict]] = {}
    for r in ours:
        by_img.setdefault(r['image_id'], []).append(r)
    dx = dy = dks = ds = 0.
    unmatched = 0
    for g in golden:
        cands = by_img.get(g['image_id'], [])
        if not cands:
            unmatched += 1
            continue
        kg = np.asarray(g['keypoints'], np.float64).reshape(-1, 3)
        dist = [np.abs(np.asarray(c['keypoints'], np.float64).reshape(-1, 3)[:, :2] - kg[:, :2]).mean()
                for c in cands]
        o = cands.pop(int(np.argmin(dist)))
        ko = np.asarray(o['keypoints'], np.float64).reshape(-1, 3)
        dx = max(dx, float(np.abs(ko[:, 0] - kg[:, 0]).max()))
        dy = max(dy, float(np.abs(ko[:, 1] - kg[:, 1]).max()))
        dks = max(dks, float(np.abs(ko[:, 2] - kg[:, 2]).max()))
        ds = max(ds, abs(float(o['score']) - float(g['score'])))
    unmatched += sum(len(v) for v in by_img.values())
    return dict(max_dx=dx, max_dy=dy, max_kpt_score=dks, max_score=ds, unmatched=unmatched,
                num_ours=len(ours), num_golden=len(golden))


def golden_paths(shared: str, size: str, flip: bool) -> Dict[str, str]:
    base = osp.join(shared, 'fixtures', 'enhance', 'results', f'{size}_coco_{"flip" if flip else "noflip"}')
    return dict(json=base + '.json', raw=base + '_raw.npz', txt=base + '.txt')


def golden_stats(shared: str, size: str, flip: bool) -> Dict[str, float]:
    with np.load(golden_paths(shared, size, flip)['raw'], allow_pickle=False) as raw:
        return dict(zip(STATS_NAMES, (float(v) for v in raw['stats'])))


def check_row(row: Dict) -> List[str]:
    """Failed acceptance criteria of one parity row (empty: it passes)."""
    c, fails = row['compare'], []
    if c['unmatched'] or c['num_ours'] != c['num_golden']:
        fails.append(f"instances: ours {c['num_ours']} vs ppdet {c['num_golden']} ({c['unmatched']} unpaired)")
    if max(c['max_dx'], c['max_dy']) > TOL_PX:
        fails.append(f"keypoints off by {max(c['max_dx'], c['max_dy']):.4g} px > {TOL_PX}")
    if c['max_score'] > TOL_SCORE:
        fails.append(f"score off by {c['max_score']:.3g} > {TOL_SCORE}")
    for name in STATS_NAMES:
        if f"{row['ours'][name]:.3f}" != f"{row['ppdet'][name]:.3f}":
            fails.append(f"{name}: {row['ours'][name]:.3f} vs {row['ppdet'][name]:.3f}")
    return fails


def parity_markdown(rows: List[Dict]) -> str:
    """The parity table (ours vs PaddleDetection, every metric) in markdown."""
    head = ['size', 'flip', 'source'] + STATS_NAMES + ['max abs dx (px)', 'max abs dy (px)', 'max abs score diff']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        c = r['compare']
        flip = 'on' if r['flip'] else 'off'
        ours = [f"{r['ours'][n]:.3f}" for n in STATS_NAMES]
        diffs = [f"{c['max_dx']:.1e}", f"{c['max_dy']:.1e}", f"{c['max_score']:.1e}"]
        lines.append('| ' + ' | '.join([r['size'], flip, 'kpt_plugin'] + ours + diffs) + ' |')
        ppdet = [f"{r['ppdet'][n]:.3f}" for n in STATS_NAMES]
        lines.append('| ' + ' | '.join([r['size'], flip, 'PaddleDetection'] + ppdet + ['', '', '']) + ' |')
    return '\n'.join(lines)


def load_json(path: str):
    with open(path, encoding='utf-8') as f:
        return json.load(f)
