"""Writes the pip constraints and runtime requirements install.sh uses (run by the target interpreter).

``python requirements/env_pins.py OUT_DIR`` copies ``constraints.txt`` and ``runtime.txt`` (our .venv's pins).
With ``--keep`` (``install.sh --into ENV``) every package of the stack that ENV already has in a version kpt_plugin
works with is pinned to that version instead, so installing kpt_plugin moves nothing the user has; a full mmcv is
kept (mmcv-lite would overwrite its files). Prints what it keeps; exits non-zero for a full mmcv mmdet cannot use.
"""
import argparse
import os.path as osp
import re
import sys
from importlib import metadata

HERE = osp.dirname(osp.abspath(__file__))
# what kpt_plugin works with (as setup.py's install_requires): dist -> (lowest, first unsupported)
FITS = {'torch': ((1, 13), None), 'numpy': ((1, 22), (2, 4)), 'opencv-python': ((4,), (5,)),
        'opencv-python-headless': ((4,), (5,)), 'mmcv': ((2, 0), (2, 2)), 'mmcv-lite': ((2, 0), (2, 2)),
        'mmengine': ((0, 10), (1,)), 'mmdet': ((3, 0), (3, 4)), 'mmpose': ((1, 3), (1, 4))}


def installed(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def fits(dist, version):
    parts = tuple(int(p) for p in re.findall(r'\d+', version.split('+')[0])[:3])
    low, high = FITS[dist]
    return parts >= low and (high is None or parts < high)


def name_of(line):
    return re.split(r'[<>=!~;\s\[]', line.strip(), maxsplit=1)[0].lower()


def read_lines(name):
    with open(osp.join(HERE, name), encoding='utf-8') as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith('#')]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir')
    parser.add_argument('--keep', action='store_true', help='pin what the env already has (install.sh --into)')
    args = parser.parse_args(argv)
    have = {d: installed(d) for d in FITS} if args.keep else {}
    kept = {d: v for d, v in have.items() if v and fits(d, v)}
    if have.get('mmcv') and 'mmcv' not in kept:
        sys.exit(f'install.sh: mmcv {have["mmcv"]} is installed; mmdet 3.x needs mmcv>=2.0,<2.2: install that '
                 '(mim install "mmcv==2.1.0") or uninstall mmcv to get mmcv-lite 2.1.0')
    constraints = [ln for ln in read_lines('constraints.txt') if name_of(ln) not in kept]
    if args.keep:  # an env's own numpy may be 1.x (an older torch needs it): only the upper bound stays
        constraints = [re.sub(r'^numpy>=2,', 'numpy', ln) for ln in constraints]
    constraints += [f'{d}=={v}' for d, v in kept.items()]
    runtime = [ln for ln in read_lines('runtime.txt') if not (have.get('mmcv') and name_of(ln) == 'mmcv-lite')]
    for name, lines in (('constraints.txt', constraints), ('runtime.txt', runtime)):
        with open(osp.join(args.out_dir, name), 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n')
    for d, v in sorted(kept.items()):
        print(f'  keeping {d} {v}')
    for d, v in sorted(have.items()):
        if v and d not in kept:
            print(f'  {d} {v} does not fit kpt_plugin: it will be replaced', file=sys.stderr)


if __name__ == '__main__':
    main()
