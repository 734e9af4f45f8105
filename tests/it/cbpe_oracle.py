# The reference for tests/it/cbpe_oracle.rs: CBPE written from NannyML 0.13.1's definitions with
# numpy and scikit-learn (StratifiedShuffleSplit, IsotonicRegression, the sklearn metrics), on the
# same CSV files driftd estimate reads.
#
# stdin: {"reference", "analysis": CSV paths, "kind": "binary" | "multiclass",
#         "classes": [names, sorted], "columns": [score column per class (binary: one)],
#         "predicted", "truth": column names, "chunk_size": rows}
# stdout: {"calibration": [{"calibrated", "ece_before", "ece_after"}],
#          "chunks": [{"start_row", "end_row", "metrics": {name: {"value", "sampling_error",
#                     "lower_confidence_boundary", "upper_confidence_boundary",
#                     "lower_threshold", "upper_threshold", "alert", "realized"}}}]}
#
# Sorting: the ECE bins and the AUC estimate sort with kind="stable" (numpy's default sort is
# unstable, so its order among equal values is not reproducible; driftd documents the same).
import json
import sys

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedShuffleSplit

request = json.load(sys.stdin)
kind = request["kind"]
classes = request["classes"]
columns = request["columns"]
K = len(classes)


def load(path):
    frame = pd.read_csv(path, dtype={request["predicted"]: str, request["truth"]: str})
    scores = frame[columns].to_numpy(dtype=float)
    predicted = np.array([classes.index(str(v)) for v in frame[request["predicted"]]])
    truth = None
    if request["truth"] in frame.columns:
        truth = np.array([classes.index(str(v)) for v in frame[request["truth"]]])
    return scores, predicted, truth


ref_scores, ref_pred, ref_truth = load(request["reference"])
ana_scores, ana_pred, ana_truth = load(request["analysis"])


def chunks(n, size):
    full = n // size
    if full == 0:
        return [(0, n)]
    ranges = [(i * size, (i + 1) * size) for i in range(full)]
    ranges[-1] = (ranges[-1][0], n)
    return ranges


# --- calibration (nannyml.calibration.needs_calibration) ---
def bin_edges(length, bins):
    if length <= 2 * bins:
        bins = length // 2
    width = length // bins
    edges = list(range(0, length + 1, width))
    edges[-1] = length
    return list(zip(edges[:-1], edges[1:]))


def ece(y, p, edges):
    order = np.argsort(p, kind="stable")
    p, y = p[order], y[order]
    return np.sum(
        [(r - l) / len(p) * abs(np.mean(p[l:r]) - np.mean(y[l:r])) for l, r in edges]
    )


def needs_calibration(y, p):
    if len(np.unique(y)) == 1 or skm.roc_auc_score(y, p) > 0.999:
        return {"calibrated": False, "ece_before": None, "ece_after": None}
    split = StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=42)
    ys, ps, cs = [], [], []
    for train, test in split.split(p, y):
        model = IsotonicRegression(out_of_bounds="clip", increasing=True)
        model.fit(p[train], y[train])
        ys.append(y[test])
        ps.append(p[test])
        cs.append(model.predict(p[test]))
    y, p, c = np.concatenate(ys), np.concatenate(ps), np.concatenate(cs)
    edges = bin_edges(len(p), 10)
    before, after = ece(y, p, edges), ece(y, c, edges)
    return {"calibrated": bool(before > after), "ece_before": before, "ece_after": after}


score_class = [1] if kind == "binary" else list(range(K))
calibration = []
calibrators = []
for column, cls in enumerate(score_class):
    y = (ref_truth == cls).astype(float)
    p = ref_scores[:, column]
    decision = needs_calibration(y, p)
    calibration.append(decision)
    if decision["calibrated"]:
        calibrators.append(IsotonicRegression(out_of_bounds="clip", increasing=True).fit(p, y))
    else:
        calibrators.append(None)


def calibrate(scores):
    out = np.column_stack(
        [
            scores[:, i] if calibrators[i] is None else calibrators[i].predict(scores[:, i])
            for i in range(scores.shape[1])
        ]
    )
    if kind == "multiclass":
        total = out.sum(axis=1)[:, None]
        out = np.divide(out, total, out=np.full_like(out, 1 / K), where=total != 0)
    return out


# --- estimates (nannyml ... confidence_based/metrics.py estimate_*) ---
def expected(pred_pos, p):
    tp = np.sum(np.where(pred_pos, p, 0))
    fp = np.sum(np.where(pred_pos, 1 - p, 0))
    fn = np.sum(np.where(~pred_pos, p, 0))
    tn = np.sum(np.where(~pred_pos, 1 - p, 0))
    return tp, fp, tn, fn


