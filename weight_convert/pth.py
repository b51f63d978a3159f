"""MMPose / mmdet / mmengine checkpoints (``.pth``): read back into source (ppdet) names, for ``--to pdparams``."""
from . import archs
from .errors import WeightsError
from .families import family_of_names, from_mmpose
from .safe_pickle import TorchCheckpointPickle, UnsafePickleError

__all__ = ['read_pth']


def read_pth(path, family=None):
    """``.pth`` -> (source state, info); ``info['arch']`` is the (canonical) arch recorded in ``meta``, if any; the
    family is the arch's, else ``family``, else the one the tensor names tell.

    Loaded with the restricted unpickler (tensors, mmengine training state; nothing else may run).
    """
    import torch
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=False,
                          pickle_module=TorchCheckpointPickle(str(path)))
    except UnsafePickleError as e:
        raise WeightsError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - any load failure means the file is not a usable checkpoint
        raise WeightsError(f'{path}: not a readable checkpoint ({type(e).__name__}: {e})') from None
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise WeightsError(f'{path}: no state_dict in the checkpoint')
    sd = {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in sd.items()}
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    arch = meta.get('arch')
    try:
        arch = archs.get_arch(arch).name if arch else None
    except WeightsError:
        arch = None  # a meta from another tool: the tensors still decide
    family = (archs.get_arch(arch).family if arch else family or family_of_names(sd)
              or archs.ARCHS[archs.DEFAULT_ARCH].family)
    arrays = {k: (v.detach().cpu().numpy() if torch.is_tensor(v) else v) for k, v in sd.items()}
    return from_mmpose(family, arrays), dict(format='pth', arch=arch, main_file=path, family=family)
