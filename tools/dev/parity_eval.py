#!/usr/bin/env python
"""Parity table: our COCO evaluation vs PaddleDetection's, both sizes, flip on and off.

    python tools/dev/parity_eval.py [--shared ../shared] [--work-dir work_dirs/parity] [--out parity.md]

Converts the official enhance weights fixture (``../shared/fixtures/enhance/{size}_enhance_folded.pdparams``),
evaluates it with the shipped configs on ``../shared/data/coco_val2017_mini`` (GT boxes) and compares the
results json instance by instance and the AP table with ppdet's golden ones. Also runs the detector-box
protocol (``test_coco_det_AP_H_56.json``), which has no ppdet golden, and reports its AP.
Exit status 1 when a row misses the tolerances (|dx|, |dy| <= 0.01 px, score <= 1e-4, AP table equal to 3
decimals).
"""
import argparse
import json
import os
import os.path as osp
import sys

_HERE = osp.dirname(osp.abspath(__file__))
_REPO = osp.dirname(osp.dirname(_HERE))
if osp.isfile(osp.join(_REPO, 'kpt_plugin', '__init__.py')) and _REPO not in sys.path:
    sys.path.insert(0, _REPO)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shared', default=osp.join(osp.dirname(_REPO), 'shared'), help='the shared data folder')
    p.add_argument('--work-dir', default=osp.join('work_dirs', 'parity'))
    p.add_argument('--out', help='also write the markdown table here')
    p.add_argument('--sizes', nargs='+', default=['128x96', '256x192'], choices=['128x96', '256x192'])
    p.add_argument('--config', nargs='+', default=[], metavar='SIZE=PATH',
                   help='use another config for a size (default: the zoo config)')
    p.add_argument('--no-det', action='store_true', help='skip the detector-box run')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, _HERE)
    import parity
    from kpt_plugin.zoo import get_config_path
    from weight_convert.convert import convert

    configs = {s: get_config_path(f'PP-TinyPose_{s}') for s in args.sizes}
    configs.update(dict(kv.split('=', 1) for kv in args.config))
    data_root = osp.join(args.shared, 'data', 'coco_val2017_mini')
    os.makedirs(args.work_dir, exist_ok=True)
    rows, det_rows = [], []
    for size in args.sizes:
        ckpt = osp.join(args.work_dir, f'{size}_enhance_folded.pth')
        convert(osp.join(args.shared, 'fixtures', 'enhance', f'{size}_enhance_folded.pdparams'), ckpt,
                arch=f'PP-TinyPose_{size}')
        for flip in (True, False):
            tag = f'{size}_{"flip" if flip else "noflip"}'
            res = parity.run_coco_eval(configs[size], ckpt, data_root, 'test_coco.json',
                                       osp.join(args.work_dir, tag), flip)
            gold = parity.golden_paths(args.shared, size, flip)
            row = dict(size=size, flip=flip, ours=res['metrics'], ppdet=parity.golden_stats(args.shared, size, flip),
                       compare=parity.compare_results(parity.load_json(res['results']),
                                                      parity.load_json(gold['json'])),
                       seconds_per_instance=res['seconds'] / max(res['num_instances'], 1))
            row['fails'] = parity.check_row(row)
            rows.append(row)
        if not args.no_det:
            res = parity.run_coco_eval(configs[size], ckpt, data_root, 'test_coco.json',
                                       osp.join(args.work_dir, f'{size}_det'), True,
                                       bbox_file=osp.join(data_root, 'test_coco_det_AP_H_56.json'))
            det_rows.append(dict(size=size, metrics=res['metrics'], num_instances=res['num_instances']))

    table = parity.parity_markdown(rows)
    lines = ['## Parity with PaddleDetection (GT boxes, coco_val2017_mini, enhance weights)', '', table, '']
    for r in rows:
        lines.append(f"- {r['size']} flip {'on' if r['flip'] else 'off'}: "
                     + ('PASS' if not r['fails'] else 'FAIL: ' + '; '.join(r['fails'])))
    if det_rows:
        lines += ['', '## Detector boxes (test_coco_det_AP_H_56.json, flip on; no ppdet golden)', '']
        for d in det_rows:
            lines.append(f"- {d['size']}: {d['num_instances']} boxes, AP {d['metrics']['AP']:.3f}, "
                         f"AP .5 {d['metrics']['AP .5']:.3f}, AR {d['metrics']['AR']:.3f}")
    text = '\n'.join(lines)
    print(text)
    if args.out:
        from weight_convert.io import atomic_write_text
        atomic_write_text(args.out, text + '\n')
    with open(osp.join(args.work_dir, 'parity.json'), 'w', encoding='utf-8') as f:
        json.dump(dict(rows=rows, det=det_rows), f, indent=2)
    return 1 if any(r['fails'] for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
