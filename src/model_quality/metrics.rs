//! A state's metrics, with Model Monitor's names and in its order (DG
//! `model-monitor-model-quality-metrics.md`), by Spark MLlib's formulas.

use super::sample::{SAMPLES, SUBSAMPLES, standard_deviation};
use super::scores::ratio;
use super::state::{BinaryState, Confusion, ModelQualityState, MulticlassState, RegressionState};
use super::{MIN_ROWS_FOR_STD, ProblemType};

/// The class the best constant classifier always predicts (see the module doc of
/// `model_quality`).
const CONSTANT_CLASS: &str = "1";

/// F-scores reported, as (β, name suffix).
const BETAS: [(f64, &str); 3] = [(0.5, "f0_5"), (1.0, "f1"), (2.0, "f2")];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricValue {
    pub value: f64,
    /// `None` below [`MIN_ROWS_FOR_STD`] rows (written `"NaN"`).
    pub standard_deviation: Option<f64>,
}

/// Points of a curve: ROC as (false positive rate, true positive rate), precision-recall as
/// (recall, precision).
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub points: Vec<(f64, f64)>,
}

/// actual class → predicted class → rows, in class order.
pub type ConfusionMatrix = Vec<(String, Vec<(String, u64)>)>;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelQualityStatistics {
    pub problem_type: ProblemType,
    pub item_count: u64,
    /// Every scalar metric, in Model Monitor's order.
    pub metrics: Vec<(String, MetricValue)>,
    /// Classification: actual class → predicted class → rows.
    pub confusion_matrix: Option<ConfusionMatrix>,
    /// Binary classification with scores, unless the score table refused the window.
    pub roc: Option<Curve>,
    pub precision_recall: Option<Curve>,
    /// Rows whose scores the window could not keep; see [`super::MAX_SCORE_ENTRIES`].
    pub score_rows_refused: u64,
}

impl ModelQualityStatistics {
    /// The value of the metric `name`.
    pub fn metric(&self, name: &str) -> Option<MetricValue> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| *value)
    }

    /// (CloudWatch metric name, value) per finite scalar metric: the statistics keys, as Model
    /// Monitor publishes them to `aws/sagemaker/Endpoints/model-metrics` (FORMATS.md §5.4).
    /// Curves and the confusion matrix are not metrics.
    pub fn cloudwatch_metrics(&self) -> Vec<(String, f64)> {
        self.metrics
            .iter()
            .filter(|(_, m)| m.value.is_finite())
            .map(|(name, m)| (name.clone(), m.value))
            .collect()
    }
}

/// The metrics of `state` (which it sorts first, so the score table is canonical).
pub fn evaluate(state: &mut ModelQualityState) -> ModelQualityStatistics {
    state.compact();
    let sample_rows = state.sample_rows();
    let item_count = sample_rows[0];
    // Rows added with `Membership::WINDOW_ONLY` leave the subsamples empty: no spreads then.
    let spread = item_count >= MIN_ROWS_FOR_STD && sample_rows[1..].iter().all(|&n| n > 0);
    let mut statistics = ModelQualityStatistics {
        problem_type: state.problem_type(),
        item_count,
        metrics: Vec::new(),
        confusion_matrix: None,
        roc: None,
        precision_recall: None,
        score_rows_refused: state.score_rows_refused(),
    };
    let per_sample: Vec<(String, [f64; SAMPLES])> = match state {
        ModelQualityState::Binary(binary) => {
            statistics.confusion_matrix = Some(binary_matrix(&binary.confusion[0]));
            // Curves only when every row had a score and the table kept them all.
            if binary.scores.rows() == item_count {
                statistics.roc = binary.scores.roc(0).map(|points| Curve { points });
                statistics.precision_recall = binary
                    .scores
                    .precision_recall(0)
                    .map(|points| Curve { points });
            }
            binary_metrics(binary, statistics.roc.is_some())
        }
        ModelQualityState::Multiclass(multi) => {
            statistics.confusion_matrix = Some(multiclass_matrix(multi));
            multiclass_metrics(multi)
        }
        ModelQualityState::Regression(regression) => regression_metrics(regression),
    };
    statistics.metrics = per_sample
        .into_iter()
        .map(|(name, values)| {
            let standard_deviation = spread
                .then(|| standard_deviation(&values[1..=SUBSAMPLES]))
                .filter(|s| s.is_finite());
            (
                name,
                MetricValue {
                    value: values[0],
                    standard_deviation,
                },
            )
        })
        .collect();
    statistics
}

