//! End-to-end checks of the estimator on data whose answer is known by construction.

use super::*;

/// Rows where the score is the true probability: label 1 exactly when `u < score`.
fn calibrated_rows(n: usize, seed: u64) -> Rows {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut scores = Vec::with_capacity(n);
    let mut predicted = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let score = rng.f64();
        scores.push(score);
        predicted.push(usize::from(score > 0.5));
        labels.push(usize::from(rng.f64() < score));
    }
    Rows {
        scores: vec![scores],
        predicted,
        labels: Some(labels),
    }
}

fn binary_classes() -> Vec<String> {
    vec!["0".into(), "1".into()]
}

#[test]
fn chunks_append_the_incomplete_rest() {
    assert_eq!(Chunking::Size(4).ranges(10), vec![(0, 4), (4, 10)]);
    assert_eq!(Chunking::Size(5).ranges(10), vec![(0, 5), (5, 10)]);
    assert_eq!(Chunking::Size(20).ranges(10), vec![(0, 10)]);
    assert_eq!(Chunking::Count(3).ranges(10), vec![(0, 3), (3, 6), (6, 10)]);
    assert!(Chunking::Size(3).ranges(0).is_empty());
}

#[test]
fn estimates_of_a_calibrated_model_are_near_its_realized_metrics() {
    let reference = calibrated_rows(20_000, 1);
    let cbpe = Cbpe::fit(
        Kind::Binary,
        binary_classes(),
        &reference,
        Chunking::Size(5_000),
    )
    .unwrap();
    let analysis = calibrated_rows(20_000, 2);
    let chunks = cbpe.estimate(&analysis);
    assert_eq!(chunks.len(), 4);
    for chunk in &chunks {
        for name in [
            "roc_auc",
            "f1",
            "accuracy",
            "precision",
            "recall",
            "specificity",
        ] {
            let m = &chunk.metrics[name];
            let realized = m.realized.unwrap();
            // Within 5 sampling errors (a bound that a wrong formula would break).
            assert!(
                (m.value - realized).abs() < 5.0 * m.sampling_error.max(1e-3),
                "{name}: estimate {} realized {realized} se {}",
                m.value,
                m.sampling_error
            );
            assert!(m.lower_threshold <= m.upper_threshold);
        }
        let tp = chunk.metrics["true_positive"].value;
        let fp = chunk.metrics["false_positive"].value;
        let tn = chunk.metrics["true_negative"].value;
        let fn_ = chunk.metrics["false_negative"].value;
        assert!((tp + fp + tn + fn_ - chunk.rows as f64).abs() < 1e-6);
    }
}

#[test]
fn a_reference_without_labels_is_refused() {
    let mut reference = calibrated_rows(100, 3);
    reference.labels = None;
    assert_eq!(
        Cbpe::fit(
            Kind::Binary,
            binary_classes(),
            &reference,
            Chunking::Size(10)
        )
        .unwrap_err(),
        CbpeError::NoLabels
    );
}

/// Rows of a miscalibrated three-class model (scores the softmax of doubled logits).
fn multiclass_rows(n: usize, seed: u64) -> Rows {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut scores: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut predicted = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let logits = [rng.f64() * 3.0, rng.f64() * 2.0, rng.f64()];
        let softmax = |scale: f64| {
            let total: f64 = logits.iter().map(|l| (l * scale).exp()).sum();
            logits.map(|l| (l * scale).exp() / total)
        };
        let (truth, model) = (softmax(1.0), softmax(2.0));
        let u = rng.f64();
        labels.push(if u < truth[0] {
            0
        } else if u < truth[0] + truth[1] {
            1
        } else {
            2
        });
        predicted.push(
            (0..3)
                .max_by(|&i, &j| model[i].total_cmp(&model[j]))
                .unwrap(),
        );
        for (column, p) in scores.iter_mut().zip(model) {
            column.push(p);
        }
    }
    Rows {
        scores,
        predicted,
        labels: Some(labels),
    }
}

fn split(rows: &Rows, at: usize) -> (Rows, Rows) {
    let part = |range: std::ops::Range<usize>| Rows {
        scores: rows
            .scores
            .iter()
            .map(|c| c[range.clone()].to_vec())
            .collect(),
        predicted: rows.predicted[range.clone()].to_vec(),
        labels: rows.labels.as_ref().map(|l| l[range].to_vec()),
    };
    (part(0..at), part(at..rows.len()))
}

#[test]
fn merged_window_sums_give_the_estimates_of_all_rows() {
    let cases = [
        (
            Kind::Binary,
            binary_classes(),
            calibrated_rows(8_000, 4),
            calibrated_rows(3_000, 5),
        ),
        (
            Kind::Multiclass,
            vec!["a".into(), "b".into(), "c".into()],
            multiclass_rows(8_000, 6),
            multiclass_rows(3_000, 7),
        ),
    ];
    for (kind, classes, reference, analysis) in cases {
        let cbpe = Cbpe::fit(kind, classes, &reference, Chunking::Size(10_000)).unwrap();
        let whole = &cbpe.estimate(&analysis)[0].metrics;
        let (first, second) = split(&analysis, 1_234);
        let mut sums = cbpe.expected_sums(&first);
        // Through the bytes a window state would be stored as.
        let stored: ExpectedSums =
            serde_json::from_str(&serde_json::to_string(&cbpe.expected_sums(&second)).unwrap())
                .unwrap();
        sums.merge(&stored);
        assert_eq!(sums.rows(), 3_000);
        let merged = sums.estimates(kind);
        let close = |name: &str, ours: f64| {
            let whole = whole[name].value;
            assert!(
                (ours - whole).abs() <= 1e-12 * whole.abs().max(1.0),
                "{kind:?} {name}: merged {ours} whole {whole}"
            );
        };
        close("f1", merged.f1);
        close("precision", merged.precision);
        close("recall", merged.recall);
        close("specificity", merged.specificity);
        close("accuracy", merged.accuracy);
        match kind {
            Kind::Binary => {
                close("true_positive", merged.confusion[1][1]);
                close("false_positive", merged.confusion[0][1]);
                close("true_negative", merged.confusion[0][0]);
                close("false_negative", merged.confusion[1][0]);
            }
            Kind::Multiclass => {
                for (i, a) in ["a", "b", "c"].iter().enumerate() {
                    for (j, b) in ["a", "b", "c"].iter().enumerate() {
                        close(&format!("true_{a}_pred_{b}"), merged.confusion[i][j]);
                    }
                }
            }
        }
    }
}
