"""What the sub-commands share about their outputs: check a folder is writable before heavy work, and write a
result's image + json without overwriting another input's result."""
import os
import tempfile

__all__ = ['check_writable', 'save_result']


def check_writable(folder, what):
    """Fail (one line) when ``folder`` cannot take files; ``what`` names the option in the message."""
    from kpt_plugin.errors import KptError
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix='.kpt-plugin-probe-'):
            pass
    except OSError as e:
        raise KptError(f'{what} {folder}: cannot write there ({e.strerror or e}); choose a writable folder') from None


def save_result(res, save_dir, with_img, written, name):
    """Write one result's image, then its json (a json never stands without its image); returns a failure
    reason or None. Two inputs that would write the same file: the later one fails instead of overwriting.

    Args:
        res: a result with ``json_path`` / ``img_path`` / ``save_to_json`` / ``save_to_img``.
        save_dir (str): the output folder.
        with_img (bool): also write the drawn image.
        written (dict): output path -> the input that wrote it, shared by the whole run.
        name (str): this input, for messages.
    """
    targets = [res.json_path(save_dir)] + ([res.img_path(save_dir)] if with_img else [])
    for t in targets:
        if t in written:
            return (f'output {t} would overwrite the result of {written[t]}; give the inputs distinct names or '
                    'run them with separate --save-dir')
    done = []
    try:
        if with_img:
            done.append(res.save_to_img(targets[1]))
        done.append(res.save_to_json(targets[0]))
    except (OSError, ValueError) as e:
        for path in done:
            os.remove(path)
        return f'cannot write output: {e}'
    for t in targets:
        written[t] = name
    return None
