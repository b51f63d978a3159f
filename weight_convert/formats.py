"""The format registry: detect the weight format of a file or directory, and dispatch to its reader.

:func:`read_any` returns ``(state, info)``: ``state`` maps source (PaddleDetection structured) names
(``backbone.stem.conv1.conv.weight``) to float32 arrays; ``info`` holds ``format``, ``family`` (``pp_tinypose`` or
``picodet``: from the arch given, the deploy config, the input size, the tensor names or the number of convs),
``arch`` (canonical name when the source tells the input size, else None), ``main_file`` (the file whose sha256
identifies the source) and ``model_name`` (PaddleX ``Global.model_name``, else None).

Formats (one reader module each):

* ``pdparams`` - ``paddle.save`` state dict (:mod:`.pdparams`, restricted unpickler);
* ``pth`` - an mmengine / MMPose checkpoint (:mod:`.pth`, for ``--to pdparams``);
* ``paddle_pir`` - Paddle 3.x inference model, ``model.json`` or PaddleX ``inference.json`` + ``*.pdiparams``;
* ``paddle_legacy`` - Paddle 2.x inference model, ``*.pdmodel`` + ``*.pdiparams`` (:mod:`.paddle_inference`);
* ``openvino`` - OpenVINO IR, ``*.xml`` + ``*.bin`` (:mod:`.openvino_ir`, BatchNorm folded into the convs);
* ``ncnn`` - ``*.param`` + ``*.bin`` (:mod:`.ncnn`, BatchNorm folded).

Folded convs become conv weight + an identity BatchNorm carrying the folded bias (``weight=1, bias=b, mean=0,
var=1-eps``), so ``BN(x) == x + b`` exactly in float32.
"""
import glob
import os.path as osp

from . import archs
from .errors import MissingWeightsError, WeightsError
from .families import family_of_names

__all__ = ['FORMATS', 'detect', 'read_any']


def _read_pdparams(files, table, family):
    from .pdparams import read_pdparams
    state = read_pdparams(files[0])
    return state, dict(format='pdparams', arch=None, main_file=files[0], family=family or family_of_names(state))


def _read_pth(files, table, family):
    from .pth import read_pth
    return read_pth(files[0], family=family)


def _read_pir(files, table, family):
    from .paddle_inference import read_paddle_pir
    return read_paddle_pir(*files, table=table, family=family)


def _read_legacy(files, table, family):
    from .paddle_inference import read_paddle_legacy
    return read_paddle_legacy(*files, table=table, family=family)


def _read_openvino(files, table, family):
    from .openvino_ir import read_openvino
    return read_openvino(*files, table=table, family=family)


def _read_ncnn(files, table, family):
    from .ncnn import read_ncnn
    return read_ncnn(*files, table=table, family=family)


#: format name -> reader ``(files, slot table, family) -> (state, info)`` (readers imported on use)
FORMATS = {'pdparams': _read_pdparams, 'pth': _read_pth, 'paddle_pir': _read_pir, 'paddle_legacy': _read_legacy,
           'openvino': _read_openvino, 'ncnn': _read_ncnn}

# directory members: (first file, its partner, format); a PaddleX model dir is inference.json + inference.pdiparams
_PAIRS = (('.json', '.pdiparams', 'paddle_pir'), ('.pdmodel', '.pdiparams', 'paddle_legacy'),
          ('.xml', '.bin', 'openvino'), ('.param', '.bin', 'ncnn'))


def _pairs(directory, first_ext, second_ext):
    out = []
    for p in sorted(glob.glob(osp.join(directory, '*' + first_ext))):
        stem = p[:-len(first_ext)]
        if osp.isfile(stem + second_ext):
            out.append((p, stem + second_ext))
    return out


def _found(fmt, *files):
    return dict(format=fmt, files=files, main_file=files[-1])


