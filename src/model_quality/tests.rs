//! The documented examples (DG `model-monitor-model-quality-metrics.md`, FORMATS.md §7.2), the
//! merge law and the codec. scikit-learn and the real SageMaker files are compared in
//! tests/it/model_quality_*.rs.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;

fn membership(key: usize) -> Membership {
    Membership::of_key(&(key as u64).to_le_bytes())
}

fn state_of(problem_type: ProblemType, observations: &[Observation]) -> ModelQualityState {
    let mut state = ModelQualityState::new(problem_type);
    for (key, observation) in observations.iter().enumerate() {
        state.add(membership(key), *observation).unwrap();
    }
    state
}

fn value(statistics: &ModelQualityStatistics, name: &str) -> f64 {
    statistics
        .metric(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .value
}

fn binary(predicted: bool, actual: bool) -> Observation<'static> {
    Observation::Binary {
        predicted,
        actual,
        score: None,
    }
}

/// The doc's binary example: confusion matrix {"0": {"0": 1, "1": 2}, "1": {"0": 0, "1": 1}}.
#[test]
fn the_documented_binary_example() {
    let rows = [
        binary(false, false),
        binary(true, false),
        binary(true, false),
        binary(true, true),
    ];
    let statistics = evaluate(&mut state_of(ProblemType::BinaryClassification, &rows));
    assert_eq!(
        statistics.confusion_matrix.as_ref().unwrap(),
        &vec![
            (
                "0".to_string(),
                vec![("0".to_string(), 1), ("1".to_string(), 2)]
            ),
            (
                "1".to_string(),
                vec![("0".to_string(), 0), ("1".to_string(), 1)]
            ),
        ]
    );
    let documented = [
        ("recall", 1.0),
        ("precision", 0.3333333333333333),
        ("accuracy", 0.5),
        ("recall_best_constant_classifier", 1.0),
        ("precision_best_constant_classifier", 0.25),
        ("accuracy_best_constant_classifier", 0.25),
        ("true_positive_rate", 1.0),
        ("true_negative_rate", 0.33333333333333337),
        ("false_positive_rate", 0.6666666666666666),
        ("false_negative_rate", 0.0),
        ("f0_5", 0.3846153846153846),
        ("f1", 0.5),
        ("f2", 0.7142857142857143),
        ("f0_5_best_constant_classifier", 0.29411764705882354),
        ("f1_best_constant_classifier", 0.4),
        ("f2_best_constant_classifier", 0.625),
    ];
    let names: Vec<&str> = statistics.metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, documented.map(|(n, _)| n));
    for (name, expected) in documented {
        assert_eq!(value(&statistics, name), expected, "{name}");
        assert_eq!(statistics.metric(name).unwrap().standard_deviation, None);
    }
    assert_eq!(statistics.item_count, 4);
}

fn repeat<'a>(out: &mut Vec<Observation<'a>>, n: usize, observation: Observation<'a>) {
    out.extend(std::iter::repeat_n(observation, n));
}

/// The doc's multiclass example (2,096 rows) and, on the same rows read as numbers, its
/// regression example.
fn documented_rows() -> (Vec<Observation<'static>>, Vec<Observation<'static>>) {
    let mut classes = Vec::new();
    let mut numbers = Vec::new();
    for (actual, predicted, n) in [
        ("0", "0", 1180),
        ("0", "1", 510),
        ("1", "0", 268),
        ("1", "1", 138),
    ] {
        repeat(
            &mut classes,
            n,
            Observation::Multiclass { predicted, actual },
        );
        repeat(
            &mut numbers,
            n,
            Observation::Regression {
                predicted: predicted.parse().unwrap(),
                actual: actual.parse().unwrap(),
            },
        );
    }
    (classes, numbers)
}

#[test]
fn the_documented_multiclass_example() {
    let (rows, _) = documented_rows();
    let statistics = evaluate(&mut state_of(ProblemType::MulticlassClassification, &rows));
    let documented = [
        ("accuracy", 0.6288167938931297),
        ("weighted_recall", 0.6288167938931297),
        ("weighted_precision", 0.6983172269629505),
        ("weighted_f0_5", 0.6803947317178771),
        ("weighted_f1", 0.6571162346664904),
        ("weighted_f2", 0.6384024354394601),
        ("accuracy_best_constant_classifier", 0.19370229007633588),
        (
            "weighted_recall_best_constant_classifier",
            0.19370229007633588,
        ),
        (
            "weighted_precision_best_constant_classifier",
            0.03752057718081697,
        ),
        (
            "weighted_f0_5_best_constant_classifier",
            0.04473443104152011,
        ),
        ("weighted_f1_best_constant_classifier", 0.06286421244683643),
        ("weighted_f2_best_constant_classifier", 0.10570313141262414),
    ];
    let names: Vec<&str> = statistics.metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, documented.map(|(n, _)| n));
    for (name, expected) in documented {
        assert_eq!(value(&statistics, name), expected, "{name}");
        // 2,096 rows: a standard deviation from the subsamples.
        let sd = statistics.metric(name).unwrap().standard_deviation.unwrap();
        assert!(sd > 0.0 && sd < 0.02, "{name} {sd}");
    }
    assert_eq!(
        statistics.confusion_matrix.unwrap(),
        vec![
            (
                "0".to_string(),
                vec![("0".to_string(), 1180), ("1".to_string(), 510)]
            ),
            (
                "1".to_string(),
                vec![("0".to_string(), 268), ("1".to_string(), 138)]
            ),
        ]
    );
}

