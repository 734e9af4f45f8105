//! What each fuzz target of `fuzz/` runs on one input (issue 18: every parser of outside input).
//!
//! The bodies live here, in the library, so that two callers share them: the cargo-fuzz targets
//! (nightly, `scripts/fuzz.sh`) and the stable test suite, which replays every seed and every
//! crash regression through them (`tests` below), so a regression fails CI even where no nightly
//! toolchain is installed. Each body must return normally on any input: a panic, a hang or a
//! huge allocation is a finding. The asserts state what a hostile input may never make.
//!
//! Seeds are in `fuzz/seeds/TARGET/`; an input that once crashed a target goes to
//! `fuzz/regressions/TARGET/`, named after what it broke.

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use crate::bias::BiasSpec;
use crate::decode::{DecodeOptions, Decoder, InputFormat, Limits, Quarantine, open_reader};
use crate::model_quality::{ModelQualitySpec, ProblemType};
use crate::window::{StateKind, codec};

/// A target's name (its folder under `fuzz/seeds/`) and body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, as `fuzz/Cargo.toml` names them.
pub const TARGETS: &[Target] = &[
    ("capture", capture),
    ("csv", csv),
    ("jsonl", jsonl),
    ("ground_truth", ground_truth),
    ("sqs_event", sqs_event),
    ("json_files", json_files),
    ("rules", rules),
    ("config", config),
    ("window_codec", window_codec),
    ("model_quality_codec", model_quality_codec),
    ("attribution", attribution),
];

/// The SageMaker capture line decoder, every payload encoding (CSV, JSON, BASE64).
pub fn capture(data: &[u8]) {
    let options = options(InputFormat::Capture, false);
    drain(open_reader(reader(data), "fuzz".into(), &options), &options);
}

/// CSV objects, with a header when the first byte is odd and without one otherwise.
pub fn csv(data: &[u8]) {
    let header = data.first().is_some_and(|b| b % 2 == 1);
    let options = options(InputFormat::Csv, header);
    drain(open_reader(reader(data), "fuzz".into(), &options), &options);
}

/// Flat JSON Lines objects.
pub fn jsonl(data: &[u8]) {
    let options = options(InputFormat::Jsonl, false);
    drain(open_reader(reader(data), "fuzz".into(), &options), &options);
}

/// Ground-truth (label) JSON Lines.
pub fn ground_truth(data: &[u8]) {
    let options = options(InputFormat::Jsonl, false);
    let decoder = crate::decode::ground_truth::decoder(reader(data), "fuzz".into(), &options);
    drain(Box::new(decoder), &options);
}

/// Capture of a feature-attribution monitor: the records' attributions out of the response,
/// both as Clarify's online explainability writes them and as a model's own contributions at a
/// JSON path (with headers), into a window's attribution state, then its explanations and
/// their NDCG against themselves.
pub fn attribution(data: &[u8]) {
    use crate::attribution::{
        Aggregation, AttributionAnalysis, AttributionSource, AttributionSpec, AttributionState,
    };
    let sources = [
        AttributionSource::new(None, None, None),
        AttributionSource::new(
            Some("contributions"),
            Some(vec!["a".into(), "b".into()]),
            None,
        ),
    ];
    for source in sources {
        let options = DecodeOptions {
            attributions: Some(Arc::new(source)),
            ..options(InputFormat::Capture, false)
        };
        let spec = AttributionSpec {
            aggregation: Aggregation::Median,
            max_features: 16,
            ..AttributionSpec::default()
        };
        let mut state = AttributionState::new(&spec);
        let mut decoder = open_reader(reader(data), "fuzz".into(), &options);
        let mut quarantine = Quarantine::in_memory();
        while let Ok(Some(chunk)) = decoder.next_chunk(&mut quarantine) {
            assert!(chunk.features.num_columns() <= options.limits.max_columns);
            state.add_batch(&chunk.features);
        }
        let window = crate::window::MAX_STATE_ROWS;
        assert_eq!(
            state.validate(window),
            Ok(()),
            "a state built from rows is sound"
        );
        let analysis = AttributionAnalysis::new(state.explanations());
        let _ = crate::attribution::compare(&analysis.explanations, &analysis.explanations);
    }
}

