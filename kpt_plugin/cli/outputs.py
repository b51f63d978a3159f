"""What the sub-commands share about their outputs: check a folder is writable before heavy work, and write a
result's image + json without overwriting another input's result.

Overwrite rules (``docs/reliability.md``): within one run, two inputs that would write the same file (``d1/p.jpg``
and ``d2/p.jpg`` both give ``p_res.json``) never overwrite each other: the later one fails, naming the first. A file
left by an earlier run is replaced only when it is this input's own result (its json records the same
``input_path``: a rerun refreshes its outputs); any other existing file is kept and the input fails, unless
``overwrite`` is given (``kpt-plugin predict --overwrite``).
"""
import json
import os
import os.path as osp

__all__ = ['check_writable', 'save_result']


def check_writable(folder, what):
    """Fail (one line, :class:`KptError`) when ``folder`` cannot take files; ``what`` names the option."""
    from weight_convert.io import check_writable_dir
    check_writable_dir(folder, what)


def _same_input(a, b):
    if a == b:
        return True
    if not isinstance(a, str) or not isinstance(b, str) or '://' in a or '://' in b:
        return False
    return osp.abspath(a) == osp.abspath(b)


def _earlier_owner(json_path):
    """``(exists, input_path)`` of the json an earlier run wrote at ``json_path`` (input_path None: unreadable)."""
    if not osp.lexists(json_path):
        return False, None
    try:
        with open(json_path, 'rb') as f:
            data = json.loads(f.read().decode('utf-8'))
        return True, data.get('input_path') if isinstance(data, dict) else None
    except (OSError, ValueError):
        return True, None


def save_result(res, save_dir, with_img, written, name, overwrite=False, option=None):
    """Write one result's image, then its json (a json never stands without its image); returns a failure
    reason or None. See the module doc for what may be overwritten.

    Args:
        res: a result with ``json_path`` / ``img_path`` / ``save_to_json`` / ``save_to_img``.
        save_dir (str): the output folder.
        with_img (bool): also write the drawn image.
        written (dict): output path -> the input that wrote it, shared by the whole run.
        name (str): this input, for messages.
        overwrite (bool): replace existing files of earlier runs whatever they hold.
        option (str, optional): the command's option that sets ``overwrite``, for the message (None: it has none).
    """
    targets = [res.json_path(save_dir)] + ([res.img_path(save_dir)] if with_img else [])
    for t in targets:
        if t in written:
            return (f'output {t} would overwrite the result of {written[t]}; give the inputs distinct names or '
                    'run them with separate --save-dir')
    if not overwrite:
        exists, owner = _earlier_owner(targets[0])
        own = exists and owner is not None and _same_input(owner, res.get('input_path'))
        for t in targets:
            if osp.lexists(t) and not own:
                of = f' (the result of {owner})' if owner is not None and t == targets[0] else ''
                fix = f'pass {option} to replace it, ' if option else ''
                return (f'output {t} already exists{of} and is not this input\'s result; {fix}remove it or choose '
                        'another --save-dir')
    done = []
    try:
        if with_img:
            done.append(res.save_to_img(targets[1]))
        done.append(res.save_to_json(targets[0]))
    except (OSError, ValueError) as e:
        for path in done:
            os.remove(path)
        # an older json of this input must not outlive the failure either: it would stand for this run's result
        exists, owner = _earlier_owner(targets[0])
        if exists and owner is not None and _same_input(owner, res.get('input_path')):
            os.remove(targets[0])
        failed = targets[1] if with_img and not done else targets[0]
        if isinstance(e, OSError):
            return f'cannot write output {failed} ({e.strerror or e}); free disk space or choose another --save-dir'
        return f'cannot write output {failed}: {e}'
    for t in targets:
        written[t] = name
    return None
