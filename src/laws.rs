//! Property tests (proptest) of the laws the daemon rests on: a window's state is built from
//! parts merged in any grouping, stored and read back, so merging must give the state of the
//! concatenated rows and the codecs must give back what they were given.
//!
//! The oracle in each law is the straightforward path (one state over all the rows, or the
//! state before storing), never the merge or the codec under test. Case counts are small so
//! the suite spends seconds here.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;

use crate::bias::{BiasState, Metric, analysis};
use crate::model_quality::{self, Membership, ModelQualitySpec, ModelQualityState, ProblemType};
use crate::profile::{ColumnProfile, Profile};
use crate::rules::{Action, RuleSet, RulesState, ViolationFact, WindowFacts, evaluate};
use crate::window::{StateKind, WindowState, codec};

/// Rows as named text columns (`None` is a null), in column order.
type Rows = Vec<(String, Vec<Option<String>>)>;

fn batch(rows: &Rows) -> RecordBatch {
    RecordBatch::try_from_iter(rows.iter().map(|(name, values)| {
        (
            name.clone(),
            Arc::new(StringArray::from(values.clone())) as ArrayRef,
        )
    }))
    .expect("columns of one length")
}

/// `a` then `b` as one table: every column of either, null in the rows of the side without it.
fn concatenate(a: &Rows, b: &Rows) -> Rows {
    let (len_a, len_b) = (height(a), height(b));
    let mut names: Vec<&String> = a.iter().map(|(n, _)| n).collect();
    names.extend(
        b.iter()
            .map(|(n, _)| n)
            .filter(|n| !a.iter().any(|(m, _)| m == *n)),
    );
    names
        .into_iter()
        .map(|name| {
            let side = |rows: &Rows, len: usize| {
                rows.iter()
                    .find(|(n, _)| n == name)
                    .map_or_else(|| vec![None; len], |(_, v)| v.clone())
            };
            let mut values = side(a, len_a);
            values.extend(side(b, len_b));
            (name.clone(), values)
        })
        .collect()
}

fn height(rows: &Rows) -> usize {
    rows.first().map_or(0, |(_, v)| v.len())
}

/// A cell of a mixed column: nulls, integers, decimals, booleans and words, the shapes whose
/// type counts, moments, sketches and frequencies differ.
fn cell() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        3 => (-50i64..50).prop_map(|i| Some(i.to_string())),
        3 => (-1.0e6f64..1.0e6).prop_map(|x| Some(format!("{x:.3}"))),
        1 => any::<bool>().prop_map(|b| Some(b.to_string())),
        1 => "[a-e]{1,3}".prop_map(Some),
    ]
}

/// A table of `rows` rows: the shared columns `mixed` and `word`, plus a column only this side
/// has (`only_<side>`), so merging meets columns missing on one side.
fn table(side: &'static str, rows: std::ops::Range<usize>) -> impl Strategy<Value = Rows> {
    rows.prop_flat_map(move |n| {
        (
            prop::collection::vec(cell(), n),
            prop::collection::vec(prop::option::of("[a-z]{1,2}"), n),
            prop::collection::vec(cell(), n),
        )
            .prop_map(move |(mixed, word, own)| {
                vec![
                    ("mixed".to_string(), mixed),
                    ("word".to_string(), word),
                    (format!("only_{side}"), own),
                ]
            })
    })
}

/// `merged` equals `whole` column by column: counts, types, min, max, frequencies and the
/// distinct sketch exactly (HyperLogLog registers merge by maximum, which does not depend on
/// grouping); sums and second moments up to rounding; the KLL sketch within its rank bound.
fn assert_profile_law(merged: &Profile, whole: &Profile, values: &Rows) {
    assert_eq!(merged.row_count, whole.row_count);
    let names = |p: &Profile| -> Vec<String> {
        let mut names: Vec<String> = p.columns.keys().cloned().collect();
        names.sort();
        names
    };
    assert_eq!(names(merged), names(whole));
    for (name, w) in &whole.columns {
        let m = &merged.columns[name];
        assert_eq!(m.num_present, w.num_present, "{name}");
        assert_eq!(m.num_missing, w.num_missing, "{name}");
        assert_eq!(m.types, w.types, "{name}");
        assert_eq!(m.moments.count, w.moments.count, "{name}");
        assert_eq!(m.moments.min, w.moments.min, "{name}");
        assert_eq!(m.moments.max, w.moments.max, "{name}");
        for (x, y) in [
            (m.moments.sum, w.moments.sum),
            (m.moments.mean, w.moments.mean),
            (m.moments.m2, w.moments.m2),
        ] {
            assert!(close(x, y, 1e-9), "{name}: {x} vs {y}");
        }
        assert_eq!(
            m.frequencies.most_frequent_first(),
            w.frequencies.most_frequent_first(),
            "{name}"
        );
        assert_eq!(m.distinct.estimate(), w.distinct.estimate(), "{name}");
        assert_kll_within_bound(m, name, values);
    }
}

