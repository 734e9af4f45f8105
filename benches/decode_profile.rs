//! Throughput of the hot path of every object driftd sees: capture JSONL → Arrow (decode) →
//! Profile. Input: 100k in-memory capture records of 20 numeric + 5 categorical features with CSV
//! payloads, the shape of examples/generate_capture.rs and of the peer comparison
//! (benches/peers/run.sh). Throughput is reported in bytes of capture JSONL.
//!
//! `cargo bench --bench decode_profile` measures. Under `cargo test --all-targets` (which
//! scripts/test.sh runs) criterion runs each routine once; the input is then 1,000 records so
//! the test suite only proves the bench still builds and runs.
//! `DRIFTD_BENCH_RECORDS=N` overrides the record count.

use std::hint::black_box;
use std::io::Cursor;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use driftd::decode::{DecodeOptions, InputFormat, Quarantine, open_reader};
use driftd::profile::Profile;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

const NUMERIC: usize = 20;
const CATEGORICAL: usize = 5;

/// `cargo bench` passes `--bench`; `cargo test` does not (criterion's own rule for test mode).
fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// Capture JSONL with CSV payloads, written as SageMaker does (FORMATS.md §1.3).
fn capture_jsonl(records: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(7);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let mut out = Vec::with_capacity(records * 450);
    let mut row = String::new();
    for i in 0..records {
        row.clear();
        for j in 0..NUMERIC {
            let x = 10.0 * (j + 1) as f64 + (1 + j % 5) as f64 * normal.sample(&mut rng);
            // Integral and Fractional text both occur, as in real captures.
            if j % 3 == 2 {
                row.push_str(&format!("{},", x.round() as i64));
            } else {
                row.push_str(&format!("{x:.4},"));
            }
        }
        for _ in 0..CATEGORICAL {
            // Skewed categories: A is most common.
            let u: f64 = rng.random();
            let c = ["A", "B", "C", "D", "E"][[0.40, 0.65, 0.80, 0.92, 1.01]
                .iter()
                .position(|&p| u < p)
                .unwrap()];
            row.push_str(c);
            row.push(',');
        }
        row.pop();
        let score: f64 = rng.random();
        let record = serde_json::json!({
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                  "data": row, "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                                   "data": format!("{score:.6}"), "encoding": "CSV"},
            },
            "eventMetadata": {"eventId": format!("00000000-0000-4000-8000-{i:012}"),
                              "inferenceTime": format!("2026-11-01T{:02}:{:02}:{:02}Z", i / 3600 % 24, i / 60 % 60, i % 60)},
            "eventVersion": "0",
        });
        serde_json::to_writer(&mut out, &record).unwrap();
        out.push(b'\n');
    }
    out
}

/// Decodes all of `data`, profiling each chunk when `profile` is set; returns the row count.
fn run(data: &'static [u8], profile: bool) -> u64 {
    let options = DecodeOptions {
        format: InputFormat::Capture,
        ..DecodeOptions::default()
    };
    let mut decoder = open_reader(
        Box::new(Cursor::new(data)),
        "bench.jsonl".to_string(),
        &options,
    );
    let mut quarantine = Quarantine::in_memory();
    let mut profile_acc = Profile::new();
    let mut rows = 0u64;
    while let Some(chunk) = decoder.next_chunk(&mut quarantine).expect("decode") {
        rows += chunk.features.num_rows() as u64;
        if profile {
            profile_acc.add_batch(&chunk.features);
        }
    }
    black_box(&profile_acc);
    rows
}

fn decode_profile(c: &mut Criterion) {
    let records = std::env::var("DRIFTD_BENCH_RECORDS")
        .ok()
        .map(|v| v.parse().expect("DRIFTD_BENCH_RECORDS is a number"))
        .unwrap_or(if benchmarking() { 100_000 } else { 1_000 });
    // Leaked once so every iteration reads the same bytes without copying them.
    let data: &'static [u8] = Box::leak(capture_jsonl(records).into_boxed_slice());

    let mut group = c.benchmark_group(format!("capture_{records}_records"));
    group.throughput(Throughput::Bytes(data.len() as u64));
    // One iteration decodes tens of MB; a few samples are enough for a stable mean.
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(10));
    group.bench_function("decode", |b| {
        b.iter(|| assert_eq!(run(data, false), records as u64))
    });
    group.bench_function("decode+profile", |b| {
        b.iter(|| assert_eq!(run(data, true), records as u64))
    });
    group.finish();
}

criterion_group!(benches, decode_profile);
criterion_main!(benches);
