use super::*;

fn builder(names: &[&str], rows: &[Vec<Option<&str>>]) -> ReferenceBuilder {
    let mut b = ReferenceBuilder::new(names.iter().map(|s| s.to_string()).collect()).unwrap();
    for row in rows {
        b.push_row(row).unwrap();
    }
    b
}

fn text(x: f64) -> String {
    format!("{x}")
}

/// y = 2x exactly: one axis explains all variance, the reference reconstructs perfectly, and
/// a row off the line has error |zx − zy| / √2 (the part orthogonal to (1, 1)/√2).
#[test]
fn error_of_a_row_off_a_perfect_line_is_worked_by_hand() {
    let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let cells: Vec<(String, String)> = xs.iter().map(|&x| (text(x), text(2.0 * x))).collect();
    let rows: Vec<Vec<Option<&str>>> = cells
        .iter()
        .map(|(a, b)| vec![Some(a.as_str()), Some(b.as_str())])
        .collect();
    let baseline = Baseline::fit(builder(&["x", "y"], &rows), Chunking::Size(3)).unwrap();
    assert_eq!(baseline.component_count(), 1);
    for e in &baseline.reference_chunk_errors {
        assert!(e.abs() < 1e-12, "{e}");
    }
    // mean 3.5, ddof-0 std of 1..6 = sqrt(35/12); y's scale is twice x's.
    let sd = (35.0f64 / 12.0).sqrt();
    let mut state = baseline.new_state();
    let mut scratch = Vec::new();
    baseline
        .add_row(&mut state, &[Some("5"), Some("3")], &mut scratch)
        .unwrap();
    let zx = (5.0 - 3.5) / sd;
    let zy = (3.0 - 7.0) / (2.0 * sd);
    let expected = (zx - zy).abs() / 2f64.sqrt();
    let got = state.mean_error().unwrap();
    assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    // Both features carry the residual equally.
    let result = baseline.evaluate(&state);
    assert!((result.top_features[0].share - 0.5).abs() < 1e-12);
}

#[test]
fn categorical_encoding_imputes_the_mode_and_maps_unseen_to_zero() {
    // "b" and "a" tie at 2 before imputation: the smallest text ("a") is the mode; the missing
    // value becomes "a", so a = 3/6, b = 2/6, c = 1/6.
    let rows: Vec<Vec<Option<&str>>> = [
        ("b", "1"),
        ("a", "2"),
        ("b", "3"),
        ("a", ""),
        ("c", "5"),
        ("", "6"),
    ]
    .iter()
    .map(|(c, x)| vec![Some(*c), Some(*x)])
    .collect();
    let baseline = Baseline::fit(builder(&["colour", "x"], &rows), Chunking::Size(6)).unwrap();
    let Encoding::Categorical {
        impute,
        frequencies,
    } = &baseline.features[0].encoding
    else {
        panic!("colour is categorical");
    };
    assert_eq!(impute, "a");
    assert_eq!(frequencies["a"], 0.5);
    assert_eq!(frequencies["b"], 2.0 / 6.0);
    assert_eq!(frequencies["c"], 1.0 / 6.0);
    // x: mean of 1, 2, 3, 5, 6 = 3.4 imputes the missing one.
    assert_eq!(
        baseline.features[1].encoding,
        Encoding::Continuous { impute: 3.4 }
    );
    // The encoded colour column is (2,3,2,3,1,3)/6: its scaler mean is 14/36.
    assert!((baseline.features[0].scaler_mean - 14.0 / 36.0).abs() < 1e-15);

    let mut z = Vec::new();
    let (mean, scale) = (
        baseline.features[0].scaler_mean,
        baseline.features[0].scaler_scale,
    );
    // ddof-0 variance of (2,3,2,3,1,3)/6: E[x²] − mean² = 36/216 − (14/36)².
    let var = 36.0 / 216.0 - (14.0f64 / 36.0).powi(2);
    assert!((scale - var.sqrt()).abs() < 1e-15);
    baseline
        .standardise(&[Some("zebra"), Some("3")], &mut z)
        .unwrap();
    assert_eq!(z[0], (0.0 - mean) / scale);
    baseline.standardise(&[None, None], &mut z).unwrap();
    assert_eq!(z[0], (0.5 - mean) / scale);
    assert_eq!(
        z[1],
        (3.4 - baseline.features[1].scaler_mean) / baseline.features[1].scaler_scale
    );
}