/// The merged sketch's rank of every value is within 1 % of the count (the bound profile/kll.rs
/// documents for k = 2048) of the exact rank over all values.
fn assert_kll_within_bound(column: &ColumnProfile, name: &str, values: &Rows) {
    let mut numbers: Vec<f64> = values
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.iter().flatten().filter_map(|t| t.parse::<f64>().ok()))
        .into_iter()
        .flatten()
        .filter(|x| x.is_finite())
        .collect();
    numbers.sort_by(f64::total_cmp);
    let n = numbers.len() as u64;
    assert_eq!(column.kll.total_weight(), n, "{name}");
    for &x in &numbers {
        let exact = numbers.partition_point(|&v| v <= x) as u64;
        assert!(
            column.kll.rank(x).abs_diff(exact) <= n / 100,
            "{name}: rank({x}) {} vs {exact}",
            column.kll.rank(x)
        );
    }
}

fn close(x: f64, y: f64, relative: f64) -> bool {
    x == y || (x - y).abs() <= relative * x.abs().max(y.abs()).max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn merging_profiles_gives_the_profile_of_the_concatenation(
        a in table("a", 0..120),
        b in table("b", 0..120),
    ) {
        let all = concatenate(&a, &b);
        let whole = Profile::from_batch(&batch(&all));
        let mut merged = Profile::from_batch(&batch(&a));
        merged.merge(Profile::from_batch(&batch(&b)));
        assert_profile_law(&merged, &whole, &all);
    }

    #[test]
    fn a_data_quality_state_reads_back_as_it_was_stored(a in table("a", 0..150)) {
        let profile = Profile::from_batch(&batch(&a));
        let stored = codec::encode(&WindowState::DataQuality(profile.clone()));
        let WindowState::DataQuality(read) = codec::decode(&stored, &StateKind::DataQuality).unwrap()
        else {
            panic!("a data-quality state reads back as another kind");
        };
        // Everything exactly, the sketch to the item.
        assert_profile_law(&read, &profile, &a);
        for (name, column) in &profile.columns {
            assert_eq!(read.columns[name].moments, column.moments);
            assert_eq!(read.columns[name].kll, column.kll);
        }
    }
}

proptest! {
    // Two streams of 1,500 to 3,000 values each: past the sketch's first compaction (2,050
    // items), so the merge meets compacted levels.
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn merged_kll_sketches_stay_within_their_rank_bound(
        a in prop::collection::vec(-1.0e3f64..1.0e3, 1500..3000),
        b in prop::collection::vec(-1.0e3f64..1.0e3, 1500..3000),
    ) {
        let column = |values: &[f64]| -> Rows {
            vec![("x".into(), values.iter().map(|x| Some(format!("{x:.4}"))).collect())]
        };
        let (a, b) = (column(&a), column(&b));
        let all = concatenate(&a, &b);
        let mut merged = Profile::from_batch(&batch(&a));
        merged.merge(Profile::from_batch(&batch(&b)));
        assert!(merged.columns["x"].kll.levels().len() > 1, "no compaction happened");
        assert_kll_within_bound(&merged.columns["x"], "x", &all);
    }
}

// ---- bias ----

/// Rows of the bias analysis of [`crate::fuzz::fuzz_bias_spec`]: sex, race (one-vs-rest,
/// sometimes missing), zone (the group variable), a numeric feature, label and prediction.
fn bias_rows(rows: std::ops::Range<usize>) -> impl Strategy<Value = Rows> {
    let row = (
        0u8..2,
        prop::option::weighted(0.9, prop::sample::select(vec!["a", "b", "c"])),
        0u8..4,
        -100i32..100,
        0u8..2,
        0u8..2,
    );
    prop::collection::vec(row, rows).prop_map(|rows| {
        let mut columns: Vec<(String, Vec<Option<String>>)> =
            ["sex", "race", "zone", "x1", "label", "pred"]
                .iter()
                .map(|n| (n.to_string(), Vec::new()))
                .collect();
        for (sex, race, zone, x1, label, pred) in rows {
            let values = [
                Some(sex.to_string()),
                race.map(str::to_string),
                Some(zone.to_string()),
                Some(x1.to_string()),
                Some(label.to_string()),
                Some(pred.to_string()),
            ];
            for ((_, column), value) in columns.iter_mut().zip(values) {
                column.push(value);
            }
        }
        columns
    })
}