def safe(a, b):
    return a / b if b != 0 else 0.0


def est_auc(p, s):
    order = np.argsort(s, kind="stable")[::-1]
    p = p[order]
    tps = np.cumsum(p)
    fps = 1 + np.arange(len(p)) - tps
    tps = np.round(np.r_[0, tps], 5)
    fps = np.round(np.r_[0, fps], 5)
    return skm.auc(fps / fps[-1], tps / tps[-1])


def estimates(scores, calibrated, pred):
    n = len(pred)
    out = {}
    if kind == "binary":
        p, pos = calibrated[:, 0], pred == 1
        tp, fp, tn, fn = expected(pos, p)
        out["roc_auc"] = est_auc(p, scores[:, 0])
        out["f1"] = safe(tp, tp + 0.5 * (fp + fn))
        out["precision"] = safe(tp, tp + fp)
        out["recall"] = safe(tp, tp + fn)
        out["specificity"] = safe(tn, tn + fp)
        out["accuracy"] = (tp + tn) / n
        out.update(true_positive=tp, false_positive=fp, true_negative=tn, false_negative=fn)
        return out
    per = [expected(pred == c, calibrated[:, c]) for c in range(K)]
    out["roc_auc"] = np.mean([est_auc(calibrated[:, c], scores[:, c]) for c in range(K)])
    out["f1"] = np.mean([safe(tp, tp + 0.5 * (fp + fn)) for tp, fp, tn, fn in per])
    out["precision"] = np.mean([safe(tp, tp + fp) for tp, fp, tn, fn in per])
    out["recall"] = np.mean([safe(tp, tp + fn) for tp, fp, tn, fn in per])
    out["specificity"] = np.mean([safe(tn, tn + fp) for tp, fp, tn, fn in per])
    out["accuracy"] = np.mean(calibrated[np.arange(n), pred])
    for i in range(K):
        for j in range(K):
            out[f"true_{classes[i]}_pred_{classes[j]}"] = np.sum(np.where(pred == j, calibrated[:, i], 0))
    return out


# --- realized (sklearn on labels; NaN where NannyML gives NaN) ---
def realized(scores, pred, truth):
    out = {}
    single = len(np.unique(truth)) <= 1 or len(np.unique(pred)) <= 1
    if kind == "binary":
        out["roc_auc"] = skm.roc_auc_score(truth, scores[:, 0]) if len(np.unique(truth)) > 1 else np.nan
        for name, f in [("f1", skm.f1_score), ("precision", skm.precision_score), ("recall", skm.recall_score)]:
            out[name] = np.nan if single else f(truth, pred, zero_division=0)
        tn, fp, fn, tp = skm.confusion_matrix(truth, pred, labels=[0, 1]).ravel()
        out["specificity"] = tn / (tn + fp) if tn + fp else np.nan
        out["accuracy"] = skm.accuracy_score(truth, pred)
        out.update(true_positive=tp, false_positive=fp, true_negative=tn, false_negative=fn)
        return out
    labels = list(range(K))
    if set(np.unique(truth)) == set(labels):
        out["roc_auc"] = np.mean(
            [skm.roc_auc_score(truth == c, scores[:, c]) for c in labels]
        )
    else:
        out["roc_auc"] = np.nan
    for name, f in [("f1", skm.f1_score), ("precision", skm.precision_score), ("recall", skm.recall_score)]:
        out[name] = np.nan if single else f(truth, pred, average="macro", labels=labels, zero_division=0)
    mcm = skm.multilabel_confusion_matrix(truth, pred, labels=labels)
    out["specificity"] = np.nan if single else np.mean(mcm[:, 0, 0] / (mcm[:, 0, 0] + mcm[:, 0, 1]))
    out["accuracy"] = skm.accuracy_score(truth, pred)
    cm = skm.confusion_matrix(truth, pred, labels=labels)
    for i in range(K):
        for j in range(K):
            out[f"true_{classes[i]}_pred_{classes[j]}"] = cm[i, j]
    return out


# --- sampling error (nannyml.sampling_error) ---
def auc_component(y, s, spread):
    y, s = y.astype(int), s.copy()
    if np.mean(y) > 0.5:
        y, s = 1 - y, 1 - s
    order = np.argsort(s, kind="stable")
    y = y[order]
    ranks = np.arange(len(y))
    positive_ranks = ranks[(y == 1) & (ranks > 0)]
    ser = (positive_ranks - np.arange(len(positive_ranks))) / (len(y) - y.sum())
    return spread(ser), y.sum() / len(y)


