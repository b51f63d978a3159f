"""Conversion time per weight format (goal: < 3 s each, model build included).

    OMP_NUM_THREADS=1 python benchmarks/bench_convert.py [--shared ../shared] [--repeat 3]

Prints the best wall time of ``weight_convert.convert.convert`` per source (the first call also builds and
caches the reference model; it is reported separately as "cold").
"""
import argparse
import os.path as osp
import tempfile
import time


def main():
    here = osp.dirname(osp.dirname(osp.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--shared', default=osp.join(osp.dirname(here), 'shared'))
    p.add_argument('--repeat', type=int, default=3)
    args = p.parse_args()
    from weight_convert.convert import convert
    s = args.shared
    sources = {
        'pdparams': f'{s}/fixtures/enhance/128x96_enhance_folded.pdparams',
        'paddle_pir': f'{s}/fixtures/random/128x96_infer',
        'openvino fp16 128x96': f'{s}/weights/pp_tinypose_enhance_openvino_fp16/128x96',
        'openvino fp16 256x192': f'{s}/weights/pp_tinypose_enhance_openvino_fp16/256x192',
        'ncnn fp16 128x96': f'{s}/weights/pp_tinypose_2021_ncnn_fp16/tinypose_128x96.param',
        'ncnn fp16 256x192': f'{s}/weights/pp_tinypose_2021_ncnn_fp16/tinypose_256x192.param',
    }
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        convert(sources['pdparams'], osp.join(tmp, 'cold.pth'))
        print(f'{"cold (imports + model build + pdparams)":40s} {time.perf_counter() - t0:6.2f} s')
        for name, src in sources.items():
            best = min(_timed(convert, src, osp.join(tmp, 'x.pth')) for _ in range(args.repeat))
            print(f'{name:40s} {best:6.2f} s')


def _timed(fn, *a):
    t0 = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t0


if __name__ == '__main__':
    main()
