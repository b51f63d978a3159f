"""The request's ``image`` field (an http(s) URL or Base64 of an image file) -> BGR uint8 pixels.

Reuses :mod:`kpt_plugin.inference.inputs` so the server applies the library's limits and messages:
``KPT_PLUGIN_MAX_BYTES`` (file or download size), ``KPT_PLUGIN_URL_TIMEOUT`` (whole download),
``KPT_PLUGIN_MAX_PIXELS`` (checked from the header, before decoding allocates the pixels).
"""
import base64
import binascii
import re

from ..errors import InputError
from ..inference.inputs import _read_url, decode_image, limit

__all__ = ['read_image_field']

_SCHEME = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://')
_DATA_URL = re.compile(r'^data:[\w/+.-]*(;[\w=.-]+)*;base64,', re.ASCII)


def _short(s, n=40):
    return repr(s[:n]) + ('...' if len(s) > n else '')


def _b64decode(value):
    """Strict Base64 (whitespace, e.g. from ``base64`` line wrapping, and a ``data:...;base64,`` prefix allowed)."""
    m = _DATA_URL.match(value)
    s = value[m.end():] if m else value
    cap = limit('KPT_PLUGIN_MAX_BYTES')
    # refuse before decoding allocates (4 characters carry 3 bytes; 10 % slack for line breaks), exactly after
    if len(s) > (cap + 2) // 3 * 4 * 1.1 + 1024:
        raise InputError(f'image: about {len(s) // 4 * 3} bytes (decoded) exceed the limit of {cap} bytes for one '
                         'image (KPT_PLUGIN_MAX_BYTES)')
    data = _strict_b64(value, s)
    if len(data) > cap:
        raise InputError(f'image: {len(data)} bytes (decoded) exceed the limit of {cap} bytes for one image '
                         '(KPT_PLUGIN_MAX_BYTES)')
    return data


def _strict_b64(value, s):
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        err = e
    compact = ''.join(s.split())
    if len(compact) != len(s):
        try:
            return base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError) as e:
            err = e
    raise InputError(f'image: {_short(value)} is neither an http(s) URL nor valid Base64 ({err}); send '
                     'base64.b64encode(open(path, "rb").read()).decode() or an http(s) URL') from None


def read_image_field(value, allow_urls=True):
    """Pixels of the request's ``image``: downloads a URL or decodes Base64, then decodes the image file.

    Args:
        value (str): the field.
        allow_urls (bool): False refuses URLs (a server that must not fetch what clients name).

    Raises:
        InputError: every problem (one line naming the problem and the limit or fix).
    """
    if not value:
        raise InputError('image: empty; give an http(s) URL or the Base64 of an image file')
    if value.startswith(('http://', 'https://')):
        if not allow_urls:
            raise InputError('image: this server does not fetch URLs (--no-url-inputs); send the Base64 of the '
                             'image file')
        return decode_image(_read_url(value), value)
    if _SCHEME.match(value):
        raise InputError(f'image: the {value.split(":", 1)[0]}:// scheme is not supported; give an http(s) URL or '
                         'the Base64 of the image file')
    return decode_image(_b64decode(value), 'image')
