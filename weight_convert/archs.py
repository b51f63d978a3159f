"""The architectures the converter knows: the one table of arch facts (family, input size, config, slot table).

An architecture is a network plus its input size; a zoo model (``kpt_plugin.zoo``) names the weights released for
one. Architectures have their own names (``pp_tinypose_128x96``); the spellings earlier releases wrote into
``meta['arch']`` and accepted for ``--arch`` (``PP-TinyPose_128x96``) stay accepted as aliases.
"""
import dataclasses
import re

from .errors import WeightsError

__all__ = ['Arch', 'ARCHS', 'DEFAULT_ARCH', 'get_arch', 'arch_names', 'arch_from_input_size', 'guess_arch_from_name',
           'slot_table']


@dataclasses.dataclass(frozen=True)
class Arch:
    """One architecture.

    Attributes:
        name: canonical name (``pp_tinypose_128x96``), written to ``meta['arch']``.
        family: name-mapping module in :mod:`weight_convert.families` (``pp_tinypose``).
        input_size: network input ``(w, h)``.
        config: MMPose config, relative to the kpt_plugin source tree (or its installed ``.mim``).
        table: slot-table module in :mod:`weight_convert.tables`.
        aliases: other accepted spellings (names of earlier releases).
    """

    name: str
    family: str
    input_size: tuple
    config: str
    table: str
    aliases: tuple = ()

    @property
    def slots(self):
        """The :class:`~weight_convert.tables.SlotTable` of this architecture."""
        from . import tables
        return tables.load(self.table)


ARCHS = {a.name: a for a in (
    Arch('pp_tinypose_128x96', 'pp_tinypose', (96, 128),
         'configs/pp_tinypose/td-hm_pp-tinypose_4xb512-420e_aic-coco-128x96.py', 'pp_tinypose',
         aliases=('PP-TinyPose_128x96', )),
    Arch('pp_tinypose_256x192', 'pp_tinypose', (192, 256),
         'configs/pp_tinypose/td-hm_pp-tinypose_4xb128-420e_aic-coco-256x192.py', 'pp_tinypose',
         aliases=('PP-TinyPose_256x192', )),
)}

#: used when nothing in the source tells the input size (both PP-TinyPose sizes share every tensor)
DEFAULT_ARCH = 'pp_tinypose_128x96'

_LOOKUP = {n.lower(): a for a in ARCHS.values() for n in (a.name, ) + a.aliases}


def arch_names(aliases=False):
    """Canonical architecture names (plus the aliases when ``aliases``), for ``--arch`` choices."""
    names = list(ARCHS)
    return names + [n for a in ARCHS.values() for n in a.aliases] if aliases else names


def get_arch(name):
    """The :class:`Arch` of a canonical name or alias (case-insensitive).

    Raises:
        WeightsError: unknown name (the message lists the choices).
    """
    if isinstance(name, Arch):
        return name
    arch = _LOOKUP.get(str(name).lower())
    if arch is None:
        raise WeightsError(f'unknown arch {name!r}; choose one of {", ".join(ARCHS)}')
    return arch


def arch_from_input_size(w, h, family=None):
    """The arch of ``family`` (any when None) with input ``(w, h)``, else None (unknown or dynamic size)."""
    try:
        w, h = int(w), int(h)
    except (TypeError, ValueError):
        return None
    for a in ARCHS.values():
        if a.input_size == (w, h) and family in (None, a.family):
            return a.name
    return None


def guess_arch_from_name(path, family=None):
    """The arch whose ``HxW`` (``128x96``) appears in ``path`` (a file or model name), else None."""
    for a in ARCHS.values():
        w, h = a.input_size
        if family in (None, a.family) and re.search(rf'(?<!\d){h}x{w}(?!\d)', str(path)):
            return a.name
    return None


def slot_table(arch=None, family=None):
    """The slot table for reading weights of ``arch`` or, without it, of ``family`` (default: the default arch's).

    Raises:
        WeightsError: the family's archs do not share one table (pass ``arch``).
    """
    if arch is not None:
        return get_arch(arch).slots
    family = family or ARCHS[DEFAULT_ARCH].family
    names = {a.table for a in ARCHS.values() if a.family == family}
    if len(names) != 1:
        raise WeightsError(f'family {family!r}: {"no" if not names else "several"} slot tables; pass the arch')
    from . import tables
    return tables.load(names.pop())