/// SQS message bodies: S3 event notifications, raw or wrapped by SNS or EventBridge.
pub fn sqs_event(data: &[u8]) {
    if let Ok(body) = std::str::from_utf8(data) {
        let _ = crate::ingest::notice::parse_message(body);
    }
}

/// The JSON files driftd reads: statistics.json, constraints.json (data and model quality),
/// analysis_config.json and analysis.json. Every input is tried as each of them.
pub fn json_files(data: &[u8]) {
    let _ = serde_json::from_slice::<crate::baseline::Statistics>(data);
    let _ = serde_json::from_slice::<crate::baseline::Constraints>(data);
    let _ = serde_json::from_slice::<crate::model_quality::ModelQualityConstraints>(data);
    let _ = serde_json::from_slice::<crate::bias::Analysis>(data);
    // An explainability analysis.json (a feature-attribution baseline), and the NDCG of its
    // ranking against itself as the monitor computes it.
    if let Ok(analysis) = serde_json::from_slice::<crate::attribution::AttributionAnalysis>(data) {
        let _ = crate::attribution::compare(&analysis.explanations, &analysis.explanations);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = BiasSpec::from_json(text, "analysis_config.json");
    }
}

/// Rules files (TOML).
pub fn rules(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::rules::RuleSet::from_toml(Path::new("rules.toml"), text);
    }
}

/// `driftd run` config files, loaded from a file as the CLI does (paths in them are relative
/// to its folder).
pub fn config(data: &[u8]) {
    static DIR: LazyLock<tempfile::TempDir> =
        LazyLock::new(|| tempfile::tempdir().expect("a temporary folder"));
    // One file per thread: the stable replay runs tests in parallel.
    let path = DIR
        .path()
        .join(format!("driftd-{:?}.toml", std::thread::current().id()));
    std::fs::write(&path, data).expect("writing the config file");
    let _ = crate::config::Config::load(&path);
}

/// Persisted window state: corrupt or truncated bytes must be an error, never a panic or a
/// huge allocation; a state that decodes must merge with another (or refuse to, when the
/// merged counts would pass [`crate::window::MAX_STATE_ROWS`]), read back after the merge, and
/// merge within small limits as the finaliser merges a window's parts.
///
/// The first byte chooses. Bits 1.. pick the monitor's kind ([`codec_kind`]). Bit 0 clear: the
/// rest is a stored state as it is. Bit 0 set: the rest is a state's body, framed here with a
/// valid header and zstd checksum ([`frame_window_body`]) so that mutations reach the body's
/// decoder instead of stopping at the checksum.
pub fn window_codec(data: &[u8]) {
    use crate::window::{MAX_STATE_ROWS, MergeLimits, WindowMerger};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (tag, kind) = codec_kind(mode >> 1);
    let bytes = if mode & 1 == 1 {
        frame_window_body(tag, rest)
    } else {
        rest.to_vec()
    };
    let (Ok(mut state), Ok(other), Ok(third)) = (
        codec::decode(&bytes, &kind),
        codec::decode(&bytes, &kind),
        codec::decode(&bytes, &kind),
    ) else {
        return;
    };
    let bound = state.count_bound();
    assert!(bound <= MAX_STATE_ROWS, "a decoded state past the bound");
    let rows = state.row_count();
    if state.merge(other).is_err() {
        assert!(
            2 * bound > MAX_STATE_ROWS,
            "a merge within the bound refused"
        );
        assert_eq!(
            state.row_count(),
            rows,
            "a refused merge changed the window"
        );
        return;
    }
    assert!(state.row_count() >= rows);
    match codec::decode(&codec::encode(&state), &kind) {
        Ok(again) => assert_eq!(again.row_count(), state.row_count()),
        Err(error) => panic!("a merged state does not read back: {error}"),
    }
    // The finaliser's merge, with limits small enough for a fuzzer's states to reach.
    let limits = MergeLimits {
        rows: crate::decode::WindowRows {
            predictions: 300,
            bias_rows: 300,
        },
        max_columns: 4,
    };
    let mut merger = WindowMerger::new(&kind, limits);
    let (first, second) = (merger.add(state), merger.add(third));
    assert!(first.is_ok(), "the first part is within the bound");
    let (window, refused) = merger.finish().expect("a part was merged");
    if second.is_ok() {
        assert!(refused.rows <= 3 * rows);
    }
    let bytes = codec::encode(&window);
    if let Err(error) = codec::decode(&bytes, &kind) {
        panic!("a window merged within limits does not read back: {error}");
    }
    match &window {
        crate::window::WindowState::Predictions(window) => {
            let held: usize = window.runs.iter().map(|run| run.len()).sum();
            assert!(held as u64 <= limits.rows.predictions);
        }
        crate::window::WindowState::BiasRows(window) => {
            let held: usize = window.runs.iter().map(|run| run.keys.len()).sum();
            assert!(held as u64 <= limits.rows.bias_rows);
            let mut names: Vec<&str> = (window.runs.iter())
                .flat_map(|run| run.columns.iter().map(|(name, _)| name.as_str()))
                .collect();
            names.sort_unstable();
            names.dedup();
            // The analysis's own columns are kept past the limit.
            names.retain(|name| !window.spec.names_column(name));
            assert!(names.len() <= limits.max_columns);
        }
        _ => {}
    }
}

