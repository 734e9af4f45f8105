use std::path::Path;
use std::sync::Arc;

use arrow::array::{Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::json;

use super::*;

fn map(pairs: &[(&str, f64)]) -> IndexMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

#[test]
fn ndcg_of_the_documentations_college_admissions_example_is_0_69() {
    // FORMATS.md §8: baseline SAT 0.70, GPA 0.50, rank 0.05; live 0.10, 0.20, 0.70 reverse the
    // ranking. Live order: rank, GPA, SAT, scored with the baseline's values:
    // DCG = 0.05/log2(2) + 0.50/log2(3) + 0.70/log2(4) = 0.05 + 0.3154648767857287 + 0.35
    // iDCG = 0.70/log2(2) + 0.50/log2(3) + 0.05/log2(4) = 0.70 + 0.3154648767857287 + 0.025
    let baseline = map(&[("SAT", 0.70), ("GPA", 0.50), ("rank", 0.05)]);
    let live = map(&[("SAT", 0.10), ("GPA", 0.20), ("rank", 0.70)]);
    let dcg = 0.05 + 0.315_464_876_785_728_7 + 0.35;
    let idcg = 0.70 + 0.315_464_876_785_728_7 + 0.025;
    let value = ndcg(&baseline, &live).unwrap();
    assert!(close(value, dcg / idcg), "{value}");
    assert_eq!((value * 100.0).round() / 100.0, 0.69);
    // The same ranking scores 1.
    assert!(close(ndcg(&baseline, &baseline).unwrap(), 1.0));
}

#[test]
fn ndcg_averages_the_gains_of_tied_live_scores() {
    // a and b tie in the live window: each of positions 1 and 2 gets their mean gain 0.75.
    let baseline = map(&[("a", 1.0), ("b", 0.5), ("c", 0.25)]);
    let live = map(&[("a", 0.3), ("b", 0.3), ("c", 0.1)]);
    let l3 = 3f64.log2();
    let dcg = 0.75 * (1.0 + 1.0 / l3) + 0.25 / 2.0;
    let idcg = 1.0 + 0.5 / l3 + 0.25 / 2.0;
    assert!(close(ndcg(&baseline, &live).unwrap(), dcg / idcg));
}

#[test]
fn ndcg_counts_a_feature_missing_on_one_side_as_zero_there() {
    // Union a, b, c. Gains (baseline): a 1, b 0.5, c 0. Live scores: a 0, b 0.4, c 0.9, so
    // the live order is c, b, a.
    let baseline = map(&[("a", 1.0), ("b", 0.5)]);
    let live = map(&[("b", 0.4), ("c", 0.9)]);
    let l3 = 3f64.log2();
    let dcg = 0.0 + 0.5 / l3 + 1.0 / 2.0;
    let idcg = 1.0 + 0.5 / l3 + 0.0;
    assert!(close(ndcg(&baseline, &live).unwrap(), dcg / idcg));
    // One feature is no ranking; all-zero baseline gains give 0 (scikit-learn's rule).
    assert_eq!(ndcg(&map(&[("a", 1.0)]), &map(&[("a", 2.0)])), None);
    assert_eq!(
        ndcg(&map(&[("a", 0.0), ("b", 0.0)]), &map(&[("a", 1.0)])),
        Some(0.0)
    );
}

fn spec(aggregation: Aggregation) -> AttributionSpec {
    AttributionSpec {
        aggregation,
        ..AttributionSpec::default()
    }
}

fn record(values: &[(&str, f64)]) -> RecordAttributions {
    RecordAttributions {
        values: values
            .iter()
            .map(|(f, v)| (FIRST_LABEL.to_string(), f.to_string(), *v))
            .collect(),
        expected: Vec::new(),
    }
}

#[test]
fn aggregations_are_clarifys_and_merge() {
    // x: -1, 2, -3, 4 → mean_abs 2.5, mean_sq 7.5, median (2 + -1)/2 = 0.5.
    let values = [-1.0, 2.0, -3.0, 4.0];
    for (aggregation, expected) in [
        (Aggregation::MeanAbs, 2.5),
        (Aggregation::MeanSq, 7.5),
        (Aggregation::Median, 0.5),
    ] {
        let spec = spec(aggregation);
        let mut whole = AttributionState::new(&spec);
        let mut first = AttributionState::new(&spec);
        let mut second = AttributionState::new(&spec);
        for (i, v) in values.iter().enumerate() {
            whole.add_record(&record(&[("x", *v)]));
            let part = if i < 2 { &mut first } else { &mut second };
            part.add_record(&record(&[("x", *v)]));
        }
        second.merge(&first);
        for state in [&whole, &second] {
            let explanations = state.explanations();
            let got = explanations.kernel_shap[FIRST_LABEL].global_shap_values["x"];
            assert_eq!(got, expected, "{aggregation:?}");
            assert_eq!(state.records, 4);
        }
    }
}

#[test]
fn features_past_the_limit_are_refused_and_counted() {
    let spec = AttributionSpec {
        max_features: 2,
        ..AttributionSpec::default()
    };
    let mut state = AttributionState::new(&spec);
    state.add_record(&record(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]));
    state.add_record(&record(&[("c", 1.0), ("a", f64::NAN)]));
    assert_eq!(state.labels[FIRST_LABEL].features.len(), 2);
    assert_eq!(state.refused_values, 2);
    assert_eq!(state.bad_values, 1);
    // A merge respects the limit too.
    let mut other = AttributionState::new(&spec);
    other.add_record(&record(&[("d", 1.0), ("e", 2.0)]));
    state.merge(&other);
    assert_eq!(state.labels[FIRST_LABEL].features.len(), 2);
    assert_eq!(state.refused_values, 4);
}

