"""COCO box mAP with pycocotools (its prints silenced), plus the per-detection match table for bootstrapping."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .decode import Detections


@dataclass
class MatchTable:
    """pycocotools' per-image matches (area "all", last maxDets), sorted like its ``accumulate``:
    by category, then by descending score (stable over image order); each category is cut after its
    last true positive."""

    seg: np.ndarray  # [D] category index of each detection (non-decreasing)
    img: np.ndarray  # [D] image index of each detection
    tp: np.ndarray  # [T,D] bool: matched and not ignored
    fp: np.ndarray  # [T,D] bool: unmatched and not ignored
    npig: np.ndarray  # [K,I] non-ignored ground truths per category and image
    rec_thrs: np.ndarray  # [R]
    iou_thrs: np.ndarray  # [T]


@dataclass
class CocoScore:
    """mAP50-95 and mAP50 (pycocotools ``stats[0]``, ``stats[1]``) and the match table behind them."""

    map50_95: float
    map50: float
    table: MatchTable | None = None


def detections_to_coco(dets: Sequence[Detections], image_ids: Sequence[int], cats: np.ndarray) -> list[dict]:
    """COCO result records (xywh boxes, COCO category ids) for per-image detections."""
    out = []
    for img_id, d in zip(image_ids, dets):
        xywh = d.boxes.astype(np.float64).copy()
        xywh[:, 2:] -= xywh[:, :2]
        out += [
            {"image_id": int(img_id), "category_id": int(c), "bbox": b, "score": float(s)}
            for b, s, c in zip(xywh.round(3).tolist(), d.scores.tolist(), cats[d.classes])
        ]
    return out


def evaluate_coco(gt: dict, results: list[dict], image_ids: Sequence[int]) -> CocoScore:
    """Box mAP of ``results`` against the COCO dataset dict ``gt`` over ``image_ids``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not gt["annotations"]:
        return CocoScore(float("nan"), float("nan"))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if not results:
            return CocoScore(0.0, 0.0)
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return CocoScore(float(ev.stats[0]), float(ev.stats[1]), match_table(ev))


def match_table(ev) -> MatchTable:  # noqa: ANN001 - a pycocotools COCOeval after evaluate()
    """Flatten ``ev.evalImgs`` (area "all", last maxDets) into sorted arrays."""
    p = ev.params
    n_img, n_area, max_det = len(p.imgIds), len(p.areaRng), p.maxDets[-1]
    n_t = len(p.iouThrs)
    npig = np.zeros((len(p.catIds), n_img), np.int64)
    segs, imgs, tps, fps = [], [], [], []
    for k in range(len(p.catIds)):
        scores, img, dtm, dtig = [], [], [], []
        for i in range(n_img):
            e = ev.evalImgs[k * n_area * n_img + i]
            if e is None:
                continue
            npig[k, i] = int(np.count_nonzero(e["gtIgnore"] == 0))
            s = np.asarray(e["dtScores"][:max_det])
            scores.append(s)
            img.append(np.full(len(s), i))
            dtm.append(e["dtMatches"][:, :max_det])
            dtig.append(e["dtIgnore"][:, :max_det])
        if not scores:
            continue
        order = np.argsort(-np.concatenate(scores), kind="mergesort")
        m, ig = np.concatenate(dtm, 1)[:, order], np.concatenate(dtig, 1)[:, order].astype(bool)
        tp = (m > 0) & ~ig
        # detections after the category's last true positive never change its AP, under any image weights
        last = int(np.nonzero(tp.any(0))[0].max(initial=-1)) + 1
        segs.append(np.full(last, k))
        imgs.append(np.concatenate(img)[order][:last])
        tps.append(tp[:, :last])
        fps.append(((m == 0) & ~ig)[:, :last])
    cat = lambda xs, shape: np.concatenate(xs, -1) if xs else np.zeros(shape, bool)  # noqa: E731
    return MatchTable(
        seg=cat(segs, (0,)).astype(np.int64),
        img=cat(imgs, (0,)).astype(np.int64),
        tp=cat(tps, (n_t, 0)),
        fp=cat(fps, (n_t, 0)),
        npig=npig,
        rec_thrs=np.asarray(p.recThrs),
        iou_thrs=np.asarray(p.iouThrs),
    )


