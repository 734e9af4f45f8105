//! Durable bytes for one window's mergeable state, so that partial states can be stored (local
//! disk, S3) and merged later — in another process, after a restart, or by a later driftd.
//!
//! ```text
//! offset  size  what
//! 0       4     magic "DRWS" (driftd window state)
//! 4       2     format version, little-endian (FORMAT_VERSION)
//! 6       1     kind: 1 = data quality (a Profile), 2 = bias (a BiasState), 3 = model quality,
//!               4 = predictions, 5 = feature attribution (an AttributionState), 6 = bias rows,
//!               7 = multivariate drift
//! 7       ..    one zstd frame, with its content checksum, of the postcard body:
//!                 data quality:  the Profile
//!                 bias:          the spec's shape (JSON text), then the BiasState without its spec
//!                 model quality: the rows skipped, then the state in its own encoding
//!                                (model_quality::encode, which carries its problem type)
//!                 predictions:   the problem type, the PredictionRun, then (version 3)
//!                                the class scores with their classes, if any (4: a
//!                                model-quality monitor's window waiting for its labels)
//!                 feature attribution (5): the AttributionState (its aggregation and feature limit
//!                                included, checked against the monitor's on reading)
//!                 bias rows:     the BiasRows (6: a bias monitor's window waiting for its
//!                                labels)
//!                 multivariate drift (7): the baseline's digest (checked against the
//!                                monitor's on reading), the reconstruction-error state, the
//!                                rows refused per feature (multivariate::monitor::StoredWindow)
//! ```
//!
//! Versions: 1, the first; 2 added the bias state's pair counts (its last field, an `Option`).
//! A version-1 bias body is therefore a version-2 body less that field's final byte, postcard's
//! `None`: it is read as a state without pair counts. Data quality bodies are the same in both.
//! 3 added the predictions' class scores (the last field, an `Option`), read the same way from
//! earlier predictions bodies; no other body changed.
//!
//! postcard is positional and not self-describing: any change to the serde form of a `Profile`
//! or `BiasState` (a field added, moved or retyped, or a change of meaning such as the bias
//! codes or the HyperLogLog's hash) needs a new `FORMAT_VERSION`, and a reader of the old one if
//! stored states must survive the upgrade. The `reads_format_version_1` and
//! `reads_format_version_2` tests hold each version's bytes and fail when the body changes
//! under them.
//!
//! The bias spec comes from config and is not stored; its shape is, so that a state built for
//! another analysis is refused with the fields that differ instead of being misread.

use std::io::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    BiasRows, BiasRowsWindow, MAX_STATE_ROWS, ModelQualityWindow, PredictionWindow, StateKind,
    WindowState,
};
use crate::attribution::AttributionState;
use crate::bias::BiasState;
use crate::bias::state::{StoredBiasState, spec_shape};
use crate::multivariate::MultivariateWindow;
use crate::multivariate::monitor::StoredWindow;
use crate::profile::Profile;

pub const MAGIC: [u8; 4] = *b"DRWS";
pub const FORMAT_VERSION: u16 = 3;
/// The version before pair counts, still read.
const FORMAT_VERSION_1: u16 = 1;
/// The first version whose predictions bodies carry class scores.
const CLASS_SCORES_SINCE: u16 = 3;
const HEADER_LEN: usize = 7;
const TAG_DATA_QUALITY: u8 = 1;
const TAG_BIAS: u8 = 2;
const TAG_MODEL_QUALITY: u8 = 3;
const TAG_PREDICTIONS: u8 = 4;
const TAG_FEATURE_ATTRIBUTION: u8 = 5;
const TAG_BIAS_ROWS: u8 = 6;
const TAG_MULTIVARIATE_DRIFT: u8 = 7;
/// zstd's default level. On a 25-column profile it came out 1 % smaller than level 1 (and level 9
/// under 1 % smaller again): the float sketches, most of the bytes, barely compress at any level.
const ZSTD_LEVEL: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not a driftd window state: it starts with {found:02x?}, not the magic \"DRWS\"")]
    WrongMagic { found: Vec<u8> },
    #[error(
        "window state format version {0} is not supported (this driftd reads versions {FORMAT_VERSION_1} to {FORMAT_VERSION}); \
         it was written by a different driftd"
    )]
    UnsupportedVersion(u16),
    #[error("window state holds {found} state, but this monitor keeps {expected} state")]
    KindMismatch {
        expected: &'static str,
        found: &'static str,
    },
    #[error("window state was built for a different monitor spec: {differences}")]
    SpecMismatch { differences: String },
    #[error("window state is corrupt: {0}")]
    Corrupt(String),
}

/// The bias body as written: the spec's shape, then the state (borrowed).
#[derive(Serialize)]
struct BiasBodyOut<'a> {
    spec_shape: String,
    state: &'a BiasState,
}

/// The bias body as read back (same fields, same order).
#[derive(Deserialize)]
struct BiasBodyIn {
    spec_shape: String,
    state: StoredBiasState,
}

/// The model-quality body (written and read alike).
#[derive(Serialize, Deserialize)]
struct ModelQualityBody {
    skipped_rows: u64,
    state: Vec<u8>,
}

/// The predictions body (written and read alike). `scores` came with version 3: a body of an
/// earlier version is read with `None` (postcard's one zero byte) appended.
#[derive(Serialize, Deserialize)]
struct PredictionsBody {
    problem_type: crate::model_quality::ProblemType,
    run: crate::model_quality::PredictionRun,
    scores: Option<StoredScores>,
}

/// A window's class scores with the classes they are of, so that scores stored before the
/// configured classes changed are not read as theirs.
#[derive(Serialize, Deserialize)]
struct StoredScores {
    classes: Vec<String>,
    run: crate::model_quality::ClassScoreRun,
}

fn class_names(spec: &crate::model_quality::ModelQualitySpec) -> Vec<String> {
    spec.class_scores
        .iter()
        .map(|(class, _)| class.clone())
        .collect()
}

/// The bytes of `state`: header, then the zstd-compressed postcard body.
pub fn encode(state: &WindowState) -> Vec<u8> {
    // postcard fails only on sequences of unknown length, which no serde form here has.
    let (tag, body) = match state {
        WindowState::DataQuality(profile) => (TAG_DATA_QUALITY, postcard::to_stdvec(profile)),
        WindowState::Bias(state) => {
            let body = BiasBodyOut {
                spec_shape: spec_shape(state.spec()).to_string(),
                state,
            };
            (TAG_BIAS, postcard::to_stdvec(&body))
        }
        WindowState::ModelQuality(window) => {
            let body = ModelQualityBody {
                skipped_rows: window.skipped_rows,
                state: crate::model_quality::encode(&window.state),
            };
            (TAG_MODEL_QUALITY, postcard::to_stdvec(&body))
        }
        WindowState::Predictions(window) => {
            let body = PredictionsBody {
                problem_type: window.spec.problem_type,
                run: window.run(),
                scores: window.score_run().map(|run| StoredScores {
                    classes: class_names(&window.spec),
                    run,
                }),
            };
            (TAG_PREDICTIONS, postcard::to_stdvec(&body))
        }
        WindowState::BiasRows(window) => (TAG_BIAS_ROWS, postcard::to_stdvec(&window.runs)),
        WindowState::FeatureAttribution(state) => {
            (TAG_FEATURE_ATTRIBUTION, postcard::to_stdvec(state.as_ref()))
        }
        WindowState::MultivariateDrift(window) => (
            TAG_MULTIVARIATE_DRIFT,
            postcard::to_stdvec(&window.to_stored()),
        ),
    };
    let body = body.expect("window state serializes with postcard");

    let mut out = Vec::with_capacity(HEADER_LEN + body.len() / 4);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(tag);
    // Writing to a Vec cannot fail; zstd errors here would be a bad parameter, i.e. a bug.
    let mut encoder = zstd::stream::Encoder::new(out, ZSTD_LEVEL).expect("zstd encoder");
    encoder.include_checksum(true).expect("zstd checksum flag");
    encoder
        .set_pledged_src_size(Some(body.len() as u64))
        .expect("zstd pledged size");
    encoder.write_all(&body).expect("zstd into a Vec");
    encoder.finish().expect("zstd into a Vec")
}

