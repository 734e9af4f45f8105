//! Deterministic capture of an endpoint with SageMaker Clarify online explainability: every
//! record's response carries `explanations.kernel_shap` with one attribution per feature, as the
//! endpoint returns it (and data capture keeps it). Each feature's attribution is its weight times
//! a standard normal draw; `--flip` swaps the weights of the features at the two ends of the
//! ranking (the model now leans on what it used to ignore).
//!
//! ```text
//! cargo run --example generate_attributions -- --out data --endpoint churn \
//!     --start 2026-11-01T01:00:00Z --records 300 --seed 3 --flip
//! ```

use std::path::PathBuf;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde_json::json;

/// The features and how much the model leans on each, largest first.
const FEATURES: [(&str, f64); 6] = [
    ("tenure", 0.9),
    ("monthly_charges", 0.6),
    ("contract", 0.4),
    ("support_tickets", 0.25),
    ("age", 0.1),
    ("region", 0.05),
];

#[derive(Parser, Debug)]
#[command(about = "Writes deterministic capture with Clarify online explanations")]
struct Args {
    /// Capture root: files go to {out}/{endpoint}/AllTraffic/yyyy/mm/dd/hh/capture.jsonl.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "churn")]
    endpoint: String,
    /// The first record's inference time; records are spread over the following hour.
    #[arg(long)]
    start: DateTime<Utc>,
    #[arg(long, default_value_t = 300)]
    records: usize,
    /// Swap the weights of the most and least important features, and of the second and
    /// second-to-last.
    #[arg(long)]
    flip: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut weights: Vec<f64> = FEATURES.iter().map(|(_, w)| *w).collect();
    if args.flip {
        let n = weights.len();
        weights.swap(0, n - 1);
        weights.swap(1, n - 2);
    }
    let mut text = String::new();
    for i in 0..args.records {
        let features: Vec<_> = FEATURES
            .iter()
            .zip(&weights)
            .map(|((name, _), weight)| {
                let draw: f64 = StandardNormal.sample(&mut rng);
                json!({"feature_header": name, "attributions": [{"attribution": [weight * draw]}]})
            })
            .collect();
        let score: f64 = rng.random();
        let response = json!({
            "version": "1.0",
            "predictions": {"content_type": "text/csv; charset=utf-8", "data": format!("{score:.6}\n")},
            "explanations": {"kernel_shap": [features]}
        });
        let time = args.start + Duration::milliseconds((3_600_000 * i / args.records) as i64);
        let record = json!({
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                  "data": "12,70.5,1,0,41,3", "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                   "data": response.to_string(), "encoding": "JSON"}
            },
            "eventMetadata": {
                "eventId": format!("{:08x}-0000-4000-8000-{:012}", args.seed, i),
                "inferenceTime": time.to_rfc3339_opts(SecondsFormat::Secs, true)
            },
            "eventVersion": "0"
        });
        text.push_str(&record.to_string());
        text.push('\n');
    }
    let dir = args
        .out
        .join(&args.endpoint)
        .join("AllTraffic")
        .join(args.start.format("%Y/%m/%d/%H").to_string());
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("capture.jsonl"), text)
}
