"""Static tensor-slot tables: which convs (and BatchNorms) a network has, in execution order, with their shapes.

Readers of graph formats (OpenVINO, ncnn, Paddle programs without names) fill these slots; the converter checks
weights against them. A table is data (one module per network in this package), so learning the tensor names
needs no model build: a test compares each table with the built model.

A table module defines ``DESCRIPTION``, ``TABLE`` (one line per conv) and optionally ``BUFFERS``. A ``TABLE`` line is
``conv_prefix norm_prefix shape`` (``-``: no BatchNorm; such a conv has a bias) when Paddle creates the convs in the
order they run (``conv2d_K`` / ``batch_norm2d_K`` = line K), else ``conv_prefix norm_prefix shape K BN_K DEPS``:
Paddle's creation numbers of the conv and its BatchNorm, and the creation numbers of the nearest convs upstream
(``-``: it reads the network input), which the data-flow matcher then requires exactly. ``BUFFERS`` lines are
``name value value ...``: non-trainable tensors of the state dict (fixed by the architecture).
"""
import collections
import functools
import importlib

import numpy as np

from ..errors import WeightsError

__all__ = ['BN_EPS', 'Slot', 'SlotTable', 'load']

#: BatchNorm epsilon of the Paddle models (ppdet's ConvNormLayer / nn.BatchNorm2D default)
BN_EPS = 1e-5
# identity BN carrying a folded bias: BN(x) = (x - 0) / sqrt(1 - eps + eps) * 1 + b == x + b exactly in float32
_IDENTITY_VAR = np.float32(1.0 - BN_EPS)
_BN_KEYS = ('weight', 'bias', '_mean', '_variance')


class Slot(collections.namedtuple('Slot', 'conv norm shape conv_k bn_k deps', defaults=(None, None, None))):
    """One conv: ppdet prefix of the conv, of its BatchNorm (None: no BN, the conv has a bias), weight shape,
    Paddle creation numbers (``conv2d_K``, ``batch_norm2d_K``) and upstream convs (creation numbers; None: unknown).
    """

    __slots__ = ()

    def source_keys(self):
        """ppdet tensor names of this slot, conv first."""
        conv = [self.conv + '.weight'] + ([] if self.norm else [self.conv + '.bias'])
        return conv + ([f'{self.norm}.{k}' for k in _BN_KEYS] if self.norm else [])

    def shapes(self):
        """``{ppdet name: shape}`` of this slot."""
        out_c = self.shape[0]
        return {k: (self.shape if k == self.conv + '.weight' else (out_c, )) for k in self.source_keys()}


