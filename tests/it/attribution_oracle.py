"""Oracle for driftd's feature-attribution drift: scikit-learn's ndcg_score on the baseline's
global attributions (gains) ranked by the live ones (scores), features missing on one side as 0
(the formula written out with numpy where a median makes a gain negative, which scikit-learn
refuses), and Clarify's aggregations computed with numpy from the raw per-record values.

stdin: {"cases": [{"baseline": {f: a}, "live": {f: a}}],
        "windows": [{"agg": "mean_abs"|"mean_sq"|"median", "baseline": {f: [v…]}, "live": {f: [v…]}}]}
stdout: {"ndcg": [x or null per case], "windows": [{"baseline": {f: a}, "live": {f: a}, "ndcg": x}]}
"""
import json
import sys

import numpy as np
from sklearn.metrics import ndcg_score


def ndcg_formula(gains, scores):
    """FORMATS.md §8 written out, for gains scikit-learn refuses (a median can be negative):
    discounts 1/log2(i+1) over the live order, a tied group sharing its mean gain."""
    discounts = 1.0 / np.log2(np.arange(len(gains)) + 2.0)
    order = np.argsort(-scores, kind="stable")
    dcg = 0.0
    for score in np.unique(scores)[::-1]:
        positions = np.nonzero(scores[order] == score)[0]
        dcg += gains[scores == score].mean() * discounts[positions].sum()
    idcg = (np.sort(gains)[::-1] * discounts).sum()
    return float(dcg / idcg) if idcg != 0 else 0.0


def ndcg(baseline, live):
    features = list(dict.fromkeys(list(baseline) + list(live)))
    if len(features) < 2:
        return None
    gains = np.array([baseline.get(f, 0.0) for f in features])
    scores = np.array([live.get(f, 0.0) for f in features])
    if (gains < 0).any():
        return ndcg_formula(gains, scores)
    return float(ndcg_score(gains[np.newaxis], scores[np.newaxis]))


AGGREGATIONS = {
    "mean_abs": lambda v: float(np.mean(np.abs(v))),
    "mean_sq": lambda v: float(np.mean(np.square(v))),
    "median": lambda v: float(np.median(v)),
}

request = json.load(sys.stdin)
answer = {"ndcg": [ndcg(c["baseline"], c["live"]) for c in request.get("cases", [])], "windows": []}
for window in request.get("windows", []):
    agg = AGGREGATIONS[window["agg"]]
    baseline = {f: agg(np.array(v)) for f, v in window["baseline"].items()}
    live = {f: agg(np.array(v)) for f, v in window["live"].items()}
    answer["windows"].append({"baseline": baseline, "live": live, "ndcg": ndcg(baseline, live)})
print(json.dumps(answer))
