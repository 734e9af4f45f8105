# The reference for tests/it/model_quality_oracle.rs: scikit-learn's metrics on the same CSV file,
# for the whole file and for each of driftd's five subsamples, whose membership is recomputed here
# from its definition (xxHash64 of the row key, SplitMix64 per subsample, the lower 80 %).
#
# stdin: {"csv", "problem_type", "inference", "probability", "threshold", "truth"};
# stdout: {"metrics": {name: [whole, s1, ..., s5]}, "std": {name: sd | null},
#          "roc": [fpr, tpr] | null, "pr": [recall, precision] | null, "n": rows}
import json
import sys

import numpy as np
import pandas as pd
from sklearn import metrics as m

M = (1 << 64) - 1
P1, P2, P3, P4, P5 = (
    11400714785074694791,
    14029467366897019727,
    1609587929392839161,
    9650029242287828579,
    2870177450012600261,
)


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


def xxh64(data, seed=0):
    """xxHash64 of a short input (< 32 bytes), from the specification."""
    assert len(data) < 32
    h = (seed + P5 + len(data)) & M
    i = 0
    while i + 8 <= len(data):
        k = (int.from_bytes(data[i : i + 8], "little") * P2) & M
        k = (rotl(k, 31) * P1) & M
        h ^= k
        h = (rotl(h, 27) * P1 + P4) & M
        i += 8
    while i + 4 <= len(data):
        h ^= (int.from_bytes(data[i : i + 4], "little") * P1) & M
        h = (rotl(h, 23) * P2 + P3) & M
        i += 4
    while i < len(data):
        h ^= (data[i] * P5) & M
        h = (rotl(h, 11) * P1) & M
        i += 1
    h ^= h >> 33
    h = (h * P2) & M
    h ^= h >> 29
    h = (h * P3) & M
    return h ^ (h >> 32)


assert xxh64(b"") == 0xEF46DB3751D8E999  # the specification's test vector


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


INSIDE = M // 5 * 4


def subsample_masks(n):
    """Row r of the first (only) file has the key r, as 8 little-endian bytes."""
    hashes = [xxh64(r.to_bytes(8, "little")) for r in range(n)]
    return [
        np.array([splitmix64(h ^ ((i * 0x9E3779B97F4A7C15) & M)) <= INSIDE for h in hashes])
        for i in range(1, 6)
    ]


def f(y, p, beta, **kw):
    return m.fbeta_score(y, p, beta=beta, zero_division=0, **kw)


def binary(y, p, score):
    ones = np.ones_like(y)
    cm = m.confusion_matrix(y, p, labels=[0, 1])
    tn, fp = cm[0]
    fpr = fp / (fp + tn) if fp + tn else 0.0
    recall = m.recall_score(y, p, zero_division=0)
    out = {
        "recall": recall,
        "precision": m.precision_score(y, p, zero_division=0),
        "accuracy": m.accuracy_score(y, p),
        "recall_best_constant_classifier": m.recall_score(y, ones, zero_division=0),
        "precision_best_constant_classifier": m.precision_score(y, ones, zero_division=0),
        "accuracy_best_constant_classifier": m.accuracy_score(y, ones),
        "true_positive_rate": recall,
        "true_negative_rate": 1 - fpr,
        "false_positive_rate": fpr,
        "false_negative_rate": 1 - recall,
    }
    if score is not None:
        out["auc"] = m.roc_auc_score(y, score)
    for beta, name in [(0.5, "f0_5"), (1, "f1"), (2, "f2")]:
        out[name] = f(y, p, beta)
    for beta, name in [(0.5, "f0_5"), (1, "f1"), (2, "f2")]:
        out[name + "_best_constant_classifier"] = f(y, ones, beta)
    return out


def multiclass(y, p):
    ones = np.full_like(y, "1")
    out = {}
    for prefix, pred in [("", p), ("_best_constant_classifier", ones)]:
        out["accuracy" + prefix] = m.accuracy_score(y, pred)
        out["weighted_recall" + prefix] = m.recall_score(y, pred, average="weighted", zero_division=0)
        out["weighted_precision" + prefix] = m.precision_score(
            y, pred, average="weighted", zero_division=0
        )
        for beta, name in [(0.5, "f0_5"), (1, "f1"), (2, "f2")]:
            out["weighted_" + name + prefix] = f(y, pred, beta, average="weighted")
    # driftd's order: the model's metrics, then the constant classifier's.
    order = [k for k in out if not k.endswith("_classifier")] + [
        k for k in out if k.endswith("_classifier")
    ]
    return {k: out[k] for k in order}


def regression(y, p):
    mse = m.mean_squared_error(y, p)
    return {
        "mae": m.mean_absolute_error(y, p),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "r2": m.r2_score(y, p),
    }


request = json.load(sys.stdin)
kind = request["problem_type"]
df = pd.read_csv(request["csv"], dtype=str)
n = len(df)
truth = df[request["truth"]]
score = df[request["probability"]].astype(float).to_numpy() if request.get("probability") else None
if kind == "BinaryClassification":
    y = truth.astype(float).astype(int).to_numpy()
    if request.get("threshold") is not None:
        p = (score > request["threshold"]).astype(int)
    else:
        p = df[request["inference"]].astype(float).astype(int).to_numpy()
    compute = lambda mask: binary(y[mask], p[mask], None if score is None else score[mask])
elif kind == "MulticlassClassification":
    y = truth.to_numpy()
    p = df[request["inference"]].to_numpy()
    compute = lambda mask: multiclass(y[mask], p[mask])
else:
    y = truth.astype(float).to_numpy()
    p = df[request["inference"]].astype(float).to_numpy()
    compute = lambda mask: regression(y[mask], p[mask])

samples = [compute(np.ones(n, dtype=bool))] + [compute(mask) for mask in subsample_masks(n)]
values = {name: [float(s[name]) for s in samples] for name in samples[0]}
std = {name: (float(np.std(v[1:], ddof=1)) if n >= 200 else None) for name, v in values.items()}
result = {"metrics": values, "std": std, "n": n, "roc": None, "pr": None}
if kind == "BinaryClassification" and score is not None:
    fpr, tpr, _ = m.roc_curve(y, score, drop_intermediate=False)
    precision, recall, _ = m.precision_recall_curve(y, score, drop_intermediate=False)
    result["roc"] = [fpr.tolist(), tpr.tolist()]
    # Highest threshold first, as driftd (and Spark) list them.
    result["pr"] = [recall[::-1].tolist(), precision[::-1].tolist()]
json.dump(result, sys.stdout)
