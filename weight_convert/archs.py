"""The architectures the converter knows: the one table of arch facts (family, input size, config, slot table).

An architecture is a network plus its input size; a zoo model (``kpt_plugin.zoo``) names the weights released for
one. Architectures have their own names (``pp_tinypose_128x96``, ``picodet_s_lcnet_pedestrian_320``); the spellings
earlier releases wrote into ``meta['arch']`` and accepted for ``--arch`` (``PP-TinyPose_128x96``) stay accepted as
aliases. Two families: ``pp_tinypose`` (MMPose pose model) and ``picodet`` (mmdet person detector).
"""
import dataclasses
import re

from .errors import WeightsError

__all__ = ['Arch', 'ARCHS', 'DEFAULT_ARCH', 'DEFAULT_ARCHS', 'FAMILIES', 'get_arch', 'arch_names', 'default_arch',
           'arch_from_input_size', 'guess_arch_from_name', 'family_from_conv_count', 'slot_table', 'pick_table']


@dataclasses.dataclass(frozen=True)
class Arch:
    """One architecture.

    Attributes:
        name: canonical name (``pp_tinypose_128x96``), written to ``meta['arch']``.
        family: name-mapping module in :mod:`weight_convert.families` (``pp_tinypose``).
        input_size: network input ``(w, h)``.
        config: MMPose / mmdet config, relative to the kpt_plugin source tree (or its installed ``.mim``).
        table: slot-table module in :mod:`weight_convert.tables`.
        aliases: other accepted spellings (names of earlier releases).
        name_pattern: regex that finds this arch in a file or model name (default: ``HxW`` of the input size).
    """

    name: str
    family: str
    input_size: tuple
    config: str
    table: str
    aliases: tuple = ()
    name_pattern: str = None

    def __post_init__(self):
        if self.name_pattern is None:
            w, h = self.input_size
            object.__setattr__(self, 'name_pattern', rf'(?<!\d){h}x{w}(?!\d)')

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
) + tuple(
    # ppdet names the sizes picodet_s_192_lcnet_pedestrian: a lone number (no 'x') in a name saying picodet
    Arch(f'picodet_s_lcnet_pedestrian_{s}', 'picodet', (s, s),
         f'configs/picodet/picodet-s_lcnet-x0.75_pedestrian-{s}.py', 'picodet',
         name_pattern=rf'(?i)picodet.*(?<![\dx]){s}(?![\dx])')
    for s in (192, 320))}

#: the families, in table order
FAMILIES = tuple(dict.fromkeys(a.family for a in ARCHS.values()))
#: per family, the arch used when nothing in the source tells the input size (the sizes share every tensor);
#: PicoDet: 320, the multi-person detector of PP-TinyPose's pipeline (and PaddleX's)
DEFAULT_ARCHS = {'pp_tinypose': 'pp_tinypose_128x96', 'picodet': 'picodet_s_lcnet_pedestrian_320'}
#: used when nothing in the source tells the family either
DEFAULT_ARCH = DEFAULT_ARCHS['pp_tinypose']

_LOOKUP = {n.lower(): a for a in ARCHS.values() for n in (a.name, ) + a.aliases}


def arch_names(aliases=False):
    """Canonical architecture names (plus the aliases when ``aliases``), for ``--arch`` choices."""
    names = list(ARCHS)
    return names + [n for a in ARCHS.values() for n in a.aliases] if aliases else names


def default_arch(family=None):
    """The default arch of ``family`` (None: of the default family)."""
    return DEFAULT_ARCHS[family] if family else DEFAULT_ARCH


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
    """The arch whose size appears in ``path`` (a file or model name: ``tinypose_128x96``,
    ``picodet_s_320_lcnet_pedestrian``), else None."""
    for a in ARCHS.values():
        if family in (None, a.family) and re.search(a.name_pattern, str(path)):
            return a.name
    return None


def family_from_conv_count(count):
    """The family whose networks have ``count`` convolutions (every family's count differs), else None."""
    for fam in FAMILIES:
        if len(slot_table(family=fam)) == count:
            return fam
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


def pick_table(table=None, family=None, arch=None, conv_count=None):
    """``(family, slot table)`` a reader fills: the given table (and its family), else the arch's, else the
    family's, else the family with ``conv_count`` convolutions, else the default family's."""
    if table is not None:
        return family or next(a.family for a in ARCHS.values() if a.table == table.name), table
    if arch is not None:
        return get_arch(arch).family, get_arch(arch).slots
    if family is None and conv_count is not None:
        family = family_from_conv_count(conv_count)
    family = family or ARCHS[DEFAULT_ARCH].family
    return family, slot_table(family=family)
