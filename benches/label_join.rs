//! The label join: 1,000,000 binary predictions with scores (a window's capture, in 64 Ki-row
//! batches as the decoder hands them over) and their 1,000,000 labels (one label file), each
//! batch made a sorted run, the runs concatenated, then the labels folded into a join state and
//! the window joined. Throughput is in labels joined.
//!
//! `cargo bench --bench label_join` measures, and prints once the stored size per pending
//! prediction and per waiting label. Under `cargo test --all-targets` criterion runs each
//! routine once on 1,000 rows, which only proves the bench still runs.
//! `DRIFTD_BENCH_ROWS=N` overrides the row count.

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use driftd::model_quality::{
    JoinKey, JoinState, LabelRun, ModelQualitySpec, PredictionRun, ProblemType, Ttl, join_key,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const BATCH: usize = 64 * 1024;

/// `cargo bench` passes `--bench`; `cargo test` does not (criterion's own rule for test mode).
fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

fn spec() -> ModelQualitySpec {
    ModelQualitySpec {
        problem_type: ProblemType::BinaryClassification,
        inference_attribute: Some("_c0".into()),
        probability_attribute: Some("_c1".into()),
        probability_threshold: None,
        ground_truth_attribute: "label".into(),
        class_scores: Vec::new(),
    }
}

fn batch(columns: Vec<(&str, Vec<String>)>) -> RecordBatch {
    let schema = Schema::new(
        (columns.iter())
            .map(|(name, _)| Field::new(*name, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    );
    let arrays = (columns.into_iter())
        .map(|(_, values)| Arc::new(StringArray::from(values)) as ArrayRef)
        .collect();
    RecordBatch::try_new(Arc::new(schema), arrays).unwrap()
}

/// Prediction batches and label batches with their keys, in arrival order.
type Batches = Vec<(RecordBatch, Vec<JoinKey>)>;

fn input(n: usize) -> (Batches, Batches) {
    let mut rng = StdRng::seed_from_u64(11);
    let (mut predictions, mut labels) = (Vec::new(), Vec::new());
    for first in (0..n).step_by(BATCH) {
        let rows = first..(first + BATCH).min(n);
        let keys: Vec<JoinKey> = rows
            .clone()
            .map(|i| join_key(format!("00000000-0000-4000-8000-{i:012}").as_bytes()))
            .collect();
        let scores: Vec<f64> = rows
            .clone()
            .map(|_| (rng.random::<f64>() * 10_000.0).round() / 10_000.0)
            .collect();
        let truth: Vec<String> = (scores.iter())
            .map(|s| u8::from(rng.random::<f64>() < *s).to_string())
            .collect();
        predictions.push((
            batch(vec![
                (
                    "_c0",
                    scores
                        .iter()
                        .map(|s| u8::from(*s > 0.5).to_string())
                        .collect(),
                ),
                ("_c1", scores.iter().map(|s| s.to_string()).collect()),
            ]),
            keys.clone(),
        ));
        labels.push((batch(vec![("_c0", truth)]), keys));
    }
    (predictions, labels)
}

fn runs<V>(
    batches: &Batches,
    make: impl Fn(&RecordBatch, &[JoinKey]) -> Result<V, String>,
) -> Vec<V> {
    batches.iter().map(|(b, k)| make(b, k).unwrap()).collect()
}

const TTL: Ttl = Ttl {
    orphan: 86_400,
    label: 7 * 86_400,
    max_remembered: usize::MAX,
};

fn label_join(c: &mut Criterion) {
    let n = std::env::var("DRIFTD_BENCH_ROWS")
        .ok()
        .map(|v| v.parse().expect("DRIFTD_BENCH_ROWS is a number"))
        .unwrap_or(if benchmarking() { 1_000_000 } else { 1_000 });
    let spec = spec();
    let (predictions, labels) = input(n);
    let join = || {
        let predictions = PredictionRun::concat(&runs(&predictions, |b, k| {
            PredictionRun::from_batch(&spec, b, k)
        }));
        let labels = LabelRun::concat(&runs(&labels, |b, k| LabelRun::from_batch(&spec, b, k)));
        let mut state = JoinState::new(ProblemType::BinaryClassification);
        state.absorb(labels, 0, usize::MAX);
        let joined = state.join(0, predictions, 3600, 3600 + TTL.label, TTL);
        assert_eq!(joined.counts.labelled, n as u64);
        black_box(joined)
    };
    if benchmarking() {
        // What the store keeps: a window's predictions as its part; unmatched, as pending
        // predictions; labels without their predictions yet, as waiting labels.
        let part = PredictionRun::concat(&runs(&predictions, |b, k| {
            PredictionRun::from_batch(&spec, b, k)
        }));
        let mut pending = JoinState::new(ProblemType::BinaryClassification);
        pending.join(0, part, 3600, 3600 + TTL.label, TTL);
        let mut waiting = JoinState::new(ProblemType::BinaryClassification);
        let labels = LabelRun::concat(&runs(&labels, |b, k| LabelRun::from_batch(&spec, b, k)));
        waiting.absorb(labels, 0, usize::MAX);
        eprintln!(
            "stored bytes per entry: pending prediction {:.1}, waiting label {:.1}",
            pending.encode().len() as f64 / n as f64,
            waiting.encode().len() as f64 / n as f64,
        );
    }
    let mut group = c.benchmark_group(format!("label_join_binary_{n}"));
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(10));
    group.bench_function("runs_absorb_join", |b| b.iter(join));
    group.finish();
}

criterion_group!(benches, label_join);
criterion_main!(benches);