/// Persisted model-quality state. Bit 0 of the first byte set: the rest is a body, given a valid
/// header and hash ([`frame_model_quality_body`]).
pub fn model_quality_codec(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 1 {
        frame_model_quality_body(rest)
    } else {
        rest.to_vec()
    };
    let Ok(mut state) = crate::model_quality::decode(&bytes) else {
        return;
    };
    let other = state.clone();
    let rows = state.rows();
    // Both halves are of one problem type, so merging cannot fail.
    state.merge(&other).expect("a state merges with itself");
    assert_eq!(state.rows(), 2 * rows);
    match crate::model_quality::decode(&crate::model_quality::encode(&state)) {
        Ok(again) => assert_eq!(again.rows(), state.rows()),
        // A merge may pass the rows a decoded state may hold; below that, it reads back.
        Err(error) => assert!(
            state.rows() > crate::model_quality::MAX_STATE_ROWS,
            "a re-encoded state does not decode: {error}"
        ),
    }
}

/// The window-state kinds, by number (taken modulo 9), with their codec tag (window/codec.rs's
/// format table): data quality, bias under [`fuzz_bias_spec`], model quality of each problem
/// type, predictions waiting for labels (multiclass, so with class names), feature attribution
/// (median, so with sketches), bias rows waiting for labels and multivariate drift under
/// [`fuzz_multivariate_spec`].
pub fn codec_kind(number: u8) -> (u8, StateKind) {
    match number % 9 {
        0 => (1, StateKind::DataQuality),
        1 => (2, StateKind::Bias(fuzz_bias_spec())),
        2 => (3, model_quality_kind(ProblemType::BinaryClassification)),
        3 => (3, model_quality_kind(ProblemType::MulticlassClassification)),
        4 => (3, model_quality_kind(ProblemType::Regression)),
        5 => (
            4,
            StateKind::Predictions(model_quality_spec(ProblemType::MulticlassClassification)),
        ),
        6 => (
            5,
            StateKind::FeatureAttribution(Arc::new(crate::attribution::AttributionSpec {
                aggregation: crate::attribution::Aggregation::Median,
                ..Default::default()
            })),
        ),
        7 => (6, StateKind::BiasRows(fuzz_bias_spec())),
        _ => (7, StateKind::MultivariateDrift(fuzz_multivariate_spec())),
    }
}

/// The names of [`codec_kind`]'s kinds, for the seeds' file names.
const CODEC_KIND_NAMES: [&str; 9] = [
    "data_quality",
    "bias",
    "binary",
    "multiclass",
    "regression",
    "predictions",
    "feature_attribution",
    "bias_rows",
    "multivariate_drift",
];

