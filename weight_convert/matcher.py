"""Assign the convolutions of a graph (OpenVINO IR) to the slots of a slot table.

A graph conv is ``dict(weight, bias, names, deps)``: ``names`` is the text of every name the exporters left on it
(Paddle's ``batch_norm2d_K.*`` of its folded BN or ``conv2d_K.w_0``), ``deps`` the ids of its nearest upstream
convs. Named convs are placed through ``.pdiparams.info`` when present, else by creation-order rank; without names
the slots are filled in data-flow order (see :func:`assign_by_dataflow`). Every shape is checked.
"""
import re

__all__ = ['assign_by_dataflow', 'match_graph_convs']


def assign_by_dataflow(table, convs, budget=100000):
    """Order ``convs`` like the slots: shapes equal, upstream convs first; depth-first with backtracking.

    Walks the slots in creation order (= Paddle's op order) and takes, each time, the first graph conv whose shape
    fits and whose upstream convs are all placed: a topological order constrained by the shapes, which undoes a
    serializer's reordering of independent branches. Parallel convs of equal shape on the same input (fuse paths
    0->1 and 0->2) are told apart by what follows them: backtrack when a later slot finds no candidate.

    Returns:
        list | None: the convs in slot order, or None when no order fits (within ``budget`` steps).
    """
    slots = table.slots
    placed, order, steps = set(), [], 0
    stack = [0]  # index into the candidate list of the current slot
    cands_at = []
    while len(order) < len(slots):
        i = len(order)
        if len(cands_at) <= i:
            cands_at.append([c for c in convs if id(c) not in placed and tuple(c['weight'].shape) == slots[i].shape
                             and c['deps'] <= placed])
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


def _by_names(table, convs, info_table):
    """``{slot index: conv}`` from the Paddle names on the convs, or None when they do not name every slot."""
    slots = table.slots
    keyed = []
    for c in convs:
        bn = re.findall(r'batch_norm2d_(\d+)\.', c['names'])
        cv = re.findall(r'(?<![\w])conv2d_(\d+)\.w_0', c['names'])
        keyed.append(('bn', int(bn[0])) if bn else ('conv', int(cv[0])) if cv else None)
    if len(convs) != len(slots) or not all(keyed) or len(set(keyed)) != len(keyed):
        return None
    by_slot = {}
    if info_table:
        index = {s.conv: i for i, s in enumerate(slots)}
        index.update({s.norm: i for i, s in enumerate(slots) if s.norm})
        for c, (kind, k) in zip(convs, keyed):
            entry = info_table.get(f'batch_norm2d_{k}.w_0' if kind == 'bn' else f'conv2d_{k}.w_0')
            sname = entry.get('structured_name', '') if isinstance(entry, dict) else ''
            if sname.rsplit('.', 1)[0] in index:
                by_slot[index[sname.rsplit('.', 1)[0]]] = c
    else:
        bn_rank = {k: i for i, k in enumerate(sorted(k for kind, k in keyed if kind == 'bn'))}
        cv_rank = {k: i for i, k in enumerate(sorted(k for kind, k in keyed if kind == 'conv'))}
        norm_slots = [i for i, s in enumerate(slots) if s.norm]
        plain_slots = [i for i, s in enumerate(slots) if not s.norm]
        if len(bn_rank) == len(norm_slots) and len(cv_rank) == len(plain_slots):
            for c, (kind, k) in zip(convs, keyed):
                by_slot[norm_slots[bn_rank[k]] if kind == 'bn' else plain_slots[cv_rank[k]]] = c
    return by_slot if len(by_slot) == len(slots) else None


def match_graph_convs(table, convs, source, info_table=None):
    """Graph convs -> ppdet state (folded BNs as identity BNs); raises ``WeightsError`` when they do not fit."""
    by_slot = _by_names(table, convs, info_table)
    if by_slot is not None:
        ordered = [by_slot[i] for i in range(len(table))]
    else:
        # no order fits: fall back to graph order so that the shape check names the first conv that differs
        ordered = assign_by_dataflow(table, convs) or convs
    return table.folded_state([(c['weight'], c['bias']) for c in ordered], source)