/// The bias spec less FT: FT reads the state's row sample, which a merge draws differently from
/// one pass; every other metric is a function of the counts, which must agree exactly.
fn counted_bias_spec() -> Arc<crate::bias::BiasSpec> {
    let mut spec = (*crate::fuzz::fuzz_bias_spec()).clone();
    spec.post_training.retain(|&m| m != Metric::FT);
    Arc::new(spec)
}

fn bias_state(spec: &Arc<crate::bias::BiasSpec>, rows: &Rows) -> BiasState {
    let mut state = BiasState::new(spec.clone());
    if height(rows) > 0 {
        state.add_batch(&batch(rows));
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn merging_bias_states_gives_the_state_of_the_concatenation(
        a in bias_rows(0..150),
        b in bias_rows(1..150),
    ) {
        let spec = counted_bias_spec();
        let whole = bias_state(&spec, &concatenate(&a, &b));
        let mut merged = bias_state(&spec, &a);
        merged.merge(bias_state(&spec, &b));
        assert_eq!(merged.rows(), whole.rows());
        assert_eq!(analysis(&spec, &merged.evaluate()), analysis(&spec, &whole.evaluate()));
    }

    #[test]
    fn a_bias_state_reads_back_as_it_was_stored(a in bias_rows(1..200)) {
        // With FT: the stored state keeps its sample too.
        let spec = crate::fuzz::fuzz_bias_spec();
        let state = bias_state(&spec, &a);
        let stored = codec::encode(&WindowState::Bias(Box::new(state.clone())));
        let WindowState::Bias(read) = codec::decode(&stored, &StateKind::Bias(spec.clone())).unwrap()
        else {
            panic!("a bias state reads back as another kind");
        };
        assert_eq!(read.rows(), state.rows());
        assert_eq!(read.sample_snapshot(), state.sample_snapshot());
        assert_eq!(analysis(&spec, &read.evaluate()), analysis(&spec, &state.evaluate()));
    }
}

// ---- model quality ----

fn model_quality_spec(problem_type: ProblemType) -> ModelQualitySpec {
    ModelQualitySpec {
        problem_type,
        inference_attribute: Some("pred".into()),
        probability_attribute: (problem_type == ProblemType::BinaryClassification)
            .then(|| "prob".into()),
        probability_threshold: None,
        ground_truth_attribute: "label".into(),
        class_scores: Vec::new(),
    }
}

/// Rows of (label, prediction, probability) for `problem_type`; each row's subsamples follow
/// from its position in the concatenation, as a row's key decides them in the daemon.
fn model_quality_rows(
    problem_type: ProblemType,
    rows: std::ops::Range<usize>,
) -> BoxedStrategy<Rows> {
    let value: BoxedStrategy<String> = match problem_type {
        ProblemType::BinaryClassification => (0u8..2).prop_map(|v| v.to_string()).boxed(),
        ProblemType::MulticlassClassification => {
            prop::sample::select(vec!["cat", "dog", "eel", "fox"])
                .prop_map(String::from)
                .boxed()
        }
        ProblemType::Regression => prop_oneof![
            1 => Just("0".to_string()),
            4 => (-1.0e4f64..1.0e4).prop_map(|x| format!("{x:.2}")),
        ]
        .boxed(),
    };
    prop::collection::vec((value.clone(), value, 0.0f64..1.0), rows)
        .prop_map(|rows| {
            let mut label = Vec::new();
            let mut pred = Vec::new();
            let mut prob = Vec::new();
            for (l, p, q) in rows {
                label.push(Some(l));
                pred.push(Some(p));
                prob.push(Some(format!("{q:.3}")));
            }
            vec![
                ("label".into(), label),
                ("pred".into(), pred),
                ("prob".into(), prob),
            ]
        })
        .boxed()
}

/// The state of `rows`, the first of which is row `first` of the concatenation.
fn model_quality_state(spec: &ModelQualitySpec, rows: &Rows, first: usize) -> ModelQualityState {
    let mut state = ModelQualityState::new(spec.problem_type);
    if height(rows) > 0 {
        let skipped = model_quality::add_batch(&mut state, spec, &batch(rows), |row| {
            Membership::of_hash(model_quality::key_hash(
                &((first + row) as u64).to_le_bytes(),
            ))
        })
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
    }
    state
}

/// Binary and multiclass: the state itself (in its canonical stored form) and so every metric
/// are exactly equal. Regression sums are merged as Spark merges them, which rounds differently
/// from one pass: every metric within 1e-12 relative.
fn assert_model_quality_law(problem_type: ProblemType, a: &Rows, b: &Rows) {
    let spec = model_quality_spec(problem_type);
    let mut whole = model_quality_state(&spec, &concatenate(a, b), 0);
    let mut merged = model_quality_state(&spec, a, 0);
    merged
        .merge(&model_quality_state(&spec, b, height(a)))
        .unwrap();
    let (merged_stats, whole_stats) = (
        model_quality::evaluate(&mut merged),
        model_quality::evaluate(&mut whole),
    );
    if problem_type == ProblemType::Regression {
        assert_eq!(merged_stats.item_count, whole_stats.item_count);
        let metrics =
            |s: &model_quality::ModelQualityStatistics| -> BTreeMap<String, (f64, Option<f64>)> {
                s.metrics
                    .iter()
                    .map(|(n, m)| (n.clone(), (m.value, m.standard_deviation)))
                    .collect()
            };
        let (m, w) = (metrics(&merged_stats), metrics(&whole_stats));
        assert_eq!(m.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>());
        for (name, (value, sd)) in &m {
            let (v, s) = w[name];
            assert!(close(*value, v, 1e-12), "{name}: {value} vs {v}");
            match (sd, s) {
                (Some(x), Some(y)) => assert!(close(*x, y, 1e-12), "{name} sd: {x} vs {y}"),
                (x, y) => assert_eq!(*x, y, "{name} sd"),
            }
        }
    } else {
        let canonical =
            |s: &ModelQualityState| model_quality::decode(&model_quality::encode(s)).unwrap();
        assert_eq!(canonical(&merged), canonical(&whole));
        assert_eq!(merged_stats, whole_stats);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn merging_binary_states_gives_the_state_of_the_concatenation(
        (a, b) in (model_quality_rows(ProblemType::BinaryClassification, 0..200),
                   model_quality_rows(ProblemType::BinaryClassification, 0..200)),
    ) {
        assert_model_quality_law(ProblemType::BinaryClassification, &a, &b);
    }

    #[test]
    fn merging_multiclass_states_gives_the_state_of_the_concatenation(
        (a, b) in (model_quality_rows(ProblemType::MulticlassClassification, 0..200),
                   model_quality_rows(ProblemType::MulticlassClassification, 0..200)),
    ) {
        assert_model_quality_law(ProblemType::MulticlassClassification, &a, &b);
    }

    #[test]
    fn merging_regression_states_gives_the_state_of_the_concatenation(
        (a, b) in (model_quality_rows(ProblemType::Regression, 0..200),
                   model_quality_rows(ProblemType::Regression, 0..200)),
    ) {
        assert_model_quality_law(ProblemType::Regression, &a, &b);
    }

    #[test]
    fn a_model_quality_window_reads_back_as_it_was_stored(
        (problem_type, rows) in prop::sample::select(vec![
            ProblemType::BinaryClassification,
            ProblemType::MulticlassClassification,
            ProblemType::Regression,
        ])
        .prop_flat_map(|p| (Just(p), model_quality_rows(p, 0..200))),
        skipped in 0u64..1000,
    ) {
        let spec = Arc::new(model_quality_spec(problem_type));
        let mut window = crate::window::ModelQualityWindow::new(spec.clone());
        window.state = model_quality_state(&spec, &rows, 0);
        window.skipped_rows = skipped;
        let stored = codec::encode(&WindowState::ModelQuality(Box::new(window.clone())));
        let WindowState::ModelQuality(read) = codec::decode(&stored, &StateKind::ModelQuality(spec)).unwrap()
        else {
            panic!("a model-quality state reads back as another kind");
        };
        let mut expected = window;
        // The codec stores the score table in its canonical (sorted) form.
        expected.state = model_quality::decode(&model_quality::encode(&expected.state)).unwrap();
        assert_eq!(*read, expected);
    }
}

/// Join keys for `rows` rows drawn from a few ids, so that keys repeat within and across runs.
fn repeating_keys(rows: usize) -> impl Strategy<Value = Vec<model_quality::JoinKey>> {
    prop::collection::vec(0u8..24, rows).prop_map(|ids| {
        (ids.iter())
            .map(|id| model_quality::join_key(&[*id]))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    // The finaliser makes a window's prediction runs (one per object) one run: on a repeated
    // key the earliest row wins, exactly as in one run of all the rows in arrival order.
    #[test]
    fn concatenated_prediction_runs_give_the_run_of_the_concatenation(
        (problem_type, parts) in prop::sample::select(vec![
            ProblemType::BinaryClassification,
            ProblemType::MulticlassClassification,
            ProblemType::Regression,
        ])
        .prop_flat_map(|p| (
            Just(p),
            prop::collection::vec(
                model_quality_rows(p, 0..40).prop_flat_map(|rows| {
                    let n = height(&rows);
                    (Just(rows), repeating_keys(n))
                }),
                1..6,
            ),
        )),
    ) {
        let spec = model_quality_spec(problem_type);
        let runs: Vec<_> = (parts.iter())
            .map(|(rows, keys)| model_quality::PredictionRun::from_batch(&spec, &batch(rows), keys).unwrap())
            .collect();
        let whole = (parts[1..].iter()).fold(parts[0].0.clone(), |all, (rows, _)| concatenate(&all, rows));
        let keys: Vec<_> = parts.iter().flat_map(|(_, keys)| keys.clone()).collect();
        let expected = model_quality::PredictionRun::from_batch(&spec, &batch(&whole), &keys).unwrap();
        let merged = model_quality::PredictionRun::concat(&runs);
        prop_assert_eq!(merged, expected);
    }
}

// ---- rules ----

const HOUR: i64 = 3600;

/// Window `i` (an hour) of one series, violated or not.
fn window(i: i64, violated: bool) -> WindowFacts {
    WindowFacts {
        monitor: "m".into(),
        endpoint: Some("e".into()),
        start: i * HOUR,
        end: (i + 1) * HOUR,
        rows: 10,
        violations: violated
            .then(|| ViolationFact {
                feature: "age".into(),
                check_type: "baseline_drift_check".into(),
            })
            .into_iter()
            .collect(),
        ..WindowFacts::default()
    }
}

fn rule_set(windows: u32, at_least: u32, resolve_after: u32, remind_hours: u32) -> RuleSet {
    let text = format!(
        "[[rule]]\nname = \"r\"\nseverity = \"warning\"\nresolve_after = {resolve_after}\n\
         [rule.condition.violation]\n\
         [rule.alert]\nremind_after = \"{remind_hours}h\"\n\
         [rule.persistence]\nwindows = {windows}\nat_least = {at_least}\n\
         [rule.retrain]\ncooldown = \"3h\"\n"
    );
    RuleSet::from_toml(std::path::Path::new("rules.toml"), &text).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Rules state stored (as JSON, as the daemon stores it) after any window and read back
    /// continues exactly as the state that never left memory: same actions, same state.
    #[test]
    fn rules_state_survives_a_round_trip_at_any_window(
        (windows, at_least) in (1u32..5).prop_flat_map(|w| (Just(w), 1..=w)),
        resolve_after in 1u32..3,
        remind_hours in 1u32..4,
        // Each step: violated or not, and how many windows before it went missing.
        steps in prop::collection::vec((any::<bool>(), prop_oneof![4 => Just(0i64), 1 => 1i64..6]), 1..30),
        split in any::<prop::sample::Index>(),
    ) {
        let set = rule_set(windows, at_least, resolve_after, remind_hours);
        let mut facts = Vec::new();
        let mut i = 0;
        for (violated, gap) in steps {
            i += gap;
            facts.push(window(i, violated));
            i += 1;
        }
        let split = split.index(facts.len() + 1);

        let mut state = RulesState::default();
        let whole: Vec<Action> = facts.iter().flat_map(|f| evaluate(&set, &mut state, f)).collect();

        let mut first = RulesState::default();
        let mut actions: Vec<Action> =
            facts[..split].iter().flat_map(|f| evaluate(&set, &mut first, f)).collect();
        let json = serde_json::to_string(&first).unwrap();
        let mut restored: RulesState = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, first);
        actions.extend(facts[split..].iter().flat_map(|f| evaluate(&set, &mut restored, f)));
        assert_eq!(actions, whole);
        assert_eq!(restored, state);
    }
}
