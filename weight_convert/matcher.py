"""Assign the convolutions of a graph (OpenVINO IR) to the slots of a slot table.

A graph conv is ``dict(weight, bias, names, deps)``: ``names`` is the text of every name the exporters left on it
(Paddle's ``batch_norm2d_K.*`` of its folded BN or ``conv2d_K.w_0``), ``deps`` the ids of its nearest upstream
convs. Named convs are placed through ``.pdiparams.info`` when present, else by creation-order rank (the table's
Paddle numbers); the convs left without names are placed in data-flow order (see :func:`assign_by_dataflow`).
Every shape is checked.
"""
import re

from .errors import WeightsError

__all__ = ['assign_by_dataflow', 'match_graph_convs']


def assign_by_dataflow(table, convs, budget=100000, fixed=None):
    """Order ``convs`` like the slots: shapes equal, upstream convs first; depth-first with backtracking.

    Walks the slots in execution order and takes, each time, the first graph conv whose shape fits and whose
    upstream convs are placed: a topological order constrained by the shapes, which undoes a serializer's
    reordering of independent branches. When the table lists each slot's upstream convs (``table.has_deps``), a
    conv must read exactly the convs placed in those slots: parallel branches of one shape (PicoDet's four head
    levels, its two top convs) are told apart by their inputs. Otherwise parallel convs of equal shape on the same
    input (fuse paths 0->1 and 0->2) are told apart by what follows them: backtrack when a later slot finds none.

    Args:
        fixed (dict, optional): ``{slot index: conv}`` already placed by name; checked like the others.

    Returns:
        list | None: the convs in slot order, or None when no order fits (within ``budget`` steps).
    """
    slots, fixed = table.slots, fixed or {}
    pos = {s.conv_k: i for i, s in enumerate(slots)}
    taken = {id(c) for c in fixed.values()}
    placed, order, steps = set(), [], 0
    stack = [0]  # index into the candidate list of the current slot
    cands_at = []

    def fits(c, i):
        if tuple(c['weight'].shape) != slots[i].shape:
            return False
        if slots[i].deps is None:
            return c['deps'] <= placed
        return c['deps'] == {id(order[pos[k]]) for k in slots[i].deps}

    while len(order) < len(slots):
        i = len(order)
        if len(cands_at) <= i:
            pool = [fixed[i]] if i in fixed else [c for c in convs if id(c) not in placed and id(c) not in taken]
            cands_at.append([c for c in pool if fits(c, i)])
        k = stack[-1]
        steps += 1
        if k < len(cands_at[i]) and steps < budget:
            pick = cands_at[i][k]
            placed.add(id(pick))
            order.append(pick)
            stack.append(0)
            continue
        if not order or steps >= budget:
            return None
        cands_at.pop()
        stack.pop()
        placed.discard(id(order.pop()))
        stack[-1] += 1
    return order


def _keys(convs):
    """Per conv ``('bn', K)`` / ``('conv', K)`` from the Paddle names on it, or None."""
    keyed = []
    for c in convs:
        bn = re.findall(r'batch_norm2d_(\d+)\.', c['names'])
        cv = re.findall(r'(?<![\w])conv2d_(\d+)\.w_0', c['names'])
        keyed.append(('bn', int(bn[0])) if bn else ('conv', int(cv[0])) if cv else None)
    return keyed


def _by_names(table, convs, info_table):
    """``{slot index: conv}`` from the Paddle names on the convs (possibly only some slots), or None."""
    slots = table.slots
    keyed = _keys(convs)
    named = [k for k in keyed if k]
    if len(convs) != len(slots) or not named or len(set(named)) != len(named):
        return None
    index = {s: i for i, s in enumerate(slots)}
    by_slot = {}
    if info_table:
        if not all(keyed):
            return None
        prefix = {s.conv: i for i, s in enumerate(slots)}
        prefix.update({s.norm: i for i, s in enumerate(slots) if s.norm})
        for c, (kind, k) in zip(convs, keyed):
            entry = info_table.get(f'batch_norm2d_{k}.w_0' if kind == 'bn' else f'conv2d_{k}.w_0')
            sname = entry.get('structured_name', '') if isinstance(entry, dict) else ''
            if sname.rsplit('.', 1)[0] in prefix:
                by_slot[prefix[sname.rsplit('.', 1)[0]]] = c
        return by_slot if len(by_slot) == len(slots) else None
    # rank against rank: a numbering that starts elsewhere than 0 still fits
    for kind, ordered in (('bn', table.norm_creation_order()),
                          ('conv', [s for s in table.creation_order() if not s.norm])):
        mine = sorted((key[1], n) for n, key in enumerate(keyed) if key and key[0] == kind)
        if len(mine) == len(ordered):
            by_slot.update((index[s], convs[n]) for s, (_, n) in zip(ordered, mine))
    if len(by_slot) == len(slots) or (by_slot and table.has_deps):
        return by_slot
    return None


def match_graph_convs(table, convs, source, info_table=None):
    """Graph convs -> ppdet state (folded BNs as identity BNs); raises ``WeightsError`` when they do not fit."""
    by_slot = _by_names(table, convs, info_table)
    if by_slot is not None and len(by_slot) == len(table):
        ordered = [by_slot[i] for i in range(len(table))]
    else:
        ordered = assign_by_dataflow(table, convs, fixed=by_slot)
        if ordered is None and table.has_deps and len(convs) == len(table):
            # shapes may fit in graph order while the data flow does not: never guess
            raise WeightsError(f'{source}: the {len(convs)} convolutions do not connect like those of '
                               f'{table.description}. {table.not_this_model()}')
        # no order fits: fall back to graph order so that the shape check names the first conv that differs
        ordered = ordered or convs
    return table.folded_state([(c['weight'], c['bias']) for c in ordered], source)
