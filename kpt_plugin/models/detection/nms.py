"""Paddle's ``multiclass_nms3`` (ppdet ``MultiClassNMS``) in plain PyTorch, no compiled ops.

Semantics reproduced from Paddle's CPU kernel, because they decide which boxes survive:

* a candidate needs ``score > score_threshold`` (strict); candidates are ordered by score with a **stable**
  sort (ties keep box order) and cut to ``nms_top_k`` per class;
* a candidate is dropped when its IoU with a kept box of its class is **not** ``<= nms_threshold`` (so IoU
  exactly at the threshold is kept, and a NaN IoU - two zero-area boxes - drops it);
* IoU: 0 when the boxes do not touch; ``normalized=True`` measures areas as ``w * h`` (``False`` adds 1 px to
  each side); an inverted box has area 0; all in float32 like the kernel;
* more than ``keep_top_k`` survivors: a stable sort by score over all classes keeps the best;
* output rows ``[label, score, x1, y1, x2, y2]`` grouped by ascending label, each group in NMS keep order.

The greedy pass is vectorised: ``keep[i] = not any(keep[j] and overlap[j, i] for j < i)`` has one solution,
reached by iterating from all-kept until nothing changes (as many rounds as the longest suppression chain).
"""
import torch


def box_iou_paddle(boxes, normalized=True):
    """Pairwise IoU of ``boxes`` (K, 4) with Paddle's ``JaccardOverlap`` arithmetic (float32)."""
    b = boxes.float()
    x1, y1, x2, y2 = (b[:, i] for i in range(4))
    norm = 0. if normalized else 1.
    w, h = x2 - x1, y2 - y1
    area = (w + norm) * (h + norm)
    area = torch.where((x2 < x1) | (y2 < y1), torch.zeros_like(area), area)
    apart = ((x1[None, :] > x2[:, None]) | (x2[None, :] < x1[:, None])
             | (y1[None, :] > y2[:, None]) | (y2[None, :] < y1[:, None]))
    inter_w = torch.minimum(x2[:, None], x2[None, :]) - torch.maximum(x1[:, None], x1[None, :]) + norm
    inter_h = torch.minimum(y2[:, None], y2[None, :]) - torch.maximum(y1[:, None], y1[None, :]) + norm
    inter = inter_w * inter_h
    iou = inter / (area[:, None] + area[None, :] - inter)
    return torch.where(apart, torch.zeros_like(iou), iou)


def nms_fast(boxes, scores, score_threshold, nms_threshold, top_k=-1, normalized=True):
    """Paddle's ``NMSFast`` for one class.

    Args:
        boxes (Tensor): (M, 4) x1y1x2y2.
        scores (Tensor): (M, ).
        score_threshold (float): keep ``score > score_threshold``.
        nms_threshold (float): suppress when IoU is not ``<= nms_threshold``.
        top_k (int): candidates kept before NMS (``-1``: all).
        normalized (bool): area convention (see the module docstring).

    Returns:
        Tensor: kept indices into ``boxes`` (int64), in keep order (descending score).
    """
    scores = scores.float()
    cand = torch.nonzero(scores > torch.tensor(score_threshold, dtype=torch.float32), as_tuple=True)[0]
    order = torch.sort(scores[cand], descending=True, stable=True)[1]
    cand = cand[order]
    if 0 <= top_k < cand.numel():
        cand = cand[:top_k]
    if cand.numel() == 0:
        return cand
    iou = box_iou_paddle(boxes[cand], normalized)
    earlier = torch.ones_like(iou, dtype=torch.bool).triu(1)  # [j, i]: j ranks before i
    suppresses = earlier & ~(iou <= torch.tensor(nms_threshold, dtype=torch.float32))
    keep = torch.ones(cand.numel(), dtype=torch.bool, device=cand.device)
    while True:
        new_keep = ~(suppresses & keep[:, None]).any(0)
        if torch.equal(new_keep, keep):
            return cand[keep]
        keep = new_keep


def multiclass_nms(bboxes, scores, score_threshold=0.05, nms_top_k=-1, keep_top_k=100, nms_threshold=0.5,
                   normalized=True, nms_eta=1.0, background_label=-1):
    """ppdet ``MultiClassNMS`` for one image (defaults are ppdet's class defaults).

    Args:
        bboxes (Tensor): (M, 4) boxes shared by all classes.
        scores (Tensor): (C, M) per-class scores.
        score_threshold, nms_top_k, keep_top_k, nms_threshold, normalized: as Paddle's ``multiclass_nms3``.
        nms_eta (float): only 1.0 (no adaptive threshold) is supported.
        background_label (int): class skipped (``-1``: none).

    Returns:
        tuple[Tensor, Tensor]: ``(dets, index)``: dets (K, 6) float32 ``[label, score, x1, y1, x2, y2]`` in
        Paddle's output order; index (K, ) the row of each det in ``bboxes``.
    """
    if nms_eta != 1.0:
        raise NotImplementedError('multiclass_nms: nms_eta != 1 (adaptive NMS) is not ported')
    labels, keeps = [], []
    for c in range(scores.shape[0]):
        if c == background_label:
            continue
        keep = nms_fast(bboxes, scores[c], score_threshold, nms_threshold, nms_top_k, normalized)
        keeps.append(keep)
        labels.append(torch.full_like(keep, c))
    index = torch.cat(keeps) if keeps else torch.zeros(0, dtype=torch.long, device=bboxes.device)
    label = torch.cat(labels) if labels else index.clone()
    score = scores[label, index].float()
    if 0 <= keep_top_k < index.numel():
        best = torch.sort(score, descending=True, stable=True)[1][:keep_top_k]
        best = best[torch.sort(label[best], stable=True)[1]]  # regroup by class, score order within
        index, label, score = index[best], label[best], score[best]
    dets = torch.cat([label[:, None].float(), score[:, None], bboxes[index].float()], 1)
    return dets, index


def batched_multiclass_nms(bboxes, scores, **cfg):
    """ppdet ``MultiClassNMS.__call__`` on a batch: bboxes (N, M, 4), scores (N, C, M).

    Returns:
        tuple[Tensor, Tensor]: all images' dets concatenated (sum K, 6) and the per-image counts (N, ) int32,
        as ppdet's ``(bbox_pred, bbox_num)`` (an image without detections contributes no row).
    """
    dets = [multiclass_nms(b, s, **cfg)[0] for b, s in zip(bboxes, scores)]
    counts = torch.tensor([len(d) for d in dets], dtype=torch.int32)
    return torch.cat(dets) if dets else bboxes.new_zeros((0, 6)), counts
