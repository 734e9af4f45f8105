//! Model-quality statistics of 1,000,000 labelled binary rows with scores (the curves and the
//! AUC included): each row's key hashed to its subsample membership, added to the state, then
//! the statistics evaluated; once with the five 80 % subsamples that give the standard
//! deviations, once without them (`Membership::WINDOW_ONLY`). The difference is the cost of the
//! standard deviations. Scores have four decimals (10,001 distinct values), so ties occur as
//! they do with rounded model outputs.
//!
//! `cargo bench --bench model_quality` measures. Under `cargo test --all-targets` criterion
//! runs each routine once on 1,000 rows, which only proves the bench still runs.
//! `DRIFTD_BENCH_ROWS=N` overrides the row count.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use driftd::model_quality::{
    Membership, ModelQualityState, Observation, ProblemType, evaluate, key_hash,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// `cargo bench` passes `--bench`; `cargo test` does not (criterion's own rule for test mode).
fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// (join key, score, label) per row: keys shaped like inference ids.
fn rows(n: usize) -> Vec<(String, f64, bool)> {
    let mut rng = StdRng::seed_from_u64(9);
    (0..n)
        .map(|i| {
            let score = (rng.random::<f64>() * 10_000.0).round() / 10_000.0;
            let label = rng.random::<f64>() < score;
            (format!("00000000-0000-4000-8000-{i:012}"), score, label)
        })
        .collect()
}

/// All rows through a fresh state and its evaluation; returns the AUC.
fn run(rows: &[(String, f64, bool)], subsamples: bool) -> f64 {
    let mut state = ModelQualityState::new(ProblemType::BinaryClassification);
    for (key, score, label) in rows {
        let membership = if subsamples {
            Membership::of_hash(key_hash(key.as_bytes()))
        } else {
            Membership::WINDOW_ONLY
        };
        let observation = Observation::Binary {
            predicted: *score > 0.5,
            actual: *label,
            score: Some(*score),
        };
        state.add(membership, observation).expect("binary");
    }
    let statistics = evaluate(&mut state);
    black_box(&statistics);
    statistics.metric("auc").expect("scores give an auc").value
}

fn model_quality(c: &mut Criterion) {
    let n = std::env::var("DRIFTD_BENCH_ROWS")
        .ok()
        .map(|v| v.parse().expect("DRIFTD_BENCH_ROWS is a number"))
        .unwrap_or(if benchmarking() { 1_000_000 } else { 1_000 });
    let rows = rows(n);
    let mut group = c.benchmark_group(format!("model_quality_binary_{n}_rows"));
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(10));
    group.bench_function("with_subsample_std_devs", |b| b.iter(|| run(&rows, true)));
    group.bench_function("without_std_devs", |b| b.iter(|| run(&rows, false)));
    group.finish();
}

criterion_group!(benches, model_quality);
criterion_main!(benches);
