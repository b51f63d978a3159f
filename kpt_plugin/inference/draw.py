"""Skeleton drawing as PaddleX's keypoint results look: its 17 COCO edges and colours, joints below 0.1 not drawn,
no boxes; widths grow with the image (PaddleX's 1-px sticks and 2-px dots vanish on large photos)."""
import math

import cv2
import numpy as np

__all__ = ['COCO_EDGES', 'PALETTE', 'VISUAL_THRESH', 'draw_skeletons']

#: COCO-17 limbs (joint index pairs), PaddleX's drawing order
COCO_EDGES = ((0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 8), (7, 9), (8, 10), (5, 11), (6, 12),
              (11, 13), (12, 14), (13, 15), (14, 16), (11, 12))
#: one colour per joint and per edge index (BGR as drawn; PaddleX's 18-step hue ramp)
PALETTE = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
           (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
           (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))
#: PaddleX's ``visual_thresh``: joints (and edges touching them) scored below it are not drawn
VISUAL_THRESH = 0.1


def _widths(img):
    # PaddleX's sizes (dot radius 2, stick half-width 1) on a 640-px image, proportionally larger above
    s = max(1.0, max(img.shape[:2]) / 640.0)
    return max(2, int(round(2 * s))), max(1, int(round(1 * s)))


def draw_skeletons(img_bgr, skeletons, thresh=VISUAL_THRESH):
    """Draw persons' keypoints on a copy of ``img_bgr``.

    Args:
        img_bgr (np.ndarray): H x W x 3 uint8.
        skeletons: (P, 17, 3) ``[x, y, score]`` per person (image pixels).
        thresh (float): joints scored below this are skipped, with their edges.

    Returns:
        np.ndarray: the drawn image (BGR uint8).
    """
    canvas = np.ascontiguousarray(img_bgr).copy()
    sk = np.asarray(skeletons, dtype=np.float64).reshape(-1, 17, 3)
    if not len(sk):
        return canvas
    radius, half = _widths(canvas)
    for i in range(17):
        for person in sk:
            if person[i, 2] >= thresh and np.isfinite(person[i, :2]).all():
                cv2.circle(canvas, (int(person[i, 0]), int(person[i, 1])), radius, PALETTE[i], thickness=-1,
                           lineType=cv2.LINE_AA)
    for e, (a, b) in enumerate(COCO_EDGES):
        for person in sk:
            if person[a, 2] < thresh or person[b, 2] < thresh or not np.isfinite(person[[a, b], :2]).all():
                continue
            (xa, ya), (xb, yb) = person[a, :2], person[b, :2]
            length = math.hypot(xa - xb, ya - yb)
            angle = math.degrees(math.atan2(ya - yb, xa - xb))
            poly = cv2.ellipse2Poly((int((xa + xb) / 2), int((ya + yb) / 2)), (int(length / 2), half), int(angle),
                                    0, 360, 1)
            # a translucent stick (60 %), blended only where it lies
            x, y, w, h = cv2.boundingRect(poly)
            x0, y0 = max(x, 0), max(y, 0)
            x1, y1 = min(x + w, canvas.shape[1]), min(y + h, canvas.shape[0])
            if x1 <= x0 or y1 <= y0:
                continue
            roi = canvas[y0:y1, x0:x1]
            stick = roi.copy()
            cv2.fillConvexPoly(stick, poly - (x0, y0), PALETTE[e], lineType=cv2.LINE_AA)
            cv2.addWeighted(roi, 0.4, stick, 0.6, 0, dst=roi)
    return canvas