def component(name, actual, pred, spread, binary):
    tp = np.sum(actual & pred)
    fp = np.sum(~actual & pred)
    tn = np.sum(~actual & ~pred)
    fn = np.sum(actual & ~pred)
    n = len(actual)
    if name == "f1":
        one = (tp + fn + fp) / ((fn + fp) * 0.5 + tp) if binary else 1.0
        return spread(np.r_[np.full(tp, one), np.zeros(fn + fp)]), (tp + fn + fp) / n
    if name == "precision":
        return spread(np.r_[np.ones(tp), np.zeros(fp)]), (tp + fp) / n
    if name == "recall":
        return spread(np.r_[np.ones(tp), np.zeros(fn)]), (tp + fn) / n
    return spread(np.r_[np.ones(tn), np.zeros(fp)]), (tn + fp) / n


n_ref = len(ref_pred)
correct_std = np.std((ref_pred == ref_truth).astype(float))
sampling = {}
if kind == "binary":
    actual, pred = ref_truth == 1, ref_pred == 1
    std, f = auc_component(actual, ref_scores[:, 0], np.std)
    sampling["roc_auc"] = lambda n, std=std, f=f: std / np.sqrt(n * f)
    for name in ["f1", "precision", "recall", "specificity"]:
        std, f = component(name, actual, pred, np.std, True)
        sampling[name] = lambda n, std=std, f=f: std / np.sqrt(n * f)
    for name, (a, p) in {
        "true_positive": (True, True),
        "false_positive": (False, True),
        "true_negative": (False, False),
        "false_negative": (True, False),
    }.items():
        std = np.std(((actual == a) & (pred == p)).astype(float))
        sampling[name] = lambda n, std=std: std / np.sqrt(n) * n
else:
    def macro(components, factor):
        return lambda n: np.sqrt(np.sum([v / (n * f) for v, f in components])) / K * factor

    sampling["roc_auc"] = macro(
        [auc_component(ref_truth == c, ref_scores[:, c], np.var) for c in range(K)], 1.2
    )
    for name in ["f1", "precision", "recall", "specificity"]:
        sampling[name] = macro(
            [component(name, ref_truth == c, ref_pred == c, np.var, False) for c in range(K)], 1.0
        )
    cm = skm.confusion_matrix(ref_truth, ref_pred, labels=list(range(K)))
    for i in range(K):
        for j in range(K):
            std = np.std(np.r_[np.ones(cm[i, j]), np.zeros(n_ref - cm[i, j])])
            sampling[f"true_{classes[i]}_pred_{classes[j]}"] = lambda n, std=std: std / np.sqrt(n) * n
sampling["accuracy"] = lambda n: correct_std / np.sqrt(n)

# --- thresholds: nanmean ± 3 nanstd of realized reference-chunk values, clipped ---
size = request["chunk_size"]
ref_realized = [realized(ref_scores[a:b], ref_pred[a:b], ref_truth[a:b]) for a, b in chunks(n_ref, size)]
unit_metrics = {"roc_auc", "f1", "precision", "recall", "specificity", "accuracy"}
thresholds = {}
for name in ref_realized[0]:
    values = np.array([r[name] for r in ref_realized], dtype=float)
    lower = np.nanmean(values) - 3 * np.nanstd(values)
    upper = np.nanmean(values) + 3 * np.nanstd(values)
    if lower <= 0:
        lower = 0.0
    if name in unit_metrics and upper >= 1:
        upper = 1.0
    thresholds[name] = (lower, upper)

calibrated = calibrate(ana_scores)
result = []
for a, b in chunks(len(ana_pred), size):
    est = estimates(ana_scores[a:b], calibrated[a:b], ana_pred[a:b])
    real = realized(ana_scores[a:b], ana_pred[a:b], ana_truth[a:b]) if ana_truth is not None else {}
    metrics = {}
    for name, value in est.items():
        se = sampling[name](b - a)
        lower, upper = thresholds[name]
        hi = value + 3 * se
        metrics[name] = {
            "value": value,
            "sampling_error": se,
            "lower_confidence_boundary": max(value - 3 * se, 0.0),
            "upper_confidence_boundary": min(hi, 1.0) if name in unit_metrics else hi,
            "lower_threshold": lower,
            "upper_threshold": upper,
            "alert": bool(value < lower or value > upper),
            "realized": None if name not in real or np.isnan(real[name]) else float(real[name]),
        }
    result.append({"start_row": a, "end_row": b - 1, "metrics": metrics})


def plain(x):
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [plain(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if np.isnan(x) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


json.dump(plain({"calibration": calibration, "chunks": result}), sys.stdout)