class SlotTable:
    """The slots of one network, parsed from a table module's ``TABLE`` (and ``BUFFERS``) text.

    Attributes:
        name: table module name (``pp_tinypose``).
        description: what the network is, for error messages.
        slots: tuple of :class:`Slot` in execution order.
        buffers: ``{ppdet name: float32 array}``, the fixed non-conv tensors.
    """

    def __init__(self, name, description, text, buffers=''):
        self.name, self.description = name, description
        slots = []
        for i, line in enumerate(text.strip().splitlines()):
            fields = line.split()
            conv, norm, shape = fields[0], None if fields[1] == '-' else fields[1], fields[2]
            shape = tuple(int(d) for d in shape.split('x'))
            if len(fields) == 3:
                slots.append(Slot(conv, norm, shape, i, i if norm else None, None))
                continue
            k, bn_k, deps = fields[3:]
            slots.append(Slot(conv, norm, shape, int(k), None if bn_k == '-' else int(bn_k),
                              () if deps == '-' else tuple(int(d) for d in deps.split(','))))
        self.slots = tuple(slots)
        self.buffers = collections.OrderedDict(
            (ln.split()[0], np.array([float(v) for v in ln.split()[1:]], np.float32))
            for ln in buffers.strip().splitlines())
        self._check()

    def _check(self):
        # a typo in a table is a bug here, not a user error: fail when the table is first loaded
        ks = [s.conv_k for s in self.slots]
        bns = [s.bn_k for s in self.slots if s.norm]
        problems = [] if len(set(ks)) == len(ks) and len(set(bns)) == len(bns) else ['duplicate creation numbers']
        problems += [f'{s.conv}: BN number without BN or BN without number' for s in self.slots
                     if (s.bn_k is None) != (s.norm is None)]
        seen = set()
        for s in self.slots:
            if s.deps is not None and not set(s.deps) <= seen:
                problems.append(f'{s.conv} reads a conv that runs later')
            seen.add(s.conv_k)
        if problems:
            raise ValueError(f'slot table {self.name}: ' + '; '.join(problems))

    def __len__(self):
        return len(self.slots)

    def __iter__(self):
        return iter(self.slots)

    def __getitem__(self, i):
        return self.slots[i]

    @property
    def with_norm(self):
        """The slots that have a BatchNorm, in order."""
        return [s for s in self.slots if s.norm]

    @property
    def has_deps(self):
        """Whether the table lists each conv's upstream convs (the matcher then requires them exactly)."""
        return all(s.deps is not None for s in self.slots)

    def creation_order(self):
        """The slots sorted by Paddle's ``conv2d_K`` number."""
        return sorted(self.slots, key=lambda s: s.conv_k)

    def norm_creation_order(self):
        """The slots with a BatchNorm sorted by Paddle's ``batch_norm2d_K`` number."""
        return sorted(self.with_norm, key=lambda s: s.bn_k)

    def source_shapes(self):
        """``{ppdet name: shape}`` of every tensor, slot by slot (conv first), then the buffers."""
        out = collections.OrderedDict()
        for s in self.slots:
            out.update(s.shapes())
        out.update((k, v.shape) for k, v in self.buffers.items())
        return out

    def complete_buffers(self, state, source):
        """Add the fixed buffers a source does not hold (graph formats); refuse ones that hold other values."""
        for name, value in self.buffers.items():
            if name not in state:
                state[name] = value.copy()
            elif np.shape(state[name]) == value.shape and not np.array_equal(state[name], value):
                raise WeightsError(f'{source}: {name} holds {np.asarray(state[name]).tolist()}, but '
                                   f'{self.description} fixes it to {value.tolist()}. {self.not_this_model()}')
        return state

    def paddle_framework_names(self):
        """``{ppdet name: Paddle framework name}`` as ``paddle.save`` records them (``conv2d_K.w_0``,
        ``batch_norm2d_K.w_1`` ...), with the table's creation numbers."""
        table = {}
        for s in self.slots:
            table[s.conv + '.weight'] = f'conv2d_{s.conv_k}.w_0'
            table[s.conv + '.bias'] = f'conv2d_{s.conv_k}.b_0'
            if s.norm:
                for key, fw in zip(_BN_KEYS, ('w_0', 'b_0', 'w_1', 'w_2')):
                    table[f'{s.norm}.{key}'] = f'batch_norm2d_{s.bn_k}.{fw}'
        return table

    def paddle_order(self, state):
        """Keys of ``state`` in ppdet's own state-dict order (LiteHRNet's ConvNormLayer, ``.conv`` + ``.norm``, lists
        its norm first; others list the conv first; modules in creation order), buffers, unknown keys last."""
        order = []
        for s in self.creation_order():
            conv = [s.conv + '.weight', s.conv + '.bias']
            norm = [f'{s.norm}.{k}' for k in _BN_KEYS] if s.norm else []
            order += norm + conv if s.conv.endswith('.conv') and s.norm and s.norm.endswith('.norm') else conv + norm
        order += list(self.buffers)
        known = [k for k in order if k in state]
        seen = set(known)
        return known + [k for k in state if k not in seen]

    def not_this_model(self):
        """The question every mismatch message ends with."""
        return f'Is this a {self.description} model?'

    def fill_folded(self, state, slot, weight, bias):
        """Store a conv whose BN was folded into it: conv weight + identity BN carrying ``bias``."""
        state[slot.conv + '.weight'] = np.ascontiguousarray(weight, dtype=np.float32)
        if bias is None:
            bias = np.zeros(weight.shape[0], np.float32)
        bias = np.asarray(bias, np.float32).reshape(-1)
        if slot.norm is None:
            state[slot.conv + '.bias'] = bias
            return
        state[slot.norm + '.weight'] = np.ones_like(bias)
        state[slot.norm + '.bias'] = bias
        state[slot.norm + '._mean'] = np.zeros_like(bias)
        state[slot.norm + '._variance'] = np.full_like(bias, _IDENTITY_VAR)

    def folded_state(self, convs, source):
        """``[(weight, bias)]`` in slot order -> ppdet state with identity BNs; counts and shapes checked."""
        if len(convs) != len(self.slots):
            raise WeightsError(f'{source}: {len(convs)} convolutions found, {self.description} has '
                               f'{len(self.slots)}. {self.not_this_model()}')
        state = collections.OrderedDict()
        for i, (slot, (w, b)) in enumerate(zip(self.slots, convs)):
            if tuple(w.shape) != slot.shape:
                raise WeightsError(f'{source}: conv #{i} has weight shape {tuple(w.shape)} but {self.description} '
                                   f'expects {slot.shape} for {slot.conv}. {self.not_this_model()}')
            self.fill_folded(state, slot, w, b)
        return state


@functools.lru_cache(maxsize=None)
def load(name):
    """The :class:`SlotTable` of module ``weight_convert.tables.<name>`` (parsed once)."""
    mod = importlib.import_module(f'{__name__}.{name}')
    return SlotTable(name, mod.DESCRIPTION, mod.TABLE, getattr(mod, 'BUFFERS', ''))
