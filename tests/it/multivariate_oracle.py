# The reference for tests/it/multivariate.rs: NannyML 0.13.1's data reconstruction drift
# (DataReconstructionDriftCalculator with its defaults) written with pandas and scikit-learn
# (SimpleImputer, StandardScaler, PCA(n_components=0.65)), on the CSV files driftd reads.
# The frequency encoding (category_encoders' CountEncoder(normalize=True): the share of each
# value in the imputed reference, 0 when unseen) is written with pandas' value_counts.
#
# stdin: {"reference", "analysis": CSV paths, "features": [names], "chunk_size": rows,
#         "analysis_chunk_size": rows of the analysis chunks (optional; default chunk_size: the
#         size of one window makes the window one chunk, as driftd run evaluates it)}
# stdout: {"components", "reference_chunk_errors", "lower_threshold", "upper_threshold",
#          "chunks": [{"start_row", "end_row", "reconstruction_error", "sampling_error",
#                      "alert"}]}
# Chunks: `chunk_size` rows, a last incomplete chunk appended to the one before.
import json
import sys

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

request = json.load(sys.stdin)
features = request["features"]
size = request["chunk_size"]
analysis_size = request.get("analysis_chunk_size", size)
reference = pd.read_csv(request["reference"])[features]
analysis = pd.read_csv(request["analysis"])[features]
categorical = [c for c in features if reference[c].dtype == object]
continuous = [c for c in features if c not in categorical]

mode = SimpleImputer(strategy="most_frequent").fit(reference[categorical]) if categorical else None
mean = SimpleImputer(strategy="mean").fit(reference[continuous]) if continuous else None


def impute(frame):
    frame = frame.copy()
    if categorical:
        frame[categorical] = mode.transform(frame[categorical])
    if continuous:
        frame[continuous] = mean.transform(frame[continuous])
    return frame


imputed_reference = impute(reference)
shares = {c: imputed_reference[c].value_counts(normalize=True).to_dict() for c in categorical}


def encode(frame):
    frame = impute(frame)
    for c in categorical:
        frame[c] = frame[c].map(lambda v: shares[c].get(v, 0.0)).astype(float)
    return frame[features].to_numpy(dtype=float)


scaler = StandardScaler().fit(encode(reference))
pca = PCA(n_components=0.65, random_state=16).fit(scaler.transform(encode(reference)))


def chunks(frame, size):
    n = len(frame)
    starts = list(range(0, n - size + 1, size)) or [0]
    bounds = [(s, s + size) for s in starts]
    bounds[-1] = (bounds[-1][0], n)
    out = []
    for start, end in bounds:
        data = scaler.transform(encode(frame.iloc[start:end]))
        errors = np.linalg.norm(data - pca.inverse_transform(pca.transform(data)), axis=1)
        out.append(
            {
                "start_row": start,
                "end_row": end - 1,
                "reconstruction_error": float(np.mean(errors)),
                "sampling_error": float(np.std(errors, ddof=1) / np.sqrt(len(errors))),
            }
        )
    return out


reference_values = np.array([c["reconstruction_error"] for c in chunks(reference, size)])
centre, spread = np.nanmean(reference_values), np.nanstd(reference_values)
lower = centre - 3 * spread
lower = None if lower <= 0 else float(lower)
upper = float(centre + 3 * spread)
result = chunks(analysis, analysis_size)
for chunk in result:
    value = chunk["reconstruction_error"]
    chunk["alert"] = not ((-np.inf if lower is None else lower) < value < upper)
json.dump(
    {
        "components": int(pca.n_components_),
        "reference_chunk_errors": reference_values.tolist(),
        "lower_threshold": lower,
        "upper_threshold": upper,
        "chunks": result,
    },
    sys.stdout,
)
