//! Deterministic generator of SageMaker data capture traffic, for the quickstart, tests and
//! benchmarks.
//!
//! Capture mode writes JSON Lines laid out as SageMaker does (FORMATS.md §1.1, §1.3):
//! `{out}/{endpoint}/{variant}/yyyy/mm/dd/hh/MM-SS-mmm-<uuid>.jsonl`, CSV payloads, the features
//! in `endpointInput` and a model score in `endpointOutput`. `--csv` writes the same rows as a
//! headerless CSV instead, score first, the way a Model Monitor baseline dataset lines up with
//! captured rows (output columns at the START).
//!
//! The distributions depend only on the feature's index and `--drift`, never on `--seed`, so a
//! baseline and a current window drawn with different seeds and no drift come from the same
//! population.
//!
//! ```text
//! cargo run --release --example generate_capture -- --out data/capture --records 100000 --hours 2
//! cargo run --release --example generate_capture -- --csv data/baseline.csv --records 50000 --seed 2
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal, weighted::WeightedIndex};

#[derive(Parser, Debug)]
#[command(about = "Writes deterministic SageMaker data capture JSONL (or a baseline CSV)")]
struct Args {
    /// Root of the capture tree (SageMaker's DestinationS3Uri). Required unless --csv is given.
    #[arg(long, required_unless_present = "csv")]
    out: Option<PathBuf>,
    #[arg(long, default_value = "driftd-demo")]
    endpoint: String,
    #[arg(long, default_value = "AllTraffic")]
    variant: String,
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    /// Number of numeric features.
    #[arg(long, default_value_t = 20)]
    numeric: usize,
    /// Number of categorical features (values "A".."E", skewed).
    #[arg(long, default_value_t = 5)]
    categorical: usize,
    /// Inference time of the first record (UTC).
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    start: DateTime<Utc>,
    /// Records are spread evenly over this many hours.
    #[arg(long, default_value_t = 1)]
    hours: u32,
    /// A new file starts after this many records (and at every hour, as SageMaker's do).
    #[arg(long, default_value_t = 1000)]
    records_per_file: u64,
    /// Drift in standard deviations: shifts the means of the first 3 numeric features and skews
    /// the first categorical feature's probabilities. 0 = the baseline population.
    #[arg(long, default_value_t = 0.0)]
    drift: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the rows as one headerless CSV (score, then features) instead of capture files.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// The score's logit at the features' undrifted means (the model's base rate).
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    intercept: f64,
    /// Also draw each record's true label, 1 with the score's probability (a calibrated
    /// model): capture mode writes SageMaker ground-truth records under this directory
    /// (`{endpoint}/yyyy/mm/dd/hh/labels.jsonl`, in the record's hour); with --csv a label
    /// column is appended (any value here).
    #[arg(long)]
    ground_truth: Option<PathBuf>,
    /// Gzip every file written (driftd detects compression by magic bytes).
    #[arg(long)]
    gzip: bool,
}

/// One capture record (FORMATS.md §1.3); structs rather than `json!` to keep SageMaker's key order.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    capture_data: CaptureData<'a>,
    event_metadata: EventMetadata,
    event_version: &'static str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct CaptureData<'a> {
    endpoint_input: Payload<'a>,
    endpoint_output: Payload<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    observed_content_type: &'static str,
    mode: &'static str,
    data: &'a str,
    encoding: &'static str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct EventMetadata {
    event_id: String,
    inference_time: String,
}

const CATEGORIES: [&str; 5] = ["A", "B", "C", "D", "E"];
const CATEGORY_WEIGHTS: [f64; 5] = [0.40, 0.25, 0.15, 0.12, 0.08];

/// The population: per-feature distributions, fixed by the feature's index and the drift.
struct Population {
    numeric: Vec<(Normal<f64>, f64, bool)>, // (distribution, undrifted mean, rounded to an integer)
    categorical: Vec<WeightedIndex<f64>>,
    intercept: f64,
}

impl Population {
    fn new(numeric: usize, categorical: usize, drift: f64, intercept: f64) -> Self {
        let numeric = (0..numeric)
            .map(|j| {
                let (mean, sd) = (10.0 * (j + 1) as f64, 1.0 + (j % 5) as f64);
                let shift = if j < 3 { drift * sd } else { 0.0 };
                // Every third feature is integral, so both Deequ types (Integral, Fractional) occur.
                (Normal::new(mean + shift, sd).unwrap(), mean, j % 3 == 2)
            })
            .collect();
        // Drift moves mass from the common categories to the rare ones: t = 0 is the baseline,
        // t → 1 reverses the order of the weights.
        let t = drift.abs() / (1.0 + drift.abs());
        let categorical = (0..categorical)
            .map(|k| {
                let w: Vec<f64> = (0..5)
                    .map(|i| {
                        let (p, reversed) = (CATEGORY_WEIGHTS[i], CATEGORY_WEIGHTS[4 - i]);
                        if k == 0 {
                            (1.0 - t) * p + t * reversed
                        } else {
                            p
                        }
                    })
                    .collect();
                WeightedIndex::new(w).unwrap()
            })
            .collect();
        Self {
            numeric,
            categorical,
            intercept,
        }
    }