/// Reads bytes written by [`encode`] back into a state of `kind`, whose spec (for bias) is
/// re-attached after checking it is the one the state was built for.
pub fn decode(bytes: &[u8], kind: &StateKind) -> Result<WindowState, CodecError> {
    let (version, tag) = read_header(bytes)?;
    let expected = match kind {
        StateKind::DataQuality => TAG_DATA_QUALITY,
        StateKind::Bias(_) => TAG_BIAS,
        StateKind::ModelQuality(_) => TAG_MODEL_QUALITY,
        StateKind::Predictions(_) => TAG_PREDICTIONS,
        StateKind::BiasRows(_) => TAG_BIAS_ROWS,
        StateKind::FeatureAttribution(_) => TAG_FEATURE_ATTRIBUTION,
        StateKind::MultivariateDrift(_) => TAG_MULTIVARIATE_DRIFT,
    };
    if tag != expected {
        return Err(CodecError::KindMismatch {
            expected: kind_name(expected),
            found: kind_name(tag),
        });
    }
    let mut body = decompress_bounded(&bytes[HEADER_LEN..]).map_err(CodecError::Corrupt)?;
    if version == FORMAT_VERSION_1 && tag == TAG_BIAS {
        // Version 1 had no pair counts: read its body as version 2's with `pairs: None`.
        body.push(0);
    }
    if version < CLASS_SCORES_SINCE && tag == TAG_PREDICTIONS {
        // Before version 3 predictions had no class scores: `scores: None`.
        body.push(0);
    }
    match kind {
        StateKind::DataQuality => {
            let profile: Profile = from_body(&body)?;
            (profile.validate(MAX_STATE_ROWS))
                .map_err(|e| CodecError::Corrupt(format!("profile: {e}")))?;
            Ok(WindowState::DataQuality(profile))
        }
        StateKind::Bias(spec) => {
            let stored: BiasBodyIn = from_body(&body)?;
            let theirs: Value = serde_json::from_str(&stored.spec_shape)
                .map_err(|e| CodecError::Corrupt(format!("stored bias spec: {e}")))?;
            let ours = spec_shape(spec);
            if theirs != ours {
                return Err(CodecError::SpecMismatch {
                    differences: differences(&theirs, &ours),
                });
            }
            let state = stored
                .state
                .into_state(spec.clone())
                .and_then(|state| state.validate_counts(MAX_STATE_ROWS).map(|()| state))
                .map_err(|e| CodecError::Corrupt(format!("bias state: {e}")))?;
            Ok(WindowState::Bias(Box::new(state)))
        }
        StateKind::ModelQuality(spec) => {
            let body: ModelQualityBody = from_body(&body)?;
            let state = crate::model_quality::decode(&body.state)
                .map_err(|e| CodecError::Corrupt(format!("model-quality state: {e}")))?;
            if state.problem_type() != spec.problem_type {
                return Err(CodecError::SpecMismatch {
                    differences: format!(
                        "problem_type: stored {:?}, configured {:?}",
                        state.problem_type(),
                        spec.problem_type
                    ),
                });
            }
            if body.skipped_rows > MAX_STATE_ROWS {
                return Err(CodecError::Corrupt(format!(
                    "{} rows skipped, more than a window may hold ({MAX_STATE_ROWS})",
                    body.skipped_rows
                )));
            }
            Ok(WindowState::ModelQuality(Box::new(ModelQualityWindow {
                spec: spec.clone(),
                state,
                skipped_rows: body.skipped_rows,
            })))
        }
        StateKind::Predictions(spec) => {
            let mut body: PredictionsBody = from_body(&body)?;
            body.run.shrink_to_fit();
            if body.problem_type != spec.problem_type {
                return Err(CodecError::SpecMismatch {
                    differences: format!(
                        "problem_type: stored {:?}, configured {:?}",
                        body.problem_type, spec.problem_type
                    ),
                });
            }
            body.run
                .validate()
                .map_err(|e| CodecError::Corrupt(format!("predictions: {e}")))?;
            let counts = [body.run.len() as u64, body.run.duplicates, body.run.skipped];
            let total = counts.into_iter().try_fold(0u64, u64::checked_add);
            if total.is_none_or(|n| n > MAX_STATE_ROWS) {
                return Err(CodecError::Corrupt(format!(
                    "predictions: {counts:?} rows, more than a window may hold ({MAX_STATE_ROWS})"
                )));
            }
            // Scores of other classes than the configured ones (the estimate's config changed)
            // are left out: their rows count as unscored.
            let scores = match body.scores {
                Some(mut stored) if stored.classes == class_names(spec) => {
                    stored.run.shrink_to_fit();
                    (stored.run.validate())
                        .map_err(|e| CodecError::Corrupt(format!("class scores: {e}")))?;
                    if stored.run.len() > body.run.len() {
                        return Err(CodecError::Corrupt(format!(
                            "class scores of {} rows, more than the {} predictions",
                            stored.run.len(),
                            body.run.len()
                        )));
                    }
                    vec![stored.run]
                }
                _ => Vec::new(),
            };
            Ok(WindowState::Predictions(PredictionWindow {
                spec: spec.clone(),
                runs: vec![body.run],
                scores,
            }))
        }
        StateKind::BiasRows(spec) => {
            let runs: Vec<BiasRows> = from_body(&body)?;
            for run in &runs {
                run.validate()
                    .map_err(|e| CodecError::Corrupt(format!("bias rows: {e}")))?;
            }
            Ok(WindowState::BiasRows(BiasRowsWindow {
                spec: spec.clone(),
                runs,
                refused_rows: 0,
            }))
        }
        StateKind::FeatureAttribution(spec) => {
            let state: AttributionState = from_body(&body)?;
            (state.validate(MAX_STATE_ROWS))
                .map_err(|e| CodecError::Corrupt(format!("feature attribution: {e}")))?;
            if state.aggregation != spec.aggregation || state.max_features != spec.max_features {
                return Err(CodecError::SpecMismatch {
                    differences: format!(
                        "agg_method: stored {:?}, configured {:?}; max_attribution_features: stored {}, configured {}",
                        state.aggregation, spec.aggregation, state.max_features, spec.max_features
                    ),
                });
            }
            Ok(WindowState::FeatureAttribution(Box::new(state)))
        }
        StateKind::MultivariateDrift(spec) => {
            let stored: StoredWindow = from_body(&body)?;
            let window = MultivariateWindow::from_stored(spec, stored, MAX_STATE_ROWS).map_err(
                |(other_baseline, message)| {
                    if other_baseline {
                        CodecError::SpecMismatch {
                            differences: message,
                        }
                    } else {
                        CodecError::Corrupt(format!("multivariate drift: {message}"))
                    }
                },
            )?;
            Ok(WindowState::MultivariateDrift(Box::new(window)))
        }
    }
}

/// How many times its compressed size a stored body may grow when decompressed (and at least
/// [`MIN_BODY_LIMIT`]): real states grow a few times; a damaged or forged one must not make a
/// reader allocate without bound (32 KB of zstd can hold a gigabyte of zeros).
const MAX_EXPANSION: u64 = 1000;
const MIN_BODY_LIMIT: u64 = 64 << 20;

/// Decompresses one zstd frame of stored state within [`MAX_EXPANSION`].
pub(crate) fn decompress_bounded(compressed: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let limit = (compressed.len() as u64)
        .saturating_mul(MAX_EXPANSION)
        .max(MIN_BODY_LIMIT);
    let decoder = zstd::stream::read::Decoder::new(compressed)
        .map_err(|e| format!("decompressing the body: {e}"))?;
    let mut body = Vec::new();
    decoder
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("decompressing the body: {e}"))?;
    if body.len() as u64 > limit {
        return Err(format!(
            "the body grows past {limit} bytes when decompressed ({} compressed): not a state driftd wrote",
            compressed.len()
        ));
    }
    Ok(body)
}

