# The reference for tests/bias_oracle.rs: Clarify's own metric code (smclarify 0.5) on the same
# CSV file, read with pandas as the Clarify container reads a dataset.
#
# stdin: {"csv": path, "config": analysis_config}; stdout: {"pre": {facet: report | {"error"}},
# "post": ..., "label_value_or_threshold": str}, where a report is bias_report's list for the facet.
import json
import sys
import warnings

import pandas as pd
from smclarify.bias.report import (
    FacetColumn,
    LabelColumn,
    StageType,
    bias_report,
    label_value_or_threshold,
)

warnings.simplefilter("ignore")
request = json.load(sys.stdin)
config = request["config"]
df = pd.read_csv(request["csv"])
label = config["label"]
values = config["label_values_or_threshold"]
predicted = config.get("predicted_label")
group = df[config["group_variable"]] if "group_variable" in config else None
methods = config["methods"]


def predictions():
    series = df[predicted]
    if "probability_threshold" in config and series.dtype.kind == "f":
        # driftd's reading of probability_threshold: a score above it is a positive prediction.
        series = (series > config["probability_threshold"]).astype(int).astype("category")
    return LabelColumn(predicted, series, list(values))


def report(stage, facet):
    facet_column = FacetColumn(facet["name_or_index"], facet.get("value_or_threshold"))
    names = methods[stage]["methods"]
    names = ["all"] if names == "all" else names
    try:
        if stage == "pre_training_bias":
            data = df.drop(columns=[predicted]) if predicted else df
            return bias_report(
                data, facet_column, LabelColumn(label, df[label], list(values)),
                StageType.PRE_TRAINING, metrics=names, group_variable=group,
            )
        return bias_report(
            df, facet_column, LabelColumn(label, df[label], list(values)),
            StageType.POST_TRAINING, predictions(), metrics=names, group_variable=group,
        )
    except Exception as error:  # a whole-report failure: driftd reports it on every metric
        return {"error": str(error)}


out = {}
for stage, key in [("pre_training_bias", "pre"), ("post_training_bias", "post")]:
    if stage in methods:
        out[key] = {f["name_or_index"]: report(stage, f) for f in config["facet"]}
try:
    out["label_value_or_threshold"] = label_value_or_threshold(df[label], list(values))
except Exception as error:
    out["label_value_or_threshold"] = {"error": str(error)}
json.dump(out, sys.stdout)