/// The bias analysis the window-codec target reads states for: one facet with a value, one
/// one-vs-rest, a group variable, every metric.
pub fn fuzz_bias_spec() -> Arc<BiasSpec> {
    static SPEC: LazyLock<Arc<BiasSpec>> = LazyLock::new(|| {
        let text = r#"{"label": "label", "label_values_or_threshold": [1], "predicted_label": "pred",
            "facet": [{"name_or_index": "sex", "value_or_threshold": [1]}, {"name_or_index": "race"}],
            "group_variable": "zone",
            "methods": {"pre_training_bias": {"methods": "all"},
                        "post_training_bias": {"methods": "all"}}}"#;
        Arc::new(BiasSpec::from_json(text, "fuzz").expect("the fuzz bias spec is valid"))
    });
    SPEC.clone()
}

/// The multivariate baseline the window-codec target reads states for: x1 (continuous), zone
/// (small integers) and race (categorical, sometimes missing), fitted on the seed batch's rows.
pub fn fuzz_multivariate_spec() -> Arc<crate::multivariate::MultivariateSpec> {
    static SPEC: LazyLock<Arc<crate::multivariate::MultivariateSpec>> = LazyLock::new(|| {
        use crate::multivariate::{Baseline, ReferenceBuilder};
        let names = ["x1", "zone", "race"].map(String::from).to_vec();
        let mut reference = ReferenceBuilder::new(names).expect("three features");
        for i in 0..200u32 {
            let x1 = (f64::from(i * 37 % 100) / 100.0).to_string();
            let zone = (i % 4).to_string();
            let race = ["a", "b", "c"][(i % 3) as usize];
            let race = (i % 17 != 0).then_some(race);
            (reference.push_row(&[Some(&x1), Some(&zone), race])).expect("a row of three cells");
        }
        let baseline = Baseline::fit(reference, crate::cbpe::Chunking::Size(50))
            .expect("the fuzz reference fits");
        Arc::new(crate::multivariate::MultivariateSpec::new(baseline))
    });
    SPEC.clone()
}

fn model_quality_kind(problem_type: ProblemType) -> StateKind {
    StateKind::ModelQuality(model_quality_spec(problem_type))
}

fn model_quality_spec(problem_type: ProblemType) -> Arc<ModelQualitySpec> {
    Arc::new(ModelQualitySpec {
        problem_type,
        inference_attribute: Some("pred".into()),
        probability_attribute: None,
        probability_threshold: None,
        ground_truth_attribute: "label".into(),
        class_scores: Vec::new(),
    })
}

/// A window-state body behind a valid header (current version, `tag`) and in a zstd frame with
/// its checksum, as window/codec.rs lays them out.
pub fn frame_window_body(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = codec::MAGIC.to_vec();
    out.extend_from_slice(&codec::FORMAT_VERSION.to_le_bytes());
    out.push(tag);
    let mut encoder = zstd::stream::Encoder::new(out, 1).expect("zstd encoder");
    encoder.include_checksum(true).expect("zstd checksum flag");
    encoder.write_all(body).expect("zstd into a Vec");
    encoder.finish().expect("zstd into a Vec")
}