#[test]
fn table_columns_name_feature_and_label() {
    assert_eq!(
        split_column("Age_label0"),
        ("label0".to_string(), "Age".to_string())
    );
    assert_eq!(
        split_column("Capital Gain_label12"),
        ("label12".to_string(), "Capital Gain".to_string())
    );
    assert_eq!(
        split_column("hours_per_week"),
        ("label0".to_string(), "hours_per_week".to_string())
    );
    assert_eq!(
        split_column(&column_name("yes", "a_label1")),
        ("yes".to_string(), "a_label1".to_string())
    );
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("Age_label0", DataType::Utf8, true),
            Field::new(column_name("label0", "Sex"), DataType::Float64, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec![Some("-0.5"), Some(""), Some("x")])),
            Arc::new(Float64Array::from(vec![Some(0.25), None, Some(1.0)])),
        ],
    )
    .unwrap();
    let mut state = AttributionState::new(&AttributionSpec::default());
    state.add_batch(&batch);
    let global = &state.explanations().kernel_shap[FIRST_LABEL].global_shap_values;
    assert_eq!(global["Age"], 0.5);
    assert_eq!(global["Sex"], (0.25 + 1.0) / 2.0);
    // Row 2 has no value; row 3's "x" is bad but its Sex counts.
    assert_eq!((state.records, state.bad_values), (2, 1));
}

#[test]
fn violations_are_worded_as_model_monitor_words_them() {
    let drift = [
        LabelDrift {
            label: "label0".into(),
            ndcg: Some(0.7639720923277322),
        },
        LabelDrift {
            label: "label1".into(),
            ndcg: Some(0.95),
        },
        LabelDrift {
            label: "label2".into(),
            ndcg: None,
        },
    ];
    let found = violations(&drift, DEFAULT_THRESHOLD);
    assert_eq!(
        serde_json::to_value(&found).unwrap(),
        json!({"version": "1.0", "violations": [{
            "label": "label0", "metric_name": "shap",
            "constraint_check_type": "feature_attribution_drift_check",
            "description": "Feature attribution drift 0.7639720923277322 exceeds threshold 0.9"}]})
    );
    assert_eq!(violations(&drift, 0.99).violations.len(), 2);
}