    /// One record: the feature values as text and the model's score.
    fn sample(&self, rng: &mut StdRng) -> (Vec<String>, f64) {
        let mut values = Vec::with_capacity(self.numeric.len() + self.categorical.len());
        let mut logit = self.intercept;
        for (j, (dist, base_mean, integral)) in self.numeric.iter().enumerate() {
            let x = dist.sample(rng);
            // The score follows the drifting features, as a real model's output would.
            if j < 3 {
                logit += 0.5 * (x - base_mean) / dist.std_dev();
            }
            values.push(if *integral {
                format!("{}", x.round() as i64)
            } else {
                format!("{x:.4}")
            });
        }
        for dist in &self.categorical {
            values.push(CATEGORIES[dist.sample(rng)].to_string());
        }
        (values, 1.0 / (1.0 + (-logit).exp()))
    }
}

/// A random UUID (version 4 layout) from the seeded generator, so reruns write identical files.
fn uuid(rng: &mut StdRng) -> String {
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn create(path: &Path, gzip: bool) -> std::io::Result<Box<dyn Write>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    Ok(if gzip {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(file)
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.records_per_file > 0 && args.hours > 0,
        "--records-per-file and --hours must be > 0"
    );
    let population = Population::new(args.numeric, args.categorical, args.drift, args.intercept);
    // Separate streams for data and ids, so the rows do not depend on how they are split into
    // files: the same seed gives the same rows in --csv and capture mode.
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut id_rng = StdRng::seed_from_u64(args.seed ^ 0x9e37_79b9_7f4a_7c15);
    // Labels from a stream of their own, so asking for them changes no row.
    let mut label_rng = StdRng::seed_from_u64(args.seed ^ 0x6c61_6265_6c73);
    let mut label = |score: f64| u8::from(label_rng.random::<f64>() < score);
    let gz = if args.gzip { ".gz" } else { "" };

    if let Some(path) = &args.csv {
        let mut w = create(path, args.gzip)?;
        for _ in 0..args.records {
            let (values, score) = population.sample(&mut rng);
            write!(w, "{score:.6},{}", values.join(","))?;
            if args.ground_truth.is_some() {
                write!(w, ",{}", label(score))?;
            }
            writeln!(w)?;
        }
        w.flush()?;
        drop(w);
        println!(
            "wrote {} rows ({} columns: score + features, no header) to {}",
            args.records,
            1 + args.numeric + args.categorical,
            path.display()
        );
        return Ok(());
    }

    let out = args
        .out
        .as_ref()
        .expect("clap requires --out without --csv");
    let root = out.join(&args.endpoint).join(&args.variant);
    let span_ms = i64::from(args.hours) * 3_600_000;
    let (mut files, mut in_file, mut hour) = (0u64, 0u64, None);
    let mut writer: Option<Box<dyn Write>> = None;
    let mut labels: Option<(String, Box<dyn Write>)> = None;
    for i in 0..args.records {
        let t = args.start + Duration::milliseconds(span_ms * i as i64 / args.records as i64);
        let this_hour = t.format("%Y/%m/%d/%H").to_string();
        // SageMaker names a file by the time it was opened and files it under that hour.
        if writer.is_none() || in_file == args.records_per_file || hour.as_ref() != Some(&this_hour)
        {
            if let Some(mut w) = writer.take() {
                w.flush()?;
            }
            let name = format!("{}-{}.jsonl{gz}", t.format("%M-%S-%3f"), uuid(&mut id_rng));
            writer = Some(create(&root.join(&this_hour).join(name), args.gzip)?);
            (files, in_file, hour) = (files + 1, 0, Some(this_hour));
        }
        let (values, score) = population.sample(&mut rng);
        let truth = args.ground_truth.as_ref().map(|_| label(score));
        let (data, score) = (values.join(","), format!("{score:.6}"));
        let record = Record {
            capture_data: CaptureData {
                endpoint_input: Payload {
                    observed_content_type: "text/csv",
                    mode: "INPUT",
                    data: &data,
                    encoding: "CSV",
                },
                endpoint_output: Payload {
                    observed_content_type: "text/csv; charset=utf-8",
                    mode: "OUTPUT",
                    data: &score,
                    encoding: "CSV",
                },
            },
            event_metadata: EventMetadata {
                event_id: uuid(&mut id_rng),
                inference_time: t.to_rfc3339_opts(SecondsFormat::Secs, true),
            },
            event_version: "0",
        };
        let w = writer.as_mut().unwrap();
        serde_json::to_writer(&mut *w, &record)?;
        w.write_all(b"\n")?;
        in_file += 1;
        if let (Some(dir), Some(truth)) = (&args.ground_truth, truth) {
            let this_hour = hour.clone().expect("a file is open");
            if labels.as_ref().is_none_or(|(h, _)| *h != this_hour) {
                if let Some((_, mut w)) = labels.take() {
                    w.flush()?;
                }
                let path = dir
                    .join(&args.endpoint)
                    .join(&this_hour)
                    .join("labels.jsonl");
                labels = Some((this_hour, create(&path, false)?));
            }
            let ground_truth = serde_json::json!({
                "groundTruthData": {"data": truth.to_string(), "encoding": "CSV"},
                "eventMetadata": {"eventId": record.event_metadata.event_id},
                "eventVersion": "0"
            });
            let (_, w) = labels.as_mut().expect("opened above");
            writeln!(w, "{ground_truth}")?;
        }
    }
    if let Some(mut w) = writer.take() {
        w.flush()?;
    }
    if let Some((_, mut w)) = labels.take() {
        w.flush()?;
    }
    println!(
        "wrote {} capture records in {files} files under {}",
        args.records,
        root.display()
    );
    Ok(())
}