/// Spark's `fMeasure`: 0 when precision and recall are both 0.
fn f_beta(precision: f64, recall: f64, beta: f64) -> f64 {
    let beta2 = beta * beta;
    if precision + recall == 0.0 {
        0.0
    } else {
        (1.0 + beta2) * precision * recall / (beta2 * precision + recall)
    }
}

fn binary_matrix(c: &Confusion) -> ConfusionMatrix {
    vec![
        (
            "0".into(),
            vec![
                ("0".into(), c.true_negatives),
                ("1".into(), c.false_positives),
            ],
        ),
        (
            "1".into(),
            vec![
                ("0".into(), c.false_negatives),
                ("1".into(), c.true_positives),
            ],
        ),
    ]
}

fn binary_metrics(state: &BinaryState, with_auc: bool) -> Vec<(String, [f64; SAMPLES])> {
    let each = |f: &dyn Fn(&Confusion) -> f64| -> [f64; SAMPLES] {
        std::array::from_fn(|s| f(&state.confusion[s]))
    };
    let recall = |c: &Confusion| ratio(c.true_positives, c.positives());
    let precision = |c: &Confusion| ratio(c.true_positives, c.true_positives + c.false_positives);
    let false_positive_rate =
        |c: &Confusion| ratio(c.false_positives, c.false_positives + c.true_negatives);
    // Always predicting 1: precision and accuracy are the share of positives.
    let constant_precision = |c: &Confusion| ratio(c.positives(), c.rows());
    let constant_recall = |c: &Confusion| if c.positives() > 0 { 1.0 } else { 0.0 };

    let mut metrics = vec![
        ("recall".to_string(), each(&recall)),
        ("precision".into(), each(&precision)),
        (
            "accuracy".into(),
            each(&|c| ratio(c.true_positives + c.true_negatives, c.rows())),
        ),
        (
            "recall_best_constant_classifier".into(),
            each(&constant_recall),
        ),
        (
            "precision_best_constant_classifier".into(),
            each(&constant_precision),
        ),
        (
            "accuracy_best_constant_classifier".into(),
            each(&constant_precision),
        ),
        ("true_positive_rate".into(), each(&recall)),
        (
            "true_negative_rate".into(),
            each(&|c| 1.0 - false_positive_rate(c)),
        ),
        ("false_positive_rate".into(), each(&false_positive_rate)),
        ("false_negative_rate".into(), each(&|c| 1.0 - recall(c))),
    ];
    if with_auc {
        let auc = std::array::from_fn(|s| state.scores.auc(s).unwrap_or(f64::NAN));
        metrics.push(("auc".into(), auc));
    }
    for (beta, name) in BETAS {
        metrics.push((
            name.into(),
            each(&|c| f_beta(precision(c), recall(c), beta)),
        ));
    }
    for (beta, name) in BETAS {
        metrics.push((
            format!("{name}_best_constant_classifier"),
            each(&|c| f_beta(constant_precision(c), constant_recall(c), beta)),
        ));
    }
    metrics
}

/// Class names in Spark's order: numbers numerically, then other text.
fn class_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Every class seen as actual or predicted, in [`class_order`].
fn classes(state: &MulticlassState) -> Vec<&str> {
    let mut classes: Vec<&str> = state
        .counts
        .iter()
        .flat_map(|(actual, row)| {
            std::iter::once(actual.as_str()).chain(row.keys().map(|p| p.as_str()))
        })
        .collect();
    classes.sort_by(|a, b| class_order(a, b));
    classes.dedup();
    classes
}