#[test]
fn unreadable_continuous_values_are_refused_and_counted() {
    let rows: Vec<Vec<Option<&str>>> = (0..10)
        .map(|i| {
            vec![
                Some(["1", "2", "4", "3", "5"][i % 5]),
                Some(["3", "1", "2", "5", "4"][i % 5]),
            ]
        })
        .collect();
    let baseline = Baseline::fit(builder(&["a", "b"], &rows), Chunking::Count(2)).unwrap();
    let mut state = baseline.new_state();
    let mut scratch = Vec::new();
    let err = baseline
        .add_row(&mut state, &[Some("x1"), Some("2")], &mut scratch)
        .unwrap_err();
    assert_eq!(err.feature, "a");
    baseline
        .add_row(&mut state, &[Some("inf"), Some("2")], &mut scratch)
        .unwrap_err();
    baseline
        .add_row(&mut state, &[None, Some("NaN")], &mut scratch)
        .unwrap();
    assert_eq!((state.rows, state.refused_rows), (1, 2));
}

#[test]
fn merged_halves_equal_the_whole() {
    let mut rng = fastrand::Rng::with_seed(7);
    let data: Vec<[String; 3]> = (0..400)
        .map(|_| {
            let a = rng.f64();
            let b = a + 0.3 * rng.f64();
            [text(a), text(b), text(rng.f64())]
        })
        .collect();
    let rows: Vec<Vec<Option<&str>>> = data
        .iter()
        .map(|r| r.iter().map(|s| Some(s.as_str())).collect())
        .collect();
    let baseline = Baseline::fit(builder(&["a", "b", "c"], &rows), Chunking::Size(100)).unwrap();
    let mut scratch = Vec::new();
    let mut whole = baseline.new_state();
    let mut first = baseline.new_state();
    let mut second = baseline.new_state();
    for (i, row) in rows.iter().enumerate() {
        baseline.add_row(&mut whole, row, &mut scratch).unwrap();
        let half = if i % 3 == 0 { &mut first } else { &mut second };
        baseline.add_row(half, row, &mut scratch).unwrap();
    }
    first.merge(&second);
    assert_eq!(first.rows, whole.rows);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(1.0);
    assert!(close(
        first.mean_error().unwrap(),
        whole.mean_error().unwrap()
    ));
    assert!(close(
        first.sampling_error().unwrap(),
        whole.sampling_error().unwrap()
    ));
    for (a, b) in first.shares().iter().zip(whole.shares()) {
        assert!(close(*a, b));
    }
    // The reference chunks' errors decide the thresholds: mean ± 3 std (ddof 0).
    let values = &baseline.reference_chunk_errors;
    assert_eq!(values.len(), 4);
    let m = values.iter().sum::<f64>() / 4.0;
    let s = (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 4.0).sqrt();
    assert!(close(baseline.upper_threshold.unwrap(), m + 3.0 * s));
    assert_eq!(baseline.lower_threshold.is_some(), m - 3.0 * s > 0.0);
}

#[test]
fn limits_are_errors_that_say_what_to_change() {
    let names: Vec<String> = (0..=MAX_FEATURES).map(|i| format!("f{i}")).collect();
    assert_eq!(
        ReferenceBuilder::new(names).unwrap_err(),
        FitError::TooManyFeatures(MAX_FEATURES + 1)
    );
    let ids: Vec<String> = (0..=MAX_CATEGORIES).map(|i| format!("id{i}")).collect();
    let rows: Vec<Vec<Option<&str>>> = ids.iter().map(|s| vec![Some(s.as_str())]).collect();
    assert_eq!(
        Baseline::fit(builder(&["id"], &rows), Chunking::Count(10)).unwrap_err(),
        FitError::TooManyCategories("id".into())
    );
    let rows: Vec<Vec<Option<&str>>> = vec![vec![None], vec![Some("")]];
    assert_eq!(
        Baseline::fit(builder(&["empty"], &rows), Chunking::Count(1)).unwrap_err(),
        FitError::NoValues("empty".into())
    );
}