/// A model-quality body behind a valid header and its xxHash64, as model_quality/codec.rs lays
/// them out.
pub fn frame_model_quality_body(body: &[u8]) -> Vec<u8> {
    // The magic "DRMQ" (model_quality/codec.rs keeps its constant private).
    let mut out = b"DRMQ".to_vec();
    out.push(crate::model_quality::FORMAT_VERSION);
    out.extend_from_slice(&twox_hash::XxHash64::oneshot(0, body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Valid stored states for the codec targets' seeds, each as a target input: `(target, name,
/// input)`. Every kind of [`codec_kind`], stored as is (first byte even) and as a bare body
/// (first byte odd), so that the fuzzer starts from states that pass the checksum and decode.
/// `examples/fuzz_seeds.rs` writes them to `fuzz/seeds/`.
pub fn codec_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let batch = seed_batch();
    let keys: Vec<u128> = (0..batch.num_rows() as u128).collect();
    let mut seeds = Vec::new();
    for (number, name) in (0u8..).zip(CODEC_KIND_NAMES) {
        let (_, kind) = codec_kind(number);
        let mut state = kind.empty();
        state.add_batch(&batch, &keys);
        let stored = codec::encode(&state);
        let body = zstd::stream::decode_all(&stored[7..]).expect("a body just compressed");
        seeds.push((
            "window_codec",
            format!("valid-{name}"),
            [&[number << 1], &stored[..]].concat(),
        ));
        seeds.push((
            "window_codec",
            format!("valid-{name}-body"),
            [&[number << 1 | 1], &body[..]].concat(),
        ));
        if let crate::window::WindowState::ModelQuality(window) = state {
            let stored = crate::model_quality::encode(&window.state);
            seeds.push((
                "model_quality_codec",
                format!("valid-{name}"),
                [&[0], &stored[..]].concat(),
            ));
            seeds.push((
                "model_quality_codec",
                format!("valid-{name}-body"),
                [&[1], &stored[13..]].concat(),
            ));
        }
    }
    seeds
}

/// 200 rows with every column the codec kinds read: sex, race (sometimes missing), zone, x1,
/// label and pred, decoded from CSV as a monitor's rows are.
fn seed_batch() -> arrow::record_batch::RecordBatch {
    let mut text = String::from("sex,race,zone,x1,label,pred\n");
    for i in 0..200u32 {
        let sex = u32::from(i % 3 == 0);
        let race = if i % 17 == 0 {
            ""
        } else {
            ["a", "b", "c"][(i % 3) as usize]
        };
        let label = u32::from((i * 7 + sex) % 3 == 0);
        let pred = if i % 5 == 0 { 1 - label } else { label };
        let x1 = f64::from(i * 37 % 100) / 100.0;
        text.push_str(&format!("{sex},{race},{},{x1},{label},{pred}\n", i % 4));
    }
    let options = DecodeOptions {
        format: InputFormat::Csv,
        header: true,
        ..DecodeOptions::default()
    };
    let mut decoder = open_reader(reader(text.as_bytes()), "seed".into(), &options);
    let chunk = decoder.next_chunk(&mut Quarantine::in_memory());
    chunk
        .expect("the seed CSV decodes")
        .expect("one chunk")
        .features
}

/// Small limits, so a fuzzer reaches them with small inputs.
fn options(format: InputFormat, header: bool) -> DecodeOptions {
    DecodeOptions {
        format,
        header,
        chunk_rows: 64,
        limits: Limits {
            max_record_bytes: 64 * 1024,
            max_columns: 256,
            max_json_depth: 8,
            max_key_bytes: 128,
            ..Limits::default()
        },
        ..DecodeOptions::default()
    }
}

/// Every chunk of `decoder`; an error ends the object, as it does in the pipeline. No chunk
/// may have more columns than the limit allows.
fn drain(mut decoder: Box<dyn Decoder>, options: &DecodeOptions) {
    let mut quarantine = Quarantine::in_memory();
    while let Ok(Some(chunk)) = decoder.next_chunk(&mut quarantine) {
        assert!(chunk.features.num_columns() <= options.limits.max_columns);
    }
}

fn reader(data: &[u8]) -> Box<dyn std::io::BufRead + Send> {
    Box::new(std::io::Cursor::new(data.to_vec()))
}

#[cfg(test)]
mod tests {
    //! The stable half of fuzzing: every seed and every crash regression, through the targets.

    use std::path::PathBuf;

    use super::*;

    /// The files a target starts from: its seeds and regressions, and the fixtures it reads
    /// (scripts/fuzz.sh picks the same ones for libFuzzer).
    fn inputs(target: &str) -> Vec<PathBuf> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let extension = match target {
            "capture" | "jsonl" | "ground_truth" | "attribution" => Some("jsonl"),
            "csv" => Some("csv"),
            "json_files" => Some("json"),
            "rules" | "config" => Some("toml"),
            _ => None,
        };
        let mut files = Vec::new();
        for folder in ["tests/fixtures", "examples", "rules"] {
            walk(&repo.join(folder), &mut |path| {
                if extension.is_some() && path.extension().and_then(|e| e.to_str()) == extension {
                    files.push(path.to_path_buf());
                }
            });
        }
        for folder in ["fuzz/seeds", "fuzz/regressions"] {
            walk(&repo.join(folder).join(target), &mut |path| {
                files.push(path.to_path_buf())
            });
        }
        files
    }

    fn walk(dir: &Path, found: &mut dyn FnMut(&Path)) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if entry.metadata().is_ok_and(|m| m.len() < 64 * 1024) {
                found(&path);
            }
        }
    }

    /// Runs `target` on each of its inputs; fails naming every input that panicked.
    fn replay(target: &str) {
        let (_, body) = TARGETS.iter().find(|(name, _)| *name == target).unwrap();
        let files = inputs(target);
        let mut inputs: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|path| (path.display().to_string(), std::fs::read(path).unwrap()))
            .collect();
        inputs.extend(
            codec_seeds()
                .into_iter()
                .filter(|(t, _, _)| *t == target)
                .map(|(_, name, bytes)| (format!("codec_seeds() {name}"), bytes)),
        );
        assert!(!inputs.is_empty(), "{target} has no seeds");
        let failed: Vec<&str> = inputs
            .iter()
            .filter(|(_, bytes)| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(bytes))).is_err()
            })
            .map(|(name, _)| name.as_str())
            .collect();
        assert!(failed.is_empty(), "{target} panicked on {failed:#?}");
    }

    macro_rules! replay_tests {
        ($($target:ident),*) => {$(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*};
    }

    mod replays_every_seed_and_regression_of {
        use super::replay;
        replay_tests!(
            capture,
            csv,
            jsonl,
            ground_truth,
            sqs_event,
            json_files,
            rules,
            config,
            window_codec,
            model_quality_codec,
            attribution
        );
    }

    #[test]
    fn every_target_has_a_replay_test() {
        let tested = [
            "capture",
            "csv",
            "jsonl",
            "ground_truth",
            "sqs_event",
            "json_files",
            "rules",
            "config",
            "window_codec",
            "model_quality_codec",
            "attribution",
        ];
        let targets: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
        assert_eq!(targets, tested);
        let manifest =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml"))
                .unwrap();
        for name in tested {
            assert!(
                manifest.contains(&format!("name = \"{name}\"")),
                "fuzz/Cargo.toml lacks {name}"
            );
        }
    }

    /// The codec seeds are states the codecs read back, in both forms, both freshly made and as
    /// checked in under fuzz/seeds/ (a format change that leaves them unreadable fails here:
    /// rerun `cargo run --example fuzz_seeds`).
    #[test]
    fn codec_seeds_decode_fresh_and_checked_in() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let seeds = codec_seeds();
        // Two per window kind, two per model-quality problem type.
        assert_eq!(seeds.len(), 2 * CODEC_KIND_NAMES.len() + 6);
        for (target, name, fresh) in seeds {
            let checked_in = std::fs::read(repo.join("fuzz/seeds").join(target).join(&name))
                .unwrap_or_else(|e| panic!("fuzz/seeds/{target}/{name}: {e}"));
            for bytes in [fresh, checked_in] {
                let (&mode, rest) = bytes.split_first().unwrap();
                let decoded = if target == "window_codec" {
                    let (tag, kind) = codec_kind(mode >> 1);
                    let stored = if mode & 1 == 1 {
                        frame_window_body(tag, rest)
                    } else {
                        rest.to_vec()
                    };
                    codec::decode(&stored, &kind)
                        .map(|s| s.row_count())
                        .map_err(|e| e.to_string())
                } else {
                    let stored = if mode & 1 == 1 {
                        frame_model_quality_body(rest)
                    } else {
                        rest.to_vec()
                    };
                    crate::model_quality::decode(&stored)
                        .map(|s| s.rows())
                        .map_err(|e| e.to_string())
                };
                assert_eq!(decoded, Ok(200), "{target}/{name}");
            }
        }
    }
}