#[test]
fn the_documented_regression_example() {
    let (_, rows) = documented_rows();
    let statistics = evaluate(&mut state_of(ProblemType::Regression, &rows));
    assert_eq!(value(&statistics, "mae"), 0.3711832061068702);
    assert_eq!(value(&statistics, "mse"), 0.3711832061068702);
    assert_eq!(value(&statistics, "rmse"), 0.609248066149471);
    assert_eq!(value(&statistics, "r2"), -1.3766111872212665);
    // On 0/1 errors mae and mse are the same numbers in every subsample, so are their spreads,
    // but for the last digits (mse goes through Spark's √ and square, like the doc's, which
    // differ by 3.5e-15 relative).
    let mae = statistics
        .metric("mae")
        .unwrap()
        .standard_deviation
        .unwrap();
    let mse = statistics
        .metric("mse")
        .unwrap()
        .standard_deviation
        .unwrap();
    assert!((mae - mse).abs() < 1e-13 * mae, "{mae} {mse}");
}

/// Random rows of every kind, with keys.
fn random_rows(seed: u64, n: usize) -> [Vec<Observation<'static>>; 3] {
    const CLASSES: [&str; 4] = ["0", "1", "2", "cat"];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut binary_rows = Vec::new();
    let mut multi = Vec::new();
    let mut regression = Vec::new();
    for _ in 0..n {
        let score = (rng.random::<f64>() * 100.0).round() / 100.0;
        binary_rows.push(Observation::Binary {
            predicted: score > 0.5,
            actual: rng.random::<f64>() < score,
            score: Some(score),
        });
        multi.push(Observation::Multiclass {
            predicted: CLASSES[rng.random_range(0..4)],
            actual: CLASSES[rng.random_range(0..4)],
        });
        let actual = if rng.random::<f64>() < 0.2 {
            0.0
        } else {
            rng.random::<f64>() * 50.0 - 10.0
        };
        regression.push(Observation::Regression {
            predicted: actual + rng.random::<f64>() - 0.5,
            actual,
        });
    }
    [binary_rows, multi, regression]
}

const KINDS: [ProblemType; 3] = [
    ProblemType::BinaryClassification,
    ProblemType::MulticlassClassification,
    ProblemType::Regression,
];

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

fn assert_statistics_agree(a: &ModelQualityStatistics, b: &ModelQualityStatistics) {
    assert_eq!(a.item_count, b.item_count);
    assert_eq!(a.confusion_matrix, b.confusion_matrix);
    assert_eq!(a.roc, b.roc);
    assert_eq!(a.precision_recall, b.precision_recall);
    assert_eq!(a.metrics.len(), b.metrics.len());
    for ((name, x), (_, y)) in a.metrics.iter().zip(&b.metrics) {
        assert!(
            close(x.value, y.value),
            "{name}: {} vs {}",
            x.value,
            y.value
        );
        let (sx, sy) = (x.standard_deviation.unwrap(), y.standard_deviation.unwrap());
        assert!(close(sx, sy), "{name} sd: {sx} vs {sy}");
    }
}

#[test]
fn two_halves_merged_equal_the_whole() {
    for (kind, rows) in KINDS.iter().zip(random_rows(1, 3000)) {
        let whole = state_of(*kind, &rows);
        for cut in [1, 1000, 2999] {
            let mut first = ModelQualityState::new(*kind);
            let mut second = ModelQualityState::new(*kind);
            for (key, row) in rows.iter().enumerate() {
                let half = if key < cut { &mut first } else { &mut second };
                half.add(membership(key), *row).unwrap();
            }
            // Merged in the other order than the rows came.
            second.merge(&first).unwrap();
            match kind {
                // Counts: exactly the whole.
                ProblemType::BinaryClassification | ProblemType::MulticlassClassification => {
                    assert_eq!(second, whole, "{kind:?} cut {cut}")
                }
                ProblemType::Regression => {
                    let (ModelQualityState::Regression(a), ModelQualityState::Regression(b)) =
                        (&second, &whole)
                    else {
                        unreachable!()
                    };
                    for (a, b) in a.sums.iter().zip(&b.sums) {
                        assert_eq!((a.rows, a.nonzero_truths), (b.rows, b.nonzero_truths));
                        for (x, y) in [
                            (a.sum_absolute_error, b.sum_absolute_error),
                            (a.sum_squared_error, b.sum_squared_error),
                            (a.mean_nonzero_truth, b.mean_nonzero_truth),
                            (a.m2_nonzero_truth, b.m2_nonzero_truth),
                        ] {
                            assert!(close(x, y), "{x} vs {y}");
                        }
                    }
                }
            }
            assert_statistics_agree(&evaluate(&mut second), &evaluate(&mut whole.clone()));
        }
    }
}