/// Checks magic and version; returns the version and the kind tag.
fn read_header(bytes: &[u8]) -> Result<(u16, u8), CodecError> {
    if !bytes.starts_with(&MAGIC) {
        return Err(CodecError::WrongMagic {
            found: bytes[..bytes.len().min(MAGIC.len())].to_vec(),
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(CodecError::Corrupt(format!(
            "{} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if !(FORMAT_VERSION_1..=FORMAT_VERSION).contains(&version) {
        return Err(CodecError::UnsupportedVersion(version));
    }
    match bytes[6] {
        tag @ (TAG_DATA_QUALITY
        | TAG_BIAS
        | TAG_MODEL_QUALITY
        | TAG_PREDICTIONS
        | TAG_FEATURE_ATTRIBUTION
        | TAG_BIAS_ROWS
        | TAG_MULTIVARIATE_DRIFT) => Ok((version, tag)),
        other => Err(CodecError::Corrupt(format!("unknown state kind {other}"))),
    }
}

fn kind_name(tag: u8) -> &'static str {
    match tag {
        TAG_BIAS => "bias",
        TAG_MODEL_QUALITY => "model_quality",
        TAG_PREDICTIONS => "predictions (model quality waiting for labels)",
        TAG_BIAS_ROWS => "bias rows waiting for labels",
        TAG_FEATURE_ATTRIBUTION => "feature_attribution",
        TAG_MULTIVARIATE_DRIFT => "multivariate_drift",
        _ => "data_quality",
    }
}

/// The whole body as one `T`: trailing bytes mean the writer and reader disagree on the form.
fn from_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(body)
        .map_err(|e| CodecError::Corrupt(format!("reading the body: {e}")))?;
    if !rest.is_empty() {
        return Err(CodecError::Corrupt(format!(
            "{} bytes left over after the body",
            rest.len()
        )));
    }
    Ok(value)
}

/// "key: stored …, configured …" for every top-level field of the spec shapes that differs.
fn differences(stored: &Value, configured: &Value) -> String {
    let null = Value::Null;
    let (Some(stored), Some(configured)) = (stored.as_object(), configured.as_object()) else {
        return format!("stored {stored}, configured {configured}");
    };
    let mut keys: Vec<&String> = stored.keys().chain(configured.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let (a, b) = (
                stored.get(key).unwrap_or(&null),
                configured.get(key).unwrap_or(&null),
            );
            (a != b).then(|| format!("{key}: stored {a}, configured {b}"))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use std::hash::BuildHasher;

    use super::*;
    use crate::baseline::Baseline;
    use crate::bias::{Analysis, BiasSpec, Metric, analysis};
    use crate::profile::CountMap;

    fn round_trip(state: WindowState, kind: &StateKind) -> WindowState {
        decode(&encode(&state), kind).unwrap()
    }

    fn dq(state: WindowState) -> Profile {
        match state {
            WindowState::DataQuality(profile) => profile,
            _ => panic!("expected a profile"),
        }
    }

    #[test]
    fn a_model_quality_window_round_trips_and_refuses_another_problem_type() {
        use crate::model_quality::{ModelQualitySpec, ProblemType};
        let spec = |problem_type| {
            Arc::new(ModelQualitySpec {
                problem_type,
                inference_attribute: Some("prediction".into()),
                probability_attribute: None,
                probability_threshold: None,
                ground_truth_attribute: "label".into(),
                class_scores: Vec::new(),
            })
        };
        let kind = StateKind::ModelQuality(spec(ProblemType::BinaryClassification));
        let rows = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("prediction", DataType::Int64, false),
                Field::new("label", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![1, 0, 1, 1])) as ArrayRef,
                Arc::new(StringArray::from(vec![
                    Some("1"),
                    Some("0"),
                    Some("0"),
                    None,
                ])),
            ],
        )
        .unwrap();
        let mut state = kind.empty();
        state.add_batch(&rows, &[1, 2, 3, 4]);
        // Three labelled rows; the fourth has no ground truth and is skipped, not lost.
        assert_eq!(state.row_count(), 4);
        let WindowState::ModelQuality(window) = round_trip(state, &kind) else {
            panic!("expected a model-quality window")
        };
        assert_eq!((window.state.rows(), window.skipped_rows), (3, 1));
        let bytes = encode(&WindowState::ModelQuality(window));
        let other = StateKind::ModelQuality(spec(ProblemType::Regression));
        let error = decode(&bytes, &other).unwrap_err().to_string();
        assert!(error.contains("problem_type"), "{error}");
        let error = decode(&bytes, &StateKind::DataQuality)
            .unwrap_err()
            .to_string();
        assert!(error.contains("model_quality"), "{error}");
    }

    #[test]
    fn a_feature_attribution_window_round_trips_and_refuses_another_aggregation() {
        use crate::attribution::{Aggregation, AttributionSpec, RecordAttributions, column_name};
        let spec = |aggregation| {
            Arc::new(AttributionSpec {
                aggregation,
                ..AttributionSpec::default()
            })
        };
        let kind = StateKind::FeatureAttribution(spec(Aggregation::Median));
        let mut state = kind.empty();
        let rows = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                column_name("label0", "age"),
                DataType::Float64,
                true,
            )])),
            vec![Arc::new(Float64Array::from(vec![Some(-1.0), Some(3.0), None])) as ArrayRef],
        )
        .unwrap();
        state.add_batch(&rows, &[]);
        let WindowState::FeatureAttribution(mut original) = state else {
            panic!("expected an attribution state")
        };
        original.add_record(&RecordAttributions {
            values: vec![("label1".into(), "age".into(), 0.5)],
            expected: vec![("label0".into(), 0.25)],
        });
        let copy = original.clone();
        let back = round_trip(WindowState::FeatureAttribution(original), &kind);
        let WindowState::FeatureAttribution(back) = back else {
            panic!("expected an attribution state")
        };
        assert_eq!(back, copy);
        assert_eq!(
            back.explanations().kernel_shap["label0"].global_shap_values["age"],
            1.0
        );
        let bytes = encode(&WindowState::FeatureAttribution(back));
        let error = decode(
            &bytes,
            &StateKind::FeatureAttribution(spec(Aggregation::MeanAbs)),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("agg_method"), "{error}");
        let error = decode(&bytes, &StateKind::DataQuality)
            .unwrap_err()
            .to_string();
        assert!(error.contains("feature_attribution"), "{error}");
    }

    /// A multivariate baseline of a and b (correlated) and a colour, fitted on 300 rows; and a
    /// batch of `n` rows with a broken correlation, one unreadable value and one missing.
    fn multivariate_case(n: usize) -> (Arc<crate::multivariate::MultivariateSpec>, RecordBatch) {
        use crate::multivariate::{Baseline, MultivariateSpec, ReferenceBuilder};
        let mut rng = StdRng::seed_from_u64(7);
        let names = ["a", "b", "colour"].map(String::from).to_vec();
        let mut reference = ReferenceBuilder::new(names).unwrap();
        for _ in 0..300 {
            let a: f64 = rng.random::<f64>() - 0.5;
            let b = a + 0.1 * (rng.random::<f64>() - 0.5);
            let colour = if a > 0.0 { "red" } else { "blue" };
            let (a, b) = (a.to_string(), b.to_string());
            reference
                .push_row(&[Some(&a), Some(&b), Some(colour)])
                .unwrap();
        }
        let baseline = Baseline::fit(reference, crate::cbpe::Chunking::Size(100)).unwrap();
        let a: Vec<f64> = (0..n).map(|_| rng.random::<f64>() - 0.5).collect();
        let mut b: Vec<Option<String>> = a.iter().map(|a| Some((-a).to_string())).collect();
        b[0] = Some("not a number".into());
        b[1] = None;
        let colour: Vec<&str> = (0..n).map(|i| ["red", "blue", "green"][i % 3]).collect();
        let rows = RecordBatch::try_from_iter([
            ("a", Arc::new(Float64Array::from(a)) as ArrayRef),
            ("b", Arc::new(StringArray::from(b)) as ArrayRef),
            ("colour", Arc::new(StringArray::from(colour)) as ArrayRef),
        ])
        .unwrap();
        (Arc::new(MultivariateSpec::new(baseline)), rows)
    }

    #[test]
    fn a_multivariate_window_round_trips_merges_and_refuses_another_baseline() {
        let (spec, rows) = multivariate_case(40);
        let kind = StateKind::MultivariateDrift(spec.clone());
        let mut state = kind.empty();
        state.add_batch(&rows, &[]);
        // A batch without the colour column: its rows are refused under that feature.
        state.add_batch(&rows.project(&[0, 1]).unwrap(), &[]);
        let WindowState::MultivariateDrift(original) = &state else {
            panic!("expected a multivariate window")
        };
        assert_eq!(original.state.rows, 39);
        assert_eq!(
            original.refused_by_feature,
            [("b".to_string(), 1), ("colour".to_string(), 40)].into()
        );
        let copy = original.clone();
        let bytes = encode(&state);
        let back = decode(&bytes, &kind).unwrap();
        let WindowState::MultivariateDrift(back) = back else {
            panic!("expected a multivariate window")
        };
        assert_eq!(*back, *copy);
        assert_eq!(back.row_count(), 80);
        // Merged after a round trip, as the finaliser merges stored parts: the same as adding
        // both batches to one window.
        let mut merged = WindowState::MultivariateDrift(back);
        merged
            .merge(decode(&bytes, &kind).unwrap())
            .expect("within the bound");
        let mut direct = kind.empty();
        for _ in 0..2 {
            direct.add_batch(&rows, &[]);
            direct.add_batch(&rows.project(&[0, 1]).unwrap(), &[]);
        }
        let (WindowState::MultivariateDrift(merged), WindowState::MultivariateDrift(direct)) =
            (merged, direct)
        else {
            panic!("expected multivariate windows")
        };
        let (m, d) = (merged.evaluate(), direct.evaluate());
        assert_eq!((m.rows, m.rows_refused), (78, 82));
        assert_eq!((m.rows, m.rows_refused), (d.rows, d.rows_refused));
        let (m, d) = (
            m.reconstruction_error.unwrap(),
            d.reconstruction_error.unwrap(),
        );
        assert!((m - d).abs() <= 1e-12 * d, "{m} vs {d}");
        assert_eq!(merged.refused_by_feature, direct.refused_by_feature);

        // A state stored under another baseline is refused naming it, not merged.
        // The same baseline but for its upper threshold.
        let mut baseline = spec.baseline.clone();
        baseline.upper_threshold = baseline.upper_threshold.map(|u| u * 2.0);
        let other = Arc::new(crate::multivariate::MultivariateSpec::new(baseline));
        let error = decode(&bytes, &StateKind::MultivariateDrift(other))
            .unwrap_err()
            .to_string();
        assert!(error.contains("multivariate baseline: stored"), "{error}");
        let error = decode(&bytes, &StateKind::DataQuality)
            .unwrap_err()
            .to_string();
        assert!(error.contains("multivariate_drift"), "{error}");
    }

    /// A multivariate window is as wide as its baseline, whatever its rows: at the feature
    /// limit (256), with rows and a refusal under every feature, it stores in a few KB.
    #[test]
    fn a_multivariate_window_at_the_feature_limit_stays_small() {
        use crate::multivariate::{
            Baseline, MAX_FEATURES, MultivariateSpec, MultivariateWindow, ReferenceBuilder,
        };
        let mut rng = StdRng::seed_from_u64(3);
        let names: Vec<String> = (0..MAX_FEATURES).map(|j| format!("f{j:03}")).collect();
        let mut reference = ReferenceBuilder::new(names.clone()).unwrap();
        let row = |rng: &mut StdRng| -> Vec<String> {
            (0..MAX_FEATURES)
                .map(|_| rng.random::<f64>().to_string())
                .collect()
        };
        for _ in 0..300 {
            let cells = row(&mut rng);
            let cells: Vec<Option<&str>> = cells.iter().map(|c| Some(c.as_str())).collect();
            reference.push_row(&cells).unwrap();
        }
        let baseline = Baseline::fit(reference, crate::cbpe::Chunking::Size(100)).unwrap();
        let spec = Arc::new(MultivariateSpec::new(baseline));
        let mut window = MultivariateWindow::new(spec.clone());
        let mut rows: Vec<(String, ArrayRef)> = Vec::new();
        for (j, name) in names.iter().enumerate() {
            // Row j of 1,000 is unreadable in feature j: a refusal under every feature.
            let values: Vec<String> = (0..1000)
                .map(|i| {
                    if i == j {
                        "x".to_string()
                    } else {
                        rng.random::<f64>().to_string()
                    }
                })
                .collect();
            rows.push((
                name.clone(),
                Arc::new(StringArray::from(values)) as ArrayRef,
            ));
        }
        let batch = RecordBatch::try_from_iter(rows).unwrap();
        for _ in 0..5 {
            window.add_batch(&batch);
        }
        assert_eq!(window.state.rows, 5 * (1000 - MAX_FEATURES as u64));
        assert_eq!(window.refused_by_feature.len(), MAX_FEATURES);
        let stored = postcard::to_stdvec(&window.to_stored()).unwrap();
        let bytes = encode(&WindowState::MultivariateDrift(Box::new(window)));
        // 256 sums of 8 bytes, 256 names with their counts, a few counts: under 4 KB.
        assert!(stored.len() < 4096, "{} bytes", stored.len());
        assert!(bytes.len() < 4096, "{} bytes", bytes.len());
    }

    /// Forged multivariate parts: wrong width, counts past the bound, refusals that do not add
    /// up or name no feature, a negative or NaN sum. Each is refused as corrupt, naming why.
    #[test]
    fn forged_multivariate_states_are_refused() {
        use crate::multivariate::monitor::StoredWindow;
        let (spec, rows) = multivariate_case(10);
        let kind = StateKind::MultivariateDrift(spec.clone());
        let mut window = crate::multivariate::MultivariateWindow::new(spec.clone());
        window.add_batch(&rows);
        let stored = window.to_stored();
        let fine = postcard::to_stdvec(&stored).unwrap();
        let framed = |body: &[u8]| crate::fuzz::frame_window_body(TAG_MULTIVARIATE_DRIFT, body);
        assert!(decode(&framed(&fine), &kind).is_ok());
        let forged = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut value = serde_json::to_value(&stored).unwrap();
            change(&mut value);
            let forged: StoredWindow = serde_json::from_value(value).unwrap();
            let bytes = framed(&postcard::to_stdvec(&forged).unwrap());
            decode(&bytes, &kind).unwrap_err().to_string()
        };
        // A change to the stored form, and what the refusal says.
        type Forgery = fn(&mut serde_json::Value);
        let cases: [(Forgery, &str); 6] = [
            (
                |v| v["state"]["squared_residuals"] = serde_json::json!([1.0]),
                "1 per-feature sums for a baseline of 3 features",
            ),
            (
                |v| v["state"]["rows"] = serde_json::json!(u64::MAX),
                "more than a window may hold",
            ),
            (
                |v| v["state"]["m2"] = serde_json::json!(-1.0),
                "a sum is -1",
            ),
            (
                |v| v["refused_by_feature"] = serde_json::json!({"b": 5}),
                "rows refused per feature",
            ),
            (
                |v| v["refused_by_feature"] = serde_json::json!({"zz": 1}),
                "rows refused for \"zz\", not a feature",
            ),
            (
                |v| {
                    v["state"]["rows"] = serde_json::json!(0);
                    v["state"]["refused_rows"] = serde_json::json!(1);
                },
                "an error without rows",
            ),
        ];
        for (change, expected) in cases {
            let error = forged(&change);
            assert!(
                error.starts_with("window state is corrupt: multivariate drift: ")
                    && error.contains(expected),
                "{error}"
            );
        }
        // Damaged bytes: cut, a flipped bit, trailing bytes.
        let bytes = encode(&WindowState::MultivariateDrift(Box::new(window)));
        for len in [HEADER_LEN, bytes.len() / 2, bytes.len() - 1] {
            let error = decode(&bytes[..len], &kind).unwrap_err();
            assert!(matches!(error, CodecError::Corrupt(_)), "{len}: {error:?}");
        }
        let mut damaged = bytes.clone();
        damaged[HEADER_LEN + (bytes.len() - HEADER_LEN) / 2] ^= 0x01;
        assert!(matches!(
            decode(&damaged, &kind).unwrap_err(),
            CodecError::Corrupt(_)
        ));
        let longer = [fine.clone(), vec![0]].concat();
        let error = decode(&framed(&longer), &kind).unwrap_err().to_string();
        assert!(error.contains("1 bytes left over"), "{error}");
    }

    fn bias(state: WindowState) -> BiasState {
        match state {
            WindowState::Bias(state) => *state,
            _ => panic!("expected a bias state"),
        }
    }

    // ---- data quality ----

    /// Part `a` or `b` of a dataset: a float and an integer column with nulls, a categorical
    /// and a mixed text column, `id` (distinct per row: the frequency map overflows within a
    /// part), `code` (9,000 distinct values in `a`, 3,000 in `b` of which 2,000 new: overflows
    /// only on merge), and a column only `a` has and one only `b` has.
    fn dq_batch(part: char, rows: usize) -> RecordBatch {
        let mut rng = StdRng::seed_from_u64(u64::from(part));
        let offset = if part == 'a' { 0 } else { 1_000_000 };
        let num: Float64Array = (0..rows)
            .map(|_| (rng.random::<f64>() > 0.05).then(|| rng.random::<f64>() * 1e3 - 200.0))
            .collect();
        let int: Int64Array = (0..rows)
            .map(|_| (rng.random::<f64>() > 0.1).then(|| rng.random_range(0..90i64)))
            .collect();
        let cat: StringArray = (0..rows)
            .map(|_| {
                ["red", "green", "blue", "", "NA"]
                    .get(rng.random_range(0..6usize))
                    .copied()
            })
            .collect();
        let mixed: StringArray = (0..rows)
            .map(|_| match rng.random_range(0..6) {
                0 => None,
                1 => Some("true".to_string()),
                2 => Some(format!("w{}", rng.random_range(0..20))),
                3 => Some(rng.random_range(-50..50i64).to_string()),
                _ => Some(format!("{:.3}", rng.random::<f64>() * 10.0)),
            })
            .collect();
        let id: StringArray = (0..rows)
            .map(|i| Some(format!("user-{}", offset + i)))
            .collect();
        let code: StringArray = (0..rows)
            .map(|i| match part {
                'a' => Some(format!("c-{}", i % 9_000)),
                _ => Some(format!("c-{}", 8_000 + i % 3_000)),
            })
            .collect();
        let mut columns: Vec<(&str, ArrayRef)> = vec![
            ("num", Arc::new(num)),
            ("int", Arc::new(int)),
            ("cat", Arc::new(cat)),
            ("mixed", Arc::new(mixed)),
            ("id", Arc::new(id)),
            ("code", Arc::new(code)),
        ];
        let own: Float64Array = (0..rows).map(|i| Some(i as f64 / 7.0)).collect();
        columns.push((if part == 'a' { "only_a" } else { "only_b" }, Arc::new(own)));
        RecordBatch::try_from_iter(columns).unwrap()
    }

    /// Everything a profile answers with: the statistics and constraints files, and per column
    /// what they leave out (distinct estimate of numbers, the sketch with its compaction
    /// schedule, moments, full frequencies). `{:?}` prints floats exactly.
    fn summary(profile: &Profile) -> Vec<String> {
        let baseline = Baseline::from_profile(profile);
        let mut out = vec![serde_json::to_string(&baseline.constraints).unwrap()];
        for feature in &baseline.statistics.features {
            out.push(serde_json::to_string(feature).unwrap());
        }
        out.push(format!("rows {}", profile.row_count));
        for (name, c) in &profile.columns {
            out.push(format!(
                "{name}: {:?} {:?} {:?} {:?} {:?} {:?}",
                c.distinct_estimate(),
                c.distinct.estimate(),
                c.kll,
                c.moments,
                c.types,
                c.frequencies.most_frequent_first(),
            ));
        }
        out
    }

    /// Equal summaries; on a difference, shows where rather than two pages of numbers.
    fn assert_same_profile(a: &Profile, b: &Profile) {
        let (a, b) = (summary(a), summary(b));
        assert_eq!(a.len(), b.len(), "columns");
        for (x, y) in a.iter().zip(&b) {
            if x != y {
                let at = x.bytes().zip(y.bytes()).take_while(|(p, q)| p == q).count();
                let around = |t: &str| {
                    let from = (0..=at.saturating_sub(60))
                        .rev()
                        .find(|&i| t.is_char_boundary(i));
                    t[from.unwrap_or(0)..].chars().take(160).collect::<String>()
                };
                panic!(
                    "profiles differ at byte {at}:\n  {}\n  {}",
                    around(x),
                    around(y)
                );
            }
        }
    }

    #[test]
    fn a_decoded_profile_merges_and_continues_like_the_original() {
        let (a, b) = (dq_batch('a', 15_000), dq_batch('b', 7_000));
        let profile_a = Profile::from_batch(&a);
        let decoded = dq(round_trip(
            WindowState::DataQuality(profile_a.clone()),
            &StateKind::DataQuality,
        ));

        // What the data must exercise, or the comparisons below prove little.
        let column = |name: &str| &profile_a.columns[name];
        assert!(column("num").kll.levels().len() > 2, "sketch compacted");
        assert!(column("id").frequencies.is_overflowed());
        assert!(!column("code").frequencies.is_overflowed());
        assert!(column("num").num_missing > 0 && column("cat").num_missing > 0);

        // The map read back hashes as a fresh one does (same fixed foldhash seed).
        let counts = decoded.columns["cat"].frequencies.counts().unwrap();
        assert_eq!(
            counts.hasher().hash_one("red"),
            CountMap::default().hasher().hash_one("red")
        );
        assert_same_profile(&decoded, &profile_a);

        // decoded(a) merged with b, and b merged with decoded(a).
        let mut direct = profile_a.clone();
        direct.merge(Profile::from_batch(&b));
        let mut via_codec = decoded.clone();
        via_codec.merge(Profile::from_batch(&b));
        assert!(direct.columns["code"].frequencies.is_overflowed());
        assert_eq!(direct.columns["only_b"].num_missing, 15_000);
        assert_same_profile(&via_codec, &direct);

        let mut direct = Profile::from_batch(&b);
        direct.merge(profile_a.clone());
        let mut via_codec = Profile::from_batch(&b);
        via_codec.merge(decoded.clone());
        assert_same_profile(&via_codec, &direct);

        // Adding rows continues each sketch's stream and compaction schedule.
        let mut direct = profile_a;
        direct.add_batch(&b);
        let mut via_codec = decoded;
        via_codec.add_batch(&b);
        assert_same_profile(&via_codec, &direct);
    }

    // ---- bias ----

    fn bias_spec(facet_values: &str) -> Arc<BiasSpec> {
        let text = format!(
            r#"{{"label": "label", "label_values_or_threshold": [1], "predicted_label": "pred",
                "facet": [{{"name_or_index": "sex", "value_or_threshold": {facet_values}}},
                          {{"name_or_index": "race"}}],
                "group_variable": "zone",
                "methods": {{"pre_training_bias": {{"methods": "all"}},
                             "post_training_bias": {{"methods": "all"}}}}}}"#
        );
        Arc::new(BiasSpec::from_json(&text, "test").unwrap())
    }

    /// `n` rows of sex, race (one-vs-rest, missing now and then), zone, a numeric feature,
    /// label and prediction, as in bias/state.rs's tests. (A missing feature would fail FT, as
    /// it fails Clarify's.)
    fn bias_batch(rng: &mut StdRng, n: usize) -> RecordBatch {
        let names = ["sex", "race", "zone", "x1", "label", "pred"];
        let mut columns: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(n); names.len()];
        for _ in 0..n {
            let sex = u32::from(rng.random::<f64>() < 0.4);
            let label = u32::from(rng.random::<f64>() < 0.3 + 0.2 * f64::from(sex));
            let pred = if rng.random::<f64>() < 0.8 {
                label
            } else {
                1 - label
            };
            let race =
                (rng.random::<f64>() < 0.97).then(|| ["a", "b", "c"][rng.random_range(0..3)]);
            let row = [
                Some(sex.to_string()),
                race.map(str::to_string),
                Some(rng.random_range(0..4u32).to_string()),
                Some(format!("{:.6}", rng.random::<f64>())),
                Some(label.to_string()),
                Some(pred.to_string()),
            ];
            for (column, value) in columns.iter_mut().zip(row) {
                column.push(value);
            }
        }
        let schema = Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        let arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(schema), arrays).unwrap()
    }

    /// The state's `analysis.json`, with or without FT: FT's brute-force k-NN over 10,000
    /// sampled rows takes seconds in a debug build. (Without: the state is read back under the
    /// spec less FT — methods do not shape a state.)
    fn report(state: &BiasState, flip_test: bool) -> Analysis {
        if flip_test {
            return analysis(state.spec(), &state.evaluate());
        }
        let mut spec = (**state.spec()).clone();
        spec.post_training.retain(|&m| m != Metric::FT);
        let kind = StateKind::Bias(Arc::new(spec));
        let state =
            bias(decode(&encode(&WindowState::Bias(Box::new(state.clone()))), &kind).unwrap());
        analysis(state.spec(), &state.evaluate())
    }

    /// Same rows, same sample bit for bit (and generator state), same metrics.
    fn assert_same_bias(a: &BiasState, b: &BiasState, flip_test: bool) {
        assert_eq!(a.rows(), b.rows());
        assert_eq!(a.sample_snapshot(), b.sample_snapshot());
        assert_eq!(report(a, flip_test), report(b, flip_test));
    }

    #[test]
    fn a_decoded_bias_state_evaluates_merges_and_samples_like_the_original() {
        let spec = bias_spec("[0]");
        let kind = StateKind::Bias(spec.clone());
        let mut rng = StdRng::seed_from_u64(5);
        // More rows than the Flip Test sample holds, so its generator has been drawing.
        let mut original = BiasState::new(spec.clone());
        original.add_batch(&bias_batch(&mut rng, 12_000));
        let mut decoded = bias(round_trip(
            WindowState::Bias(Box::new(original.clone())),
            &kind,
        ));
        assert_same_bias(&decoded, &original, false);

        // More rows: the reservoir replaces the same rows with the same draws, and FT, computed
        // on that sample, agrees.
        let more = bias_batch(&mut rng, 3_000);
        original.add_batch(&more);
        decoded.add_batch(&more);
        assert_same_bias(&decoded, &original, true);
        let post = report(&original, true).post_training_bias_metrics.unwrap();
        let ft = post.facets["race"][0]
            .metrics
            .iter()
            .find(|m| m.name == "FT");
        let ft = ft.unwrap();
        assert!(ft.value.is_some(), "{ft:?}");
        assert_eq!(
            ft.note.as_deref(),
            Some("computed on a uniform sample of 10000 of 15000 rows")
        );

        // Merging (the union's sample is drawn with the receiving side's generator), either way.
        let mut other = BiasState::new(spec.clone());
        other.add_batch(&bias_batch(&mut rng, 2_500));
        let mut direct = original.clone();
        direct.merge(other.clone());
        let mut via_codec = decoded.clone();
        via_codec.merge(other.clone());
        assert_same_bias(&via_codec, &direct, false);

        let mut direct = other.clone();
        direct.merge(original);
        let mut via_codec = other;
        via_codec.merge(decoded);
        assert_same_bias(&via_codec, &direct, false);
    }

    #[test]
    fn a_small_bias_state_round_trips_exactly() {
        // Below the sample size (FT exact), with a state that is empty as well.
        let spec = bias_spec("[0]");
        let kind = StateKind::Bias(spec.clone());
        let empty = BiasState::new(spec.clone());
        assert_same_bias(
            &bias(round_trip(
                WindowState::Bias(Box::new(empty.clone())),
                &kind,
            )),
            &empty,
            true,
        );
        let mut state = empty;
        state.add_batch(&bias_batch(&mut StdRng::seed_from_u64(6), 500));
        assert_same_bias(
            &bias(round_trip(
                WindowState::Bias(Box::new(state.clone())),
                &kind,
            )),
            &state,
            true,
        );
    }

    // ---- errors ----

    fn sample_states() -> (Vec<u8>, Vec<u8>, Arc<BiasSpec>) {
        let profile = Profile::from_batch(&dq_batch('a', 100));
        let spec = bias_spec("[0]");
        let mut state = BiasState::new(spec.clone());
        state.add_batch(&bias_batch(&mut StdRng::seed_from_u64(7), 100));
        (
            encode(&WindowState::DataQuality(profile)),
            encode(&WindowState::Bias(Box::new(state))),
            spec,
        )
    }

    #[test]
    fn the_wrong_kind_or_spec_is_refused() {
        let (dq_bytes, bias_bytes, spec) = sample_states();
        let error = decode(&dq_bytes, &StateKind::Bias(spec.clone())).unwrap_err();
        assert!(
            matches!(
                error,
                CodecError::KindMismatch {
                    expected: "bias",
                    found: "data_quality"
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "window state holds data_quality state, but this monitor keeps bias state"
        );
        let error = decode(&bias_bytes, &StateKind::DataQuality).unwrap_err();
        assert!(
            matches!(
                error,
                CodecError::KindMismatch {
                    expected: "data_quality",
                    found: "bias"
                }
            ),
            "{error:?}"
        );

        // Another facet value shapes the state differently.
        let error = decode(&bias_bytes, &StateKind::Bias(bias_spec("[1]"))).unwrap_err();
        let CodecError::SpecMismatch { differences } = &error else {
            panic!("{error:?}");
        };
        assert!(
            differences.starts_with("facets: stored [{\"name\":\"sex\",\"values\":[0]}"),
            "{error}"
        );
        assert!(!differences.contains("label"), "{error}");

        // Methods do not shape the state: a spec that changed only those still reads it.
        let mut fewer_methods = (*spec).clone();
        fewer_methods.post_training.clear();
        assert!(decode(&bias_bytes, &StateKind::Bias(Arc::new(fewer_methods))).is_ok());
    }

    #[test]
    fn a_state_that_decompresses_without_bound_is_refused_before_it_is_held() {
        // 80 MiB of zeros compress to a few KiB: far past what a real state grows.
        let zeros = vec![0u8; 80 << 20];
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.push(TAG_DATA_QUALITY);
        bytes.extend(zstd::stream::encode_all(&zeros[..], 19).unwrap());
        assert!(bytes.len() < 64 << 10, "{}", bytes.len());
        let error = decode(&bytes, &StateKind::DataQuality)
            .unwrap_err()
            .to_string();
        assert!(error.contains("grows past 67108864 bytes"), "{error}");
    }

    /// Forged states whose counts would overflow a merge, or pass what a window may hold, are
    /// refused on reading, naming what is wrong: release builds would otherwise wrap them
    /// silently on the next merge.
    #[test]
    fn states_with_counts_past_their_rows_or_the_bound_are_refused() {
        use crate::attribution::{AttributionSpec, AttributionState};
        let refused = |state: WindowState, kind: &StateKind| {
            decode(&encode(&state), kind).unwrap_err().to_string()
        };
        let mut profile = Profile::default();
        let batch = RecordBatch::try_from_iter([(
            "v",
            Arc::new(StringArray::from(vec!["1", "x"])) as ArrayRef,
        )])
        .unwrap();
        profile.add_batch(&batch);
        let fine = WindowState::DataQuality(profile.clone());
        assert!(decode(&encode(&fine), &StateKind::DataQuality).is_ok());

        let mut more_present = profile.clone();
        more_present.columns["v"].num_present = 3;
        let error = refused(
            WindowState::DataQuality(more_present),
            &StateKind::DataQuality,
        );
        assert!(error.contains("column \"v\" counts more values"), "{error}");
        // Two type counts that wrap u64 when summed.
        let mut wrapping = profile.clone();
        wrapping.columns["v"].types.string = u64::MAX;
        let error = refused(WindowState::DataQuality(wrapping), &StateKind::DataQuality);
        assert!(error.contains("counts more values"), "{error}");
        let mut too_many = profile;
        too_many.row_count = MAX_STATE_ROWS + 1;
        let error = refused(WindowState::DataQuality(too_many), &StateKind::DataQuality);
        assert!(error.contains("more than a profile may hold"), "{error}");

        let spec = AttributionSpec::default();
        let kind = StateKind::FeatureAttribution(Arc::new(spec.clone()));
        let mut attribution = AttributionState::new(&spec);
        attribution.add_value("label0", "age", 0.5);
        attribution.bad_values = u64::MAX;
        let error = refused(
            WindowState::FeatureAttribution(Box::new(attribution)),
            &kind,
        );
        assert!(
            error.contains("feature attribution: its counts sum past"),
            "{error}"
        );

        let spec = Arc::new(crate::model_quality::ModelQualitySpec {
            problem_type: crate::model_quality::ProblemType::Regression,
            inference_attribute: Some("pred".into()),
            probability_attribute: None,
            probability_threshold: None,
            ground_truth_attribute: "label".into(),
            class_scores: Vec::new(),
        });
        let mut quality = ModelQualityWindow::new(spec.clone());
        quality.skipped_rows = u64::MAX;
        let kind = StateKind::ModelQuality(spec.clone());
        let error = refused(WindowState::ModelQuality(Box::new(quality)), &kind);
        assert!(
            error.contains("rows skipped, more than a window may hold"),
            "{error}"
        );

        let mut run = crate::model_quality::PredictionRun::empty();
        run.duplicates = u64::MAX;
        run.skipped = 2;
        let predictions = PredictionWindow {
            spec: spec.clone(),
            runs: vec![run],
            scores: Vec::new(),
        };
        let error = refused(
            WindowState::Predictions(predictions),
            &StateKind::Predictions(spec),
        );
        assert!(
            error.contains("predictions: [0, 18446744073709551615, 2] rows"),
            "{error}"
        );
    }

    #[test]
    fn damaged_bytes_give_the_specific_error() {
        let (dq_bytes, bias_bytes, spec) = sample_states();
        let bias_kind = StateKind::Bias(spec);
        for (bytes, kind) in [
            (&dq_bytes, &StateKind::DataQuality),
            (&bias_bytes, &bias_kind),
        ] {
            assert!(decode(bytes, kind).is_ok());

            let mut flipped = bytes.clone();
            flipped[0] ^= 0x20;
            let error = decode(&flipped, kind).unwrap_err();
            assert!(matches!(error, CodecError::WrongMagic { .. }), "{error:?}");
            assert!(error.to_string().starts_with("not a driftd window state"));
            let error = decode(b"", kind).unwrap_err();
            assert!(matches!(error, CodecError::WrongMagic { .. }), "{error:?}");

            let mut future = bytes.clone();
            future[4..6].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
            let error = decode(&future, kind).unwrap_err();
            assert!(
                matches!(error, CodecError::UnsupportedVersion(v) if v == FORMAT_VERSION + 1),
                "{error:?}"
            );
            assert!(
                error.to_string().starts_with(&format!(
                    "window state format version {} is not supported",
                    FORMAT_VERSION + 1
                )),
                "{error}"
            );

            // Cut in the header, in the body, and just before the end (the checksum).
            for len in [5, HEADER_LEN, bytes.len() / 2, bytes.len() - 1] {
                let error = decode(&bytes[..len], kind).unwrap_err();
                assert!(matches!(error, CodecError::Corrupt(_)), "{len}: {error:?}");
                assert!(
                    error.to_string().starts_with("window state is corrupt: "),
                    "{error}"
                );
            }

            // A flipped bit inside the compressed body is caught by zstd's checksum, if not
            // before.
            let mut damaged = bytes.clone();
            let middle = HEADER_LEN + (bytes.len() - HEADER_LEN) / 2;
            damaged[middle] ^= 0x01;
            let error = decode(&damaged, kind).unwrap_err();
            assert!(matches!(error, CodecError::Corrupt(_)), "{error:?}");

            let mut unknown = bytes.clone();
            unknown[6] = 9;
            let error = decode(&unknown, kind).unwrap_err();
            assert!(matches!(error, CodecError::Corrupt(_)), "{error:?}");
        }
    }

    // ---- size ----

    /// A typical model input, 25 columns × 100,000 rows: 10 continuous floats, 5 small
    /// integers, 5 categorical texts, 3 flags, 2 ids.
    #[test]
    fn encoded_size_of_a_25_column_100k_row_profile() {
        let rows = 100_000;
        let mut rng = StdRng::seed_from_u64(11);
        let mut columns: Vec<(String, ArrayRef)> = Vec::new();
        for c in 0..25 {
            let array: ArrayRef = match c {
                0..10 => Arc::new(
                    (0..rows)
                        .map(|_| Some(rng.random::<f64>() * 100.0))
                        .collect::<Float64Array>(),
                ),
                10..15 => Arc::new(
                    (0..rows)
                        .map(|_| Some(rng.random_range(0..100i64)))
                        .collect::<Int64Array>(),
                ),
                15..20 => Arc::new(
                    (0..rows)
                        .map(|_| Some(format!("category-{}", rng.random_range(0..40))))
                        .collect::<StringArray>(),
                ),
                20..23 => Arc::new(
                    (0..rows)
                        .map(|_| Some(if rng.random::<bool>() { "1" } else { "0" }))
                        .collect::<StringArray>(),
                ),
                _ => Arc::new(
                    (0..rows)
                        .map(|i| Some(format!("{c}-{i:08}")))
                        .collect::<StringArray>(),
                ),
            };
            columns.push((format!("c{c}"), array));
        }
        let profile = Profile::from_batch(&RecordBatch::try_from_iter(columns).unwrap());
        let raw = postcard::to_stdvec(&profile).unwrap().len();
        let bytes = encode(&WindowState::DataQuality(profile));
        println!(
            "25 columns × {rows} rows: {} bytes encoded ({raw} bytes before zstd)",
            bytes.len()
        );
        // 535,511 bytes when written; ~39 KB of it per float column is the KLL sketch's 5,202
        // items (k = 2048, as Model Monitor), whose mantissas zstd cannot shrink.
        assert!(bytes.len() < 640 * 1024, "{} bytes", bytes.len());
    }

    // ---- compatibility ----

    /// Small fixed inputs (no random generator, whose algorithm may change with `rand`).
    fn fixture_profile() -> Profile {
        let num: Float64Array = (0..40)
            .map(|i| (i % 7 != 3).then(|| f64::from(i) / 3.0))
            .collect();
        let cat: StringArray = (0..40)
            .map(|i| (i % 5 != 0).then(|| ["x", "y", "zz"][i % 3]))
            .collect();
        let batch: RecordBatch = RecordBatch::try_from_iter([
            ("num", Arc::new(num) as ArrayRef),
            ("cat", Arc::new(cat)),
        ])
        .unwrap();
        let mut profile = Profile::from_batch(&batch);
        let more: StringArray = ["1", "2.5", "x"].into_iter().map(Some).collect();
        profile
            .add_batch(&RecordBatch::try_from_iter([("cat", Arc::new(more) as ArrayRef)]).unwrap());
        profile
    }

    fn fixture_bias() -> BiasState {
        let column = |f: &dyn Fn(usize) -> Option<String>| -> ArrayRef {
            Arc::new((0..30).map(f).collect::<StringArray>())
        };
        let batch = RecordBatch::try_from_iter([
            ("sex", column(&|i| Some((i % 2).to_string()))),
            (
                "race",
                column(&|i| (i % 11 != 4).then(|| ["a", "b", "c"][i % 3].to_string())),
            ),
            ("zone", column(&|i| Some((i % 4).to_string()))),
            ("x1", column(&|i| Some(format!("{:.2}", i as f64 / 7.0)))),
            (
                "label",
                column(&|i| Some(u8::from(i % 3 == 0 || i % 5 == 0).to_string())),
            ),
            (
                "pred",
                column(&|i| Some(u8::from(i % 3 == 0 || i % 7 == 0).to_string())),
            ),
        ])
        .unwrap();
        let mut state = BiasState::new(bias_spec("[0]"));
        state.add_batch(&batch);
        state
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Version 1 bytes, written when the format was made: still read, the bias state without
    /// pair counts (version 1 kept none), and so is what it merges into.
    #[test]
    fn reads_format_version_1() {
        let profile = dq(decode(&unhex(DQ_V1), &StateKind::DataQuality).unwrap());
        assert_same_profile(&profile, &fixture_profile());
        let expected = fixture_bias();
        let kind = StateKind::Bias(expected.spec().clone());
        let state = bias(decode(&unhex(BIAS_V1), &kind).unwrap());
        assert!(state.evaluate().pairs.is_none(), "version 1 kept no pairs");
        assert_eq!(state.rows(), expected.rows());
        assert_eq!(state.sample_snapshot(), expected.sample_snapshot());
        let mut without_pairs = report(&expected, true);
        without_pairs.groups.as_mut().unwrap().pairs = None;
        assert_eq!(report(&state, true), without_pairs);

        let mut merged = fixture_bias();
        merged.merge(state);
        assert!(merged.evaluate().pairs.is_none(), "merged with version 1");
    }

    /// Version 2 bias bytes: a later driftd must read them as they were meant, or bump
    /// `FORMAT_VERSION` (and read these with the old reader). Data quality bodies did not
    /// change from version 1 (`DQ_V1` holds one).
    #[test]
    fn reads_format_version_2() {
        let expected = fixture_bias();
        let kind = StateKind::Bias(expected.spec().clone());
        let state = bias(decode(&unhex(BIAS_V2), &kind).unwrap());
        let pairs = state.evaluate().pairs.unwrap();
        assert_eq!(pairs.len(), 1, "sex × race");
        assert_same_bias(&state, &expected, true);
    }

    /// Prints the bias fixture below (only when the format version changes).
    #[test]
    #[ignore = "prints fixtures"]
    fn print_fixtures() {
        println!(
            "BIAS_V2 {}",
            hex(&encode(&WindowState::Bias(Box::new(fixture_bias()))))
        );
    }

    const DQ_V1: &str = "\
        4452575301000128b52ffd645a188d12008612453b40a5381d2fe6f57d262c451bf0cc147fc71c0382310b58b43d\
        a72c146c5c66dc46fb191a351121b707f0056590a3eac2102925164798b264ef24033c0034002f00090898838be5\
        92564135015d78f91be051fa049c40df0888b17fa65049c487a5c3eadbe12b82a41304c974312122d76282991963\
        0a05bbd0c088f0219ebc66af6b9d7ca55efcc8739916abbdbe65f67a473d325ea3f57aa599a55ee916316b8431df\
        0e87e3b0d9343068302c3317140220ddefeedb6d354b7437c36e9e9792c1bbf99576d152f1de26af79f613bf79aa\
        a5de69d73979cfe3b48e5acbc57b012202efae7a461e08852001c7cfd12c56367efb893582cc90fa007c01be0215\
        98e1bfaa341914155144f2ee39e1ac4d75cfee7e8098a87151874c414a52c972d0821122e27412c08120d72008c2\
        301c06428410420811182420880823880806d149d5030a1870d2b155358e4e1c0e4eed5db976a89ba123fcdc882d\
        1f7c816b49ff98c273e3d5395d0b74a72e644c0821ef38f495f916ac590111e43d414862e06e0f34fcc02c4185bc\
        aa4abf1a71b4106698605cf8a27406ed8004de229591111020d7b3bc0baeaacc817a718f2e72d2b3bbf9e8b8f0fd\
        69ff388a37ad80c0b966d780bd92481031ab5122062fce2007aace6616d6d936dcc9c3c63ff5c05103cc21d97160\
        3b4ed0b3cb6fb9c5dbc46e81d8d264b5b47f35007ff8650be12eb1ba6dcd33013758589b3090d19ee110eafec305\
        201755431f832cbe9c6771f4391c5066f39690bd1643ac9127357482f3d6e8bd68d304a3e7c71769c166e25d5b56\
        1d68791019d4c087661240d359668dd6";

    const BIAS_V1: &str = "\
        4452575301000228b52ffd644508ed1500d6db5f40306d940ec0c5836901c40dcb9c2046804eaea209ca9702928e\
        52ed03bea3ed2c6bd3a807f75b6ade06977404e87d1e970f10bc6266816ebdc792986a11d932a55b0046004000a0\
        8e68729d5106c2c8b379349a0604339c39da7838930b410c63c96017b84d8db6410cc34d8e363b1f10c7a6d13c9c\
        b6910991405c0388614c98b9d138cc84c92669d33620064b53042f703ad03eb043c1058a4673a331801d4705de67\
        7b6fefbe67677febacba9dbdb79be9bdd975bd14ab45809f2876e52775659db0ac7c68180081faf02f4b492dadca\
        2fd1f92750a9f5b1f3559aa237b94cdb46fa5c20670bd2d2c520fd4ca38594c715923112bbc97a3576b18b106272\
        5d087ee096675ed5a76ff7f956fdbdffb3afcff6dfd5be7e8037bfe6d7feea5eefd5bbabd7dd7dea0b48462a6c90\
        5032e214bb5724c5b200b0159242e5c49fc0009196ace40b3d889d26f09357194b501762b724342ca280b44e2282\
        01228043447e0851f070696dca99dab1434846ecde72b8084dc8507161671a3b0d298f80a5a871c1632523495125\
        d318b00291a122d6011280a3380ab5888010a30c712692a04682d1a6a8f50c410800158f084150b474c506fd8b13\
        82aca288788f8b44eb844054bd878fe9456ede8e18c98c5542dc9fa2c5db91747c2fa1c23d1e6ff98a2fe2f0dca9\
        09f80e52158382fe6e5db344365210a261c47095ea9a6eacc8fca0fa8740e449500c41e92cd1de2c9412f4596e39\
        266a20c82623409b2054aeba1c4093e17a47b9b66302c5a129d3f20ecb33ad2874989f569d0f4daa2afa7359a252\
        af2620b7d16db0789c5011a3b5a74769c589181c59ac3488271e6d903d374623f862ab504150d9a6339fd36280bc\
        37e431173f04fd5cca82f307e0a4e51e6e546cb1364bb8cbc9e643e4e4683718952f822bda95928097a0338a5c8d\
        ed85252fafc18069a9f2bb7ad51ffe254d2a6e250088a74459055503a5e7c9ce";

    const BIAS_V2: &str = "\
        4452575302000228b52ffd64950845170076de6541308d930ec0c55d310109b7ce6a74056a3dd20861881901cbab\
        df381efd664ddc6d1a5c36db36d95ec19fa2287adb70a66e0a5e31b340b7ad8ca88fac35b2654a01630047004f00\
        9647969d449af7c946a0d2d440268e0453280b75b0cee8713ed3e4097da6467ad726c3b9342f9b1d2c7bd7469b1f\
        6c8244238eac8385344c83433a8db407efda786ca607d32e8f0d9ca70cd378d7db98a5a7791302267a1d0c34af64\
        9a1eccc1eb3849ce86cebb7b7b57bf0b5577d7a9bdd46d78afd7d95ebdbd7bb786ceedc2eb7a2fd68a01ffb8d898\
        7f582b9698900c042248427c2bb3a19615e59fd8fc1ba0d4fab8d9da982567096b62a876fc30821137b71e2c4815\
        365058d850e3c6c1044456ba1aa40f35623001b146304ee26659afc62d6e1346582c4bc1133c7378caa9ddadbfd3\
        5fddaebbad6ed7b753bdfd02f6fc9d1ffb2917fed7fadda56c85955d2ffcfa90da35dcef3ab87005fc0d504e2e74\
        a09052e2236ec7c84b5511602924009516bf7221222b4949478a10375d6027af32a6906488db9ac8308903b23a4a\
        c98508018e1219826401c4651580aca861c55324229224a9645a03d002991922ce0112e09330cca4444088518638\
        13495023c16853d47a069538b169aafc5d16e55442255fa3b2f39427560a06753da86e14829da3741b0f6a078d06\
        15cc16f1de1f8956491d54b547971902ab6737048ec754b2d73fbb1f6f51623a35900aa03ed2d6543c0502aca61a\
        97ac7fd50607fdbb1d95257e8fa0670de1b357ec63baf3eae3ddc81fc29e4fe29f05826544c1b1b0e0412da33ca7\
        dd0d37c0a99bec83be72c57018c657e64d7a158a191c539a9871424f108989b08da4b9aafc60534662250d98087f\
        8006b75bd86dc0077c9f2242da320183ad66d815c660f09e3b1e6dbae13d1724c0139e87ac1479f0778b401563ec\
        7e4f87eea503cf050ad8ab827fd0742b93ad2f28a3e0f210f8bddc008b5288b86ded29e9002e016129b942e10525\
        e7557680fea527ff37d51f7ca497543080c0613f00ca02b21a2b00f9c7";
}