fn real(case: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sagemaker-real")
        .join(case)
}

#[test]
fn real_clarify_explainability_files_read_as_baselines() {
    let german = AttributionAnalysis::load(&real(
        "ase-clarify-german-credit-2021/clarify-explainability/analysis.json",
    ))
    .unwrap();
    let label = &german.explanations.kernel_shap["label0"];
    assert_eq!(label.global_shap_values.len(), 20);
    // The file's order (Clarify's headers), not sorted.
    assert_eq!(label.global_shap_values.keys().next().unwrap(), "status");
    assert_eq!(label.global_shap_values["status"], 1.0899033307808474);
    assert_eq!(label.expected_value, Some(1.3189524577840586));
    let adult = AttributionAnalysis::load(&real(
        "ase-clarify-adult-offline-2022/clarify-explainability/analysis.json",
    ))
    .unwrap();
    assert_eq!(
        adult.explanations.kernel_shap["label0"].global_shap_values["Country"],
        0.04712774225543154
    );
    let fraud = AttributionAnalysis::load(&real(
        "ase-fraud-clarify-output-2021/clarify_output/explainability/analysis.json",
    ))
    .unwrap();
    assert!(
        fraud.explanations.kernel_shap["label0"]
            .global_shap_values
            .len()
            > 40
    );
    // A file compared with itself has not drifted.
    let drift = compare(&german.explanations, &german.explanations);
    assert!(close(drift[0].ndcg.unwrap(), 1.0));
    // Written back, the layout is Clarify's.
    let text = serde_json::to_value(&german).unwrap();
    assert_eq!(
        text["explanations"]["kernel_shap"]["label0"]["expected_value"],
        json!(1.3189524577840586)
    );
}

#[test]
fn a_combined_bias_and_explainability_file_reads_its_explanations() {
    // FORMATS.md §6.5: one analysis.json with both bias sections and the SHAP values.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("analysis.json");
    let text = json!({
        "version": "1.0",
        "post_training_bias_metrics": {"label": "Target", "label_value_or_threshold": "1",
            "facets": {"Sex": [{"value_or_threshold": "0", "metrics": [
                {"name": "AD", "description": "Accuracy Difference (AD)", "value": -0.15}]}]}},
        "explanations": {"kernel_shap": {"label0": {
            "global_shap_values": {"Age": 0.05962069398767555, "Workclass": 0.009340874120660063},
            "expected_value": 0.250623226165771}}}
    });
    std::fs::write(&path, text.to_string()).unwrap();
    let analysis = AttributionAnalysis::load(&path).unwrap();
    let label = &analysis.explanations.kernel_shap["label0"];
    assert_eq!(label.global_shap_values["Age"], 0.05962069398767555);
    assert_eq!(label.expected_value, Some(0.250623226165771));
}

#[test]
fn a_baseline_without_attributions_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("analysis.json");
    std::fs::write(
        &path,
        r#"{"version": "1.0", "explanations": {"kernel_shap": {}}}"#,
    )
    .unwrap();
    let error = AttributionAnalysis::load(&path).unwrap_err();
    assert!(
        error.contains("analysis.json") && error.contains("kernel_shap"),
        "{error}"
    );
    std::fs::write(
        &path,
        r#"{"version": "1.0", "pre_training_bias_metrics": {}}"#,
    )
    .unwrap();
    let error = AttributionAnalysis::load(&path).unwrap_err();
    assert!(error.contains("explanations"), "{error}");
}