#[test]
fn subsamples_follow_keys_not_order() {
    for (kind, rows) in KINDS.iter().zip(random_rows(2, 500)) {
        let forward = state_of(*kind, &rows);
        let mut backward = ModelQualityState::new(*kind);
        for (key, row) in rows.iter().enumerate().rev() {
            backward.add(membership(key), *row).unwrap();
        }
        assert_statistics_agree(&evaluate(&mut backward), &evaluate(&mut forward.clone()));
    }
}

#[test]
fn standard_deviations_from_200_rows_on() {
    for (kind, rows) in KINDS.iter().zip(random_rows(3, 200)) {
        let statistics = evaluate(&mut state_of(*kind, &rows[..199]));
        assert!(
            statistics
                .metrics
                .iter()
                .all(|(_, m)| m.standard_deviation.is_none()),
            "{kind:?}"
        );
        let statistics = evaluate(&mut state_of(*kind, &rows));
        for (name, metric) in &statistics.metrics {
            let sd = metric.standard_deviation;
            assert!(sd.is_some_and(|sd| sd >= 0.0), "{kind:?} {name}: {sd:?}");
        }
    }
}

#[test]
fn rows_in_the_window_only_have_no_spreads() {
    for (kind, rows) in KINDS.iter().zip(random_rows(6, 300)) {
        let mut state = ModelQualityState::new(*kind);
        for row in &rows {
            state.add(Membership::WINDOW_ONLY, *row).unwrap();
        }
        let statistics = evaluate(&mut state);
        let with_spreads = evaluate(&mut state_of(*kind, &rows));
        assert_eq!(statistics.item_count, 300);
        for ((name, metric), (_, reference)) in statistics.metrics.iter().zip(&with_spreads.metrics)
        {
            assert_eq!(metric.standard_deviation, None, "{kind:?} {name}");
            assert!(close(metric.value, reference.value), "{kind:?} {name}");
        }
    }
}

#[test]
fn a_window_past_the_score_bound_reports_no_curves_and_counts_them() {
    let n = MAX_SCORE_ENTRIES + 1;
    let mut state = ModelQualityState::new(ProblemType::BinaryClassification);
    for i in 0..n {
        let score = i as f64 / n as f64;
        let observation = Observation::Binary {
            predicted: score > 0.5,
            actual: i % 3 == 0,
            score: Some(score),
        };
        state.add(Membership::WINDOW_ONLY, observation).unwrap();
    }
    let statistics = evaluate(&mut state);
    assert_eq!(statistics.score_rows_refused, n as u64);
    assert!(statistics.roc.is_none() && statistics.precision_recall.is_none());
    assert!(statistics.metric("auc").is_none());
    // The counts are whole.
    assert_eq!(statistics.item_count, n as u64);
}

#[test]
fn a_new_class_on_every_row_stops_at_the_class_bound_and_the_rest_are_skipped() {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    let n = MAX_CLASSES + 10;
    let classes: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let column = || Arc::new(StringArray::from(classes.clone())) as ArrayRef;
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("prediction", DataType::Utf8, false),
            Field::new("label", DataType::Utf8, false),
        ])),
        vec![column(), column()],
    )
    .unwrap();
    let spec = ModelQualitySpec {
        problem_type: ProblemType::MulticlassClassification,
        inference_attribute: Some("prediction".into()),
        probability_attribute: None,
        probability_threshold: None,
        ground_truth_attribute: "label".into(),
        class_scores: Vec::new(),
    };
    let mut state = ModelQualityState::new(spec.problem_type);
    let skipped = add_batch(&mut state, &spec, &batch, |_| Membership::WINDOW_ONLY).unwrap();
    assert_eq!(skipped.len(), 10);
    assert_eq!(skipped[0].row, MAX_CLASSES);
    assert!(skipped[0].message.contains("256"), "{}", skipped[0].message);
    assert_eq!(state.rows(), MAX_CLASSES as u64);
    // Classes the state holds already are still counted, a new actual class is not.
    assert!(state.admits_class_pair("c0", "c0"));
    assert!(state.admits_class_pair("c0", "c1"));
    assert!(!state.admits_class_pair("new", "c0"));
}