fn multiclass_matrix(state: &MulticlassState) -> ConfusionMatrix {
    let classes = classes(state);
    let mut matrix = Vec::new();
    for actual in &classes {
        let Some(row) = state.counts.get(*actual) else {
            continue;
        };
        let counts = classes
            .iter()
            .map(|predicted| {
                let n = row.get(*predicted).map_or(0, |c| c[0]);
                (predicted.to_string(), n)
            })
            .collect();
        matrix.push((actual.to_string(), counts));
    }
    matrix
}

/// Spark `MulticlassMetrics` over a dense matrix `m[actual][predicted]`: accuracy, weighted
/// recall, weighted precision and weighted F-scores, the weights being each actual class's share.
fn weighted_metrics(m: &[Vec<u64>]) -> [f64; 6] {
    let k = m.len();
    let rows: Vec<u64> = m.iter().map(|row| row.iter().sum()).collect();
    let predicted: Vec<u64> = (0..k).map(|p| m.iter().map(|row| row[p]).sum()).collect();
    let n: u64 = rows.iter().sum();
    let total = n as f64;
    let correct: u64 = (0..k).map(|c| m[c][c]).sum();
    let mut out = [ratio(correct, n), 0.0, 0.0, 0.0, 0.0, 0.0];
    for c in (0..k).filter(|&c| rows[c] > 0) {
        let weight = rows[c] as f64;
        let recall = ratio(m[c][c], rows[c]);
        let precision = ratio(m[c][c], predicted[c]);
        out[1] += recall * weight / total;
        out[2] += precision * weight / total;
        for (i, (beta, _)) in BETAS.iter().enumerate() {
            out[3 + i] += f_beta(precision, recall, *beta) * weight / total;
        }
    }
    out
}

fn multiclass_metrics(state: &MulticlassState) -> Vec<(String, [f64; SAMPLES])> {
    let mut classes = classes(state);
    let constant = match classes.iter().position(|c| *c == CONSTANT_CLASS) {
        Some(i) => i,
        None => {
            classes.push(CONSTANT_CLASS);
            classes.len() - 1
        }
    };
    let k = classes.len();
    let mut model = [[0.0; 6]; SAMPLES];
    let mut constant_model = [[0.0; 6]; SAMPLES];
    for s in 0..SAMPLES {
        let mut m = vec![vec![0u64; k]; k];
        let mut c = vec![vec![0u64; k]; k];
        for (a, actual) in classes.iter().enumerate() {
            let Some(row) = state.counts.get(*actual) else {
                continue;
            };
            for (p, predicted) in classes.iter().enumerate() {
                let n = row.get(*predicted).map_or(0, |counts| counts[s]);
                m[a][p] += n;
                c[a][constant] += n;
            }
        }
        model[s] = weighted_metrics(&m);
        constant_model[s] = weighted_metrics(&c);
    }
    let names = [
        "accuracy",
        "weighted_recall",
        "weighted_precision",
        "weighted_f0_5",
        "weighted_f1",
        "weighted_f2",
    ];
    let mut metrics: Vec<(String, [f64; SAMPLES])> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_string(), std::array::from_fn(|s| model[s][i])))
        .collect();
    metrics.extend(names.iter().enumerate().map(|(i, name)| {
        (
            format!("{name}_best_constant_classifier"),
            std::array::from_fn(|s| constant_model[s][i]),
        )
    }));
    metrics
}

fn regression_metrics(state: &RegressionState) -> Vec<(String, [f64; SAMPLES])> {
    let mse = |s: usize| {
        let sums = &state.sums[s];
        sums.squared_error() / sums.rows as f64
    };
    vec![
        (
            "mae".into(),
            std::array::from_fn(|s| state.sums[s].sum_absolute_error / state.sums[s].rows as f64),
        ),
        ("mse".into(), std::array::from_fn(mse)),
        ("rmse".into(), std::array::from_fn(|s| mse(s).sqrt())),
        (
            "r2".into(),
            std::array::from_fn(|s| {
                let sums = &state.sums[s];
                1.0 - sums.squared_error() / sums.total_sum_of_squares()
            }),
        ),
    ]
}