#[test]
fn online_explainability_responses_give_each_records_attributions() {
    let response = json!({
        "version": "1.0",
        "predictions": {"content_type": "text/csv; charset=utf-8", "data": "0.9\n0.1\n0.5\n"},
        "explanations": {"kernel_shap": [
            [
                {"feature_header": "age", "attributions": [{"attribution": [0.25]}]},
                {"feature_header": "income", "attributions": [{"attribution": [-0.5]}]}
            ],
            null,
            [
                {"attributions": [{"label": "yes", "attribution": [1.5]}, {"label": "no", "attribution": [-1.5]}]}
            ]
        ]}
    });
    let source = AttributionSource::new(None, Some(vec!["age".into()]), None);
    let records = source.records(&response).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[0].as_ref().unwrap().values,
        [
            ("label0".to_string(), "age".to_string(), 0.25),
            ("label0".to_string(), "income".to_string(), -0.5)
        ]
    );
    assert!(records[1].is_none());
    assert_eq!(
        records[2].as_ref().unwrap().values,
        [
            ("yes".to_string(), "age".to_string(), 1.5),
            ("no".to_string(), "age".to_string(), -1.5)
        ]
    );
    let bad = json!({"explanations": {"kernel_shap": [[{"feature_header": "a", "attributions": [{"attribution": ["x"]}]}]]}});
    let error = source.records(&bad).unwrap_err();
    assert_eq!(
        error,
        "explanations.kernel_shap[0][0].attributions[0].attribution is not one number"
    );
    let error = source.records(&json!({"predictions": {}})).unwrap_err();
    assert!(error.starts_with("no explanations"), "{error}");
}

#[test]
fn a_json_path_reads_a_models_own_contributions() {
    // XGBoost pred_contribs: one value per feature, then the bias.
    let headers = Some(vec!["a".to_string(), "b".to_string()]);
    let source = AttributionSource::new(Some("output.contribs"), headers, None);
    let one = json!({"output": {"contribs": [0.5, -0.25, 0.1]}});
    let records = source.records(&one).unwrap();
    let record = records[0].as_ref().unwrap();
    assert_eq!(
        record.values,
        [
            ("label0".to_string(), "a".to_string(), 0.5),
            ("label0".to_string(), "b".to_string(), -0.25)
        ]
    );
    assert_eq!(record.expected, [("label0".to_string(), 0.1)]);
    // A batch of records, and an object of feature → value.
    let batch = json!({"output": {"contribs": [[1, 2], {"a": 3, "c": 4}]}});
    let records = source.records(&batch).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].as_ref().unwrap().values[1].1, "c");
    let error = source.records(&json!({"output": {}})).unwrap_err();
    assert_eq!(error, "no value at output.contribs");
    let error = source
        .records(&json!({"output": {"contribs": {"a": "?"}}}))
        .unwrap_err();
    assert_eq!(error, "output.contribs.a is not a number");
}

#[test]
fn metrics_carry_clarifys_names_and_dimensions() {
    let mut state = AttributionState::new(&AttributionSpec::default());
    state.add_record(&RecordAttributions {
        values: vec![("label0".into(), "age".into(), -0.5)],
        expected: vec![("label0".into(), 0.25)],
    });
    let explanations = state.explanations();
    let scope = MetricScope {
        endpoint: Some("ep".into()),
        monitoring_schedule: "attr".into(),
        timestamp: chrono::DateTime::from_timestamp(3600, 0).unwrap(),
    };
    let drift = [LabelDrift {
        label: "label0".into(),
        ndcg: Some(0.5),
    }];
    let datums = metrics(&explanations, &drift, &scope);
    let names: Vec<_> = datums.iter().map(|d| d.metric_name.as_str()).collect();
    assert_eq!(names, ["feature_age", "ExpectedValue", NDCG_METRIC]);
    let dims: Vec<_> = datums[0]
        .dimensions
        .iter()
        .map(|d| (d.name.as_str(), d.value.as_str()))
        .collect();
    assert_eq!(
        dims,
        [
            ("Endpoint", "ep"),
            ("MonitoringSchedule", "attr"),
            ("ExplainabilityMethod", "KernelShap"),
            ("Label", "label0"),
            ("ValueType", "GlobalShapValues")
        ]
    );
    assert_eq!(datums[0].value, Some(0.5));
    assert_eq!(datums[1].value, Some(0.25));
}