#[test]
fn states_of_different_kinds_neither_add_nor_merge() {
    let mut state = ModelQualityState::new(ProblemType::Regression);
    let error = state.add(membership(0), binary(true, true)).unwrap_err();
    assert_eq!(error.observation, ProblemType::BinaryClassification);
    assert!(
        state
            .merge(&ModelQualityState::new(ProblemType::BinaryClassification))
            .is_err()
    );
}

#[test]
fn codec_round_trips_every_kind() {
    for (kind, rows) in KINDS.iter().zip(random_rows(4, 300)) {
        let state = state_of(*kind, &rows);
        let bytes = encode(&state);
        assert_eq!(&bytes[..5], b"DRMQ\x01");
        let mut back = decode(&bytes).unwrap();
        assert_eq!(back, state);
        assert_statistics_agree(&evaluate(&mut back), &evaluate(&mut state.clone()));
        // An empty state too.
        let empty = ModelQualityState::new(*kind);
        assert_eq!(decode(&encode(&empty)).unwrap(), empty);
    }
}

#[test]
fn corrupt_or_truncated_bytes_are_errors_not_panics() {
    let [binary_rows, _, _] = random_rows(5, 50);
    let bytes = encode(&state_of(ProblemType::BinaryClassification, &binary_rows));
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
    }
    for i in 0..bytes.len() {
        for bit in [0x01, 0x80] {
            let mut damaged = bytes.clone();
            damaged[i] ^= bit;
            assert!(decode(&damaged).is_err(), "byte {i} bit {bit:#x}");
        }
    }
    assert!(matches!(
        decode(b"DRWS\x01garbage-garbage"),
        Err(CodecError::WrongMagic { .. })
    ));
    let mut other_version = bytes.clone();
    other_version[4] = 2;
    assert_eq!(
        decode(&other_version),
        Err(CodecError::UnsupportedVersion(2))
    );
    // A body with a valid checksum that decodes to an impossible state (a subsample bigger
    // than the window) is refused too.
    let mut regression = ModelQualityState::new(ProblemType::Regression);
    if let ModelQualityState::Regression(state) = &mut regression {
        state.sums[3].rows = 5;
    }
    let error = decode(&encode(&regression)).unwrap_err();
    assert!(error.to_string().contains("subsample"), "{error}");
}

#[test]
fn violations_are_worded_as_model_monitor_words_them() {
    let (_, rows) = documented_rows();
    let sample: Vec<Observation> = rows.iter().step_by(7).copied().collect();
    let baseline = evaluate(&mut state_of(ProblemType::Regression, &sample));
    let constraints = suggest_constraints(&baseline);
    let operators: Vec<_> = constraints
        .constraints
        .iter()
        .map(|(n, c)| (n.as_str(), c.comparison_operator))
        .collect();
    assert_eq!(
        operators,
        [
            ("mae", ComparisonOperator::GreaterThanThreshold),
            ("mse", ComparisonOperator::GreaterThanThreshold),
            ("rmse", ComparisonOperator::GreaterThanThreshold),
            ("r2", ComparisonOperator::LessThanThreshold),
        ]
    );
    // Its own values violate nothing.
    assert!(check(&constraints, &baseline.metrics).violations.is_empty());
    let metrics = vec![(
        "mae".to_string(),
        MetricValue {
            value: 48.73608152071635,
            standard_deviation: Some(1e-4),
        },
    )];
    let violations = check(&constraints, &metrics).violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(
        violations[0].description,
        format!(
            "Metric mae with 48.73608152071635 +/- 1.0E-4 was GreaterThanThreshold '{}'",
            crate::format::java_double(constraints.constraints["mae"].threshold)
        )
    );
    assert_eq!(violations[0].constraint_check_type, "GreaterThanThreshold");
}

#[test]
fn specs_say_what_is_missing() {
    let spec = ModelQualitySpec {
        problem_type: ProblemType::BinaryClassification,
        inference_attribute: None,
        probability_attribute: Some("p".into()),
        probability_threshold: None,
        ground_truth_attribute: "y".into(),
        class_scores: Vec::new(),
    };
    assert!(spec.validate().unwrap_err().contains("inference_attribute"));
    let with_threshold = ModelQualitySpec {
        probability_threshold: Some(0.5),
        ..spec.clone()
    };
    assert_eq!(with_threshold.validate(), Ok(()));
    let regression = ModelQualitySpec {
        problem_type: ProblemType::Regression,
        ..spec
    };
    assert!(regression.validate().is_err());
}
