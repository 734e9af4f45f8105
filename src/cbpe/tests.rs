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
