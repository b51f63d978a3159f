"""Static tensor-slot tables: which convs (and BatchNorms) a network has, in creation order, with their shapes.

Readers of graph formats (OpenVINO, ncnn, Paddle programs without names) fill these slots; the converter checks
weights against them. A table is data (one module per network in this package), so learning the tensor names
needs no model build: a test compares each table with the built MMPose model.
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


class Slot(collections.namedtuple('Slot', 'conv norm shape')):
    """One conv: ppdet prefix of the conv, of its BatchNorm (None: no BN, the conv has a bias), weight shape."""

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
    """The slots of one network, parsed from a table module's ``TABLE`` text.

    Attributes:
        name: table module name (``pp_tinypose``).
        description: what the network is, for error messages.
        slots: tuple of :class:`Slot` in creation order.
    """

    def __init__(self, name, description, text):
        self.name, self.description = name, description
        slots = []
        for line in text.strip().splitlines():
            conv, norm, shape = line.split()
            slots.append(Slot(conv, None if norm == '-' else norm, tuple(int(d) for d in shape.split('x'))))
        self.slots = tuple(slots)

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

    def source_shapes(self):
        """``{ppdet name: shape}`` of every tensor, slot by slot (conv first)."""
        out = collections.OrderedDict()
        for s in self.slots:
            out.update(s.shapes())
        return out

    def paddle_framework_names(self):
        """``{ppdet name: Paddle framework name}`` as ``paddle.save`` records them (``conv2d_K.w_0``,
        ``batch_norm2d_K.w_1`` ...; ppdet creates ``conv2d_K`` together with ``batch_norm2d_K``)."""
        table = {}
        for k, s in enumerate(self.slots):
            table[s.conv + '.weight'] = f'conv2d_{k}.w_0'
            table[s.conv + '.bias'] = f'conv2d_{k}.b_0'
            if s.norm:
                for key, fw in zip(_BN_KEYS, ('w_0', 'b_0', 'w_1', 'w_2')):
                    table[f'{s.norm}.{key}'] = f'batch_norm2d_{k}.{fw}'
        return table

    def paddle_order(self, state):
        """Keys of ``state`` in ppdet's own state-dict order (ConvNormLayer lists its norm before its conv; a plain
        Sequential conv + BN lists the conv first), unknown keys last."""
        order = []
        for s in self.slots:
            conv = [s.conv + '.weight', s.conv + '.bias']
            norm = [f'{s.norm}.{k}' for k in _BN_KEYS] if s.norm else []
            order += norm + conv if s.conv.endswith('.conv') else conv + norm
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
    return SlotTable(name, mod.DESCRIPTION, mod.TABLE)