def weighted_map(table: MatchTable, weights: np.ndarray) -> tuple[float, float]:
    """mAP50-95 and mAP50 with image ``i`` counted ``weights[i]`` times: pycocotools' ``accumulate``,
    vectorised over categories (with all weights 1 it reproduces ``stats[0]``/``stats[1]``)."""
    n_gt = table.npig @ weights  # [K]
    valid = n_gt > 0
    if not valid.any():
        return float("nan"), float("nan")
    ap = np.zeros((len(table.iou_thrs), len(n_gt)))
    if table.seg.size:
        seg = table.seg
        w = weights[table.img].astype(np.float64)
        ctp, cfp = _segment_cumsum(table.tp * w, seg), _segment_cumsum(table.fp * w, seg)
        denom = n_gt[seg]
        rc = np.divide(ctp, denom, out=np.zeros_like(ctp), where=denom > 0)
        pr = ctp / (ctp + cfp + np.spacing(1))
        ap += _precision_at_recalls(rc, pr, seg, len(n_gt), table.rec_thrs)
    ap = ap[:, valid]
    return float(ap.mean()), float(ap[np.isclose(table.iou_thrs, 0.5)].mean())


def _segment_cumsum(x: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Cumulative sum along the last axis, restarting where ``seg`` changes."""
    cs = np.cumsum(x, axis=-1)
    starts = np.r_[0, np.nonzero(np.diff(seg))[0] + 1]
    base = np.where(starts > 0, cs[:, np.maximum(starts - 1, 0)], 0.0)
    return cs - np.repeat(base, np.diff(np.r_[starts, seg.size]), axis=-1)


def _precision_at_recalls(rc: np.ndarray, pr: np.ndarray, seg: np.ndarray, n_cat: int, rec_thrs: np.ndarray) -> np.ndarray:
    """[T,K] mean interpolated precision over ``rec_thrs`` per category (0 for categories without detections)."""
    n_t, d = rc.shape
    offset = 2.0 * (n_cat - seg)  # grows along the reversed array: the running max cannot leak across categories
    env = np.maximum.accumulate((pr + offset)[:, ::-1], axis=1)[:, ::-1] - offset
    cats = np.unique(seg)
    ends = np.searchsorted(seg, cats, side="right")
    q_key = rec_thrs[None, :] + 2.0 * cats[:, None]  # [Kd,R]
    out = np.zeros((n_t, n_cat))
    for t in range(n_t):
        key = rc[t] + 2.0 * seg
        idx = np.searchsorted(key, q_key.ravel(), side="left").reshape(q_key.shape)
        idx = _skip_rounding_ties(idx, rc[t], seg, rec_thrs, ends)
        inside = idx < ends[:, None]
        q = np.where(inside, env[t, np.minimum(idx, d - 1)], 0.0)
        out[t, cats] = q.mean(1)
    return out


def _skip_rounding_ties(idx: np.ndarray, rc: np.ndarray, seg: np.ndarray, rec_thrs: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Where the offset key rounded a recall just below a threshold onto it, move past that run of equal recalls
    (exactly what ``np.searchsorted(rc, thr, "left")`` on the un-offset category gives)."""
    d = rc.size
    safe = np.minimum(idx, d - 1)
    low = (idx < ends[:, None]) & (rc[safe] < rec_thrs[None, :])
    if not low.any():
        return idx
    change = np.r_[(rc[1:] != rc[:-1]) | (seg[1:] != seg[:-1]), True]
    run_ends = np.nonzero(change)[0]
    run_end = run_ends[np.searchsorted(run_ends, np.arange(d))] + 1
    return np.where(low, run_end[safe], idx)