def _detect_file(src):
    low, stem = src.lower(), osp.splitext(src)[0]
    if low.endswith('.pdparams'):
        return _found('pdparams', src)
    if low.endswith(('.pth', '.pt')):
        return _found('pth', src)
    if low.endswith(('.json', '.pdmodel', '.pdiparams')):
        for ext, fmt in (('.json', 'paddle_pir'), ('.pdmodel', 'paddle_legacy')):
            if (low.endswith(ext) or low.endswith('.pdiparams')) and osp.isfile(stem + ext) \
                    and osp.isfile(stem + '.pdiparams'):
                return _found(fmt, stem + ext, stem + '.pdiparams')
        raise WeightsError(f'{src}: a Paddle inference model needs both {osp.basename(stem)}.json (or .pdmodel) '
                           f'and {osp.basename(stem)}.pdiparams in {osp.dirname(src) or "."}')
    if low.endswith(('.xml', '.bin')) and osp.isfile(stem + '.xml') and osp.isfile(stem + '.bin') \
            and not osp.isfile(stem + '.param'):
        return _found('openvino', stem + '.xml', stem + '.bin')
    if low.endswith(('.param', '.bin')) and osp.isfile(stem + '.param'):
        if not osp.isfile(stem + '.bin'):
            raise WeightsError(f'{src}: the ncnn weights {osp.basename(stem)}.bin are missing')
        return _found('ncnn', stem + '.param', stem + '.bin')
    raise WeightsError(f'{src}: unsupported weight file; expected .pth, .pdparams, a Paddle inference model '
                       '(.json/.pdmodel + .pdiparams), an OpenVINO IR (.xml + .bin) or ncnn (.param + .bin)')


def detect(src):
    """Detect the weight format of ``src`` (file or directory) without reading the tensors.

    Returns:
        dict: ``format``, ``files`` (the paths the reader needs) and ``main_file``.

    Raises:
        MissingWeightsError: ``src`` does not exist (a ``FileNotFoundError``).
        WeightsError: nothing recognisable (the message lists what was looked for), or several models.
    """
    src = str(src)
    if not osp.exists(src):
        raise MissingWeightsError(f'{src}: no such file or directory')
    if osp.isfile(src):
        return _detect_file(src)
    found = [_found(fmt, a, b) for first, second, fmt in _PAIRS for a, b in _pairs(src, first, second)]
    for p in sorted(glob.glob(osp.join(src, '*.pdparams')) + glob.glob(osp.join(src, '*.pth'))):
        found.append(_found('pdparams' if p.endswith('.pdparams') else 'pth', p))
    if len(found) == 1:
        return found[0]
    subdirs = [d for d in sorted(glob.glob(osp.join(src, '*'))) if osp.isdir(d)]
    if not found and len(subdirs) == 1:  # an unpacked archive: tinypose_128x96/{model.pdmodel, ...}
        return detect(subdirs[0])
    if not found:
        raise WeightsError(f'{src}: no model found in this directory; expected model.json (or PaddleX '
                           'inference.json) or model.pdmodel + model.pdiparams (Paddle inference), model.xml + '
                           'model.bin (OpenVINO), *.param + *.bin (ncnn), or a .pdparams/.pth file')
    listing = ', '.join(osp.basename(f['files'][0]) for f in found)
    raise WeightsError(f'{src}: several models in this directory ({listing}); pass the file you mean')


def read_any(src, arch=None, family=None):
    """Read any supported weight source into ``(state, info)`` (see the module docstring).

    Args:
        src (str): file or directory.
        arch (str, optional): the architecture the caller expects; selects the slot table name-less formats fill.
        family (str, optional): the model family, when ``arch`` is not known (default: told by the source, else
            PP-TinyPose).
    """
    found = detect(src)
    if arch is not None:
        family = archs.get_arch(arch).family
    table = archs.slot_table(arch, family) if family else None
    state, info = FORMATS[found['format']](found['files'], table, family)
    info.setdefault('main_file', found['main_file'])
    info.setdefault('model_name', None)
    if not info.get('family'):
        info['family'] = family or family_of_names(state) or archs.ARCHS[archs.DEFAULT_ARCH].family
    return state, info
