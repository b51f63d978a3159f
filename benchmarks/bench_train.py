"""Training throughput (samples/s) of PP-TinyPose with the PaddleDetection recipe, for docs/training.md.

Two numbers per run:
* ``step``: forward + backward + Adam step on a ready batch (model cost only);
* ``pipeline``: producing samples with the full training pipeline (decode, flip, half body,
  scale/rotate, AID cutout, UDP warp, DARK targets) in one process; dataloader workers overlap it.

Usage: python benchmarks/bench_train.py [--batch-size 32] [--iters 10] [--threads N] [--device cpu]
"""
import argparse
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
SHARED = osp.join(osp.dirname(REPO), 'shared')
CFG = osp.join(REPO, 'configs', 'pp_tinypose', 'td-hm_pp-tinypose_1xb16-50e_custom-128x96.py')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=CFG)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None, help='torch intra-op threads (default: torch\'s)')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()

    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    import kpt_plugin  # noqa: F401
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS, MODELS
    from kpt_plugin.cli.cfg_utils import load_config

    init_default_scope('mmpose')
    mini = osp.join(SHARED, 'data', 'coco_val2017_mini')
    cfg = load_config(args.config, {'data_root': mini + '/', 'train_ann_file': 'test_coco.json',
                                    'train_img_prefix': ''})
    ds_cfg = cfg.train_dataloader.dataset
    dataset = DATASETS.build(dict(type='RepeatDataset', times=10000, dataset=ds_cfg))
    model = MODELS.build(cfg.model).to(args.device).train()
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)

    def next_batch(start):
        items = [dataset[(start + i) % len(dataset)] for i in range(args.batch_size)]
        return pseudo_collate(items)

    def step(batch):
        data = model.data_preprocessor(batch, training=True)
        losses = model(**data, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        loss.backward()
        optim.step()

    fixed = next_batch(0)
    for _ in range(args.warmup):
        step(fixed)
    t0 = time.perf_counter()
    for _ in range(args.iters):
        step(fixed)
    t_step = (time.perf_counter() - t0) / args.iters
    t0 = time.perf_counter()
    for i in range(args.iters):
        next_batch((i + 1) * args.batch_size)
    t_data = (time.perf_counter() - t0) / args.iters
    n = args.batch_size
    t_all = t_step + t_data
    print(f'device={args.device} threads={torch.get_num_threads()} batch={n} input=128x96 torch={torch.__version__}')
    print(f'step only : {t_step * 1000:7.1f} ms/iter  {n / t_step:6.1f} samples/s')
    print(f'pipeline  : {t_data / n * 1000:7.1f} ms/sample (one worker)')
    print(f'both, serial (num_workers=0): {n / t_all:6.1f} samples/s')

if __name__ == '__main__':
    main()
