//! Peak memory of the label join with many pending predictions, in two phases (run each in a
//! process of its own: the peak resident set, VmHWM, only grows):
//!
//! - `finalise`: what the finaliser does with one window whose predictions all wait for
//!   labels. `parts` stored parts (one per capture object, as the readers store them) are
//!   decoded and merged, made one run, joined with no label yet (so every prediction stays
//!   pending), and the join state sealed (written to `state`) and read back.
//! - `hold`: a daemon whose join state holds those pending predictions finalises its next
//!   window: reads the sealed state (from `state`), joins 100,000 new predictions, seals it.
//!
//! Prints the peak resident set after each step.
//!
//! `cargo run --release --example join_memory -- finalise|hold [predictions] [parts] [state]`
//! (defaults: 10,000,000 in 100 parts, `/tmp/driftd-join-state`). Linux only (reads
//! /proc/self/status).

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use driftd::model_quality::{JoinState, ModelQualitySpec, ProblemType, Ttl, join_key};
use driftd::window::{StateKind, WindowState, codec};

fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = (status.lines())
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kb: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let phase = args.next().unwrap_or_else(|| "finalise".into());
    let n: usize = args.next().map_or(10_000_000, |a| a.parse().unwrap());
    let parts: usize = args.next().map_or(100, |a| a.parse().unwrap());
    let state_path = args
        .next()
        .unwrap_or_else(|| "/tmp/driftd-join-state".into());
    let spec = Arc::new(ModelQualitySpec {
        problem_type: ProblemType::BinaryClassification,
        inference_attribute: Some("_c0".into()),
        probability_attribute: Some("_c1".into()),
        probability_threshold: None,
        ground_truth_attribute: "label".into(),
        class_scores: Vec::new(),
    });
    let kind = StateKind::Predictions(spec);
    let ttl = Ttl {
        orphan: 86_400,
        label: 7 * 86_400,
        max_remembered: usize::MAX,
    };
    if phase == "hold" {
        let sealed = std::fs::read(&state_path).expect("run the finalise phase first");
        let mut join = JoinState::decode(sealed).unwrap();
        println!(
            "peak after reading a join state of {} pending predictions: {:.0} MB",
            join.pending_predictions(),
            peak_mb()
        );
        let next = window(&kind, n..n + 100_000, 1);
        let Some(WindowState::Predictions(next)) = merge(&kind, next) else {
            unreachable!()
        };
        let joined = join.join(3600, next.run(), 7200, 7200 + ttl.label, ttl);
        assert_eq!(joined.counts.unlabelled, 100_000);
        let sealed = join.encode();
        println!(
            "peak after joining the next window of 100,000 and sealing ({:.0} MB): {:.0} MB",
            sealed.len() as f64 / 1e6,
            peak_mb()
        );
        return;
    }
    let stored = window(&kind, 0..n, parts);
    let stored_mb = stored.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    println!("{n} predictions in {parts} parts: {stored_mb:.0} MB stored");
    println!("peak after making the parts: {:.0} MB", peak_mb());
    let Some(WindowState::Predictions(window)) = merge(&kind, stored) else {
        unreachable!()
    };
    println!("peak after decoding and merging: {:.0} MB", peak_mb());
    let run = window.run();
    drop(window);
    println!("peak after one run: {:.0} MB", peak_mb());
    let mut join = JoinState::new(ProblemType::BinaryClassification);
    let joined = join.join(0, run, 3600, 3600 + ttl.label, ttl);
    assert_eq!(joined.counts.unlabelled, n as u64);
    drop(joined);
    println!(
        "peak after the join: {:.0} MB ({} pending)",
        peak_mb(),
        join.pending_predictions()
    );
    let sealed = join.encode();
    drop(join);
    println!(
        "peak after sealing: {:.0} MB ({:.0} MB sealed)",
        peak_mb(),
        sealed.len() as f64 / 1e6
    );
    std::fs::write(&state_path, &sealed).unwrap();
    let read = JoinState::decode(sealed).unwrap();
    assert_eq!(read.pending_predictions(), n);
    println!("peak after reading it back: {:.0} MB", peak_mb());
}

/// The stored parts of a window holding predictions `rows`, in `parts` parts.
fn window(kind: &StateKind, rows: std::ops::Range<usize>, parts: usize) -> Vec<Vec<u8>> {
    let per_part = rows.len().div_ceil(parts);
    let mut stored = Vec::new();
    for part in 0..parts {
        let rows =
            (rows.start + part * per_part)..(rows.start + (part + 1) * per_part).min(rows.end);
        let keys: Vec<_> = (rows.clone())
            .map(|i| join_key(format!("00000000-0000-4000-8000-{i:012}").as_bytes()))
            .collect();
        let scores: Vec<String> = (rows.clone())
            .map(|i| format!("{:.4}", (i * 7919 % 10_000) as f64 / 10_000.0))
            .collect();
        let labels: Vec<String> = (scores.iter())
            .map(|s| u8::from(s.as_str() > "0.5").to_string())
            .collect();
        let schema = Schema::new(vec![
            Field::new("_c0", DataType::Utf8, false),
            Field::new("_c1", DataType::Utf8, false),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(labels)),
            Arc::new(StringArray::from(scores)),
        ];
        let batch = RecordBatch::try_new(Arc::new(schema), columns).unwrap();
        let mut state = kind.empty();
        state.add_batch(&batch, &keys);
        stored.push(codec::encode(&state));
    }
    stored
}

/// The parts decoded and merged, one part read and decoded at a time, as the finaliser reads
/// them from the store.
fn merge(kind: &StateKind, stored: Vec<Vec<u8>>) -> Option<WindowState> {
    let mut merged: Option<WindowState> = None;
    for bytes in stored {
        let state = codec::decode(&bytes, kind).unwrap();
        match &mut merged {
            Some(window) => window.merge(state).unwrap(),
            None => merged = Some(state),
        }
    }
    merged
}
