//! driftd against files that SageMaker Model Monitor itself wrote (tests/fixtures/sagemaker-real/,
//! copied from ../shared/sagemaker-real/; each case's SOURCE.md says where it comes from and what
//! is verbatim). The expected values are SageMaker's, never driftd's own.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn case(name: &str) -> PathBuf {
    common::repo_root()
        .join("tests/fixtures/sagemaker-real")
        .join(name)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Differences between two JSON documents, by path. Key order and whitespace do not matter;
/// numbers must be equal as doubles *and* written the same way (`100` vs `100.0` is a
/// difference: Model Monitor writes counts as integers and bucket counts as doubles).
fn json_differences(actual: &Value, expected: &Value, path: &str, out: &mut Vec<String>) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for key in a.keys().chain(e.keys()).collect::<BTreeSet<_>>() {
                let here = format!("{path}.{key}");
                match (a.get(key), e.get(key)) {
                    (Some(x), Some(y)) => json_differences(x, y, &here, out),
                    (None, _) => out.push(format!("{here}: missing")),
                    (_, None) => out.push(format!("{here}: not in SageMaker's file")),
                }
            }
        }
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => {
            for (i, (x, y)) in a.iter().zip(e).enumerate() {
                json_differences(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(a), Value::Number(e)) => {
            if a.as_f64() != e.as_f64() || a.is_f64() != e.is_f64() {
                out.push(format!("{path}: {a} vs SageMaker's {e}"));
            }
        }
        _ if actual == expected => {}
        _ => out.push(format!("{path}: {actual} vs SageMaker's {expected}")),
    }
}

fn assert_same_json(actual: &Path, expected: &Path) {
    let mut differences = Vec::new();
    json_differences(
        &read_json(actual),
        &read_json(expected),
        "",
        &mut differences,
    );
    assert!(
        differences.is_empty(),
        "{} differs from {} in {} places:\n{}",
        actual.display(),
        expected.display(),
        differences.len(),
        differences.join("\n")
    );
}

type ViolationSet = BTreeSet<(String, String, String)>;

/// A violations file as a set of (feature, check type, description): Model Monitor's order
/// follows Spark's partitions, not the features'.
fn violations(path: &Path) -> ViolationSet {
    common::violation_triples(path).into_iter().collect()
}

fn run(command: &mut Command) -> i32 {
    let output = command.output().unwrap();
    assert!(
        output.status.code().is_some_and(|c| c == 0 || c == 3),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.status.code().unwrap()
}

fn check(baseline: &Path, format: &[&str], input: &Path, output: &Path) -> Command {
    let mut command = common::driftd();
    command
        .arg("check")
        .args(format)
        .arg("--baseline")
        .arg(baseline)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output);
    command
}

/// A baseline directory from a statistics file and a constraints file.
fn baseline_dir(root: &Path, statistics: &Path, constraints: &Path) -> PathBuf {
    let dir = root.join("baseline");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(statistics, dir.join("statistics.json")).unwrap();
    std::fs::copy(constraints, dir.join("constraints.json")).unwrap();
    dir
}

/// The SDK's data-quality baseline of a 100-row headerless CSV: every field of SageMaker's
/// statistics.json (std_dev to the last digit: Spark's variance update) and constraints.json.
#[test]
fn sdk_pipeline_baseline_equals_sagemakers_in_every_field() {
    let real = case("sdk-pipeline-dq-baseline");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("baseline");
    run(common::driftd()
        .args(["baseline", "--format", "csv", "--no-header", "--input"])
        .arg(real.join("baseline_dataset.csv"))
        .arg("--output")
        .arg(&out));
    assert_same_json(&out.join("statistics.json"), &real.join("statistics.json"));
    assert_same_json(
        &out.join("constraints.json"),
        &real.join("good_cases/constraints.json"),
    );
}

/// The SDK's negative case: `_c5` declared String over a column of numbers (SOURCE.md says
/// `_c3`; the file's diff against the good case says `_c5`). Model Monitor
/// counts only String values as String ("Only 0.0% of data is String", as real executions
/// write for numeric values under a String constraint); the good case passes. A check writes
/// the constraints suggested from its window, which for the baseline's own data are the
/// baseline's.
#[test]
fn sdk_pipeline_bad_case_fails_on_the_string_constraint_only() {
    let real = case("sdk-pipeline-dq-baseline");
    let data = real.join("baseline_dataset.csv");
    let csv = ["--format", "csv", "--no-header"];
    let dir = tempfile::tempdir().unwrap();

    let bad = baseline_dir(
        &dir.path().join("bad"),
        &real.join("statistics.json"),
        &real.join("bad_cases/constraints.json"),
    );
    let out = dir.path().join("bad-out");
    assert_eq!(run(&mut check(&bad, &csv, &data, &out)), 3);
    let expected: ViolationSet = [(
        "_c5".to_string(),
        "data_type_check".to_string(),
        "Data type match requirement is not met. Expected data type: String, Expected match: 100.0%. Observed: Only 0.0% of data is String.".to_string(),
    )]
    .into();
    assert_eq!(
        violations(&out.join("constraint_violations.json")),
        expected
    );

    let good = baseline_dir(
        &dir.path().join("good"),
        &real.join("statistics.json"),
        &real.join("good_cases/constraints.json"),
    );
    let out = dir.path().join("good-out");
    assert_eq!(run(&mut check(&good, &csv, &data, &out)), 0);
    assert!(violations(&out.join("constraint_violations.json")).is_empty());
    assert_same_json(
        &out.join("constraints.json"),
        &real.join("good_cases/constraints.json"),
    );
    assert_same_json(&out.join("statistics.json"), &real.join("statistics.json"));
}

/// The same data with `_c1` (0s and 1s) written as integers: Model Monitor counts only
/// Fractional values as Fractional, so the baseline's Fractional `_c1` fails its type check at
/// 0 %, and, its window type no longer being the baseline's, gets no drift check.
#[test]
fn a_fractional_feature_written_as_integers_fails_the_type_check() {
    let real = case("sdk-pipeline-dq-baseline");
    let dir = tempfile::tempdir().unwrap();
    let rewritten: String = std::fs::read_to_string(real.join("baseline_dataset.csv"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut cells: Vec<&str> = line.split(',').collect();
            cells[1] = cells[1].strip_suffix(".0").unwrap();
            cells.join(",") + "\n"
        })
        .collect();
    let input = dir.path().join("window.csv");
    std::fs::write(&input, rewritten).unwrap();
    let baseline = baseline_dir(
        dir.path(),
        &real.join("statistics.json"),
        &real.join("good_cases/constraints.json"),
    );
    let out = dir.path().join("out");
    assert_eq!(
        run(&mut check(
            &baseline,
            &["--format", "csv", "--no-header"],
            &input,
            &out
        )),
        3
    );
    let expected: ViolationSet = [(
        "_c1".to_string(),
        "data_type_check".to_string(),
        "Data type match requirement is not met. Expected data type: Fractional, Expected match: 100.0%. Observed: Only 0.0% of data is Fractional.".to_string(),
    )]
    .into();
    assert_eq!(
        violations(&out.join("constraint_violations.json")),
        expected
    );
}

/// One execution window of the NYC-taxi monitor, rebuilt from its own statistics.json: with at
/// most 96 rows the KLL sketch holds every value in arrival order, so each numeric column is
/// known exactly; a column Model Monitor inferred Fractional is written as doubles (`0.0`),
/// an Integral one as integers; missing values are empty cells at the column's end (the order
/// of rows does not matter to a data-quality window).
fn nyctaxi_window_csv(statistics: &Value) -> String {
    let features = statistics["features"].as_array().unwrap();
    let rows = statistics["dataset"]["item_count"].as_u64().unwrap() as usize;
    let columns: Vec<Vec<String>> = features
        .iter()
        .map(|feature| {
            let numbers = &feature["numerical_statistics"];
            let levels = numbers["distribution"]["kll"]["sketch"]["data"]
                .as_array()
                .unwrap();
            assert_eq!(levels.len(), 1, "{}: a compacted sketch", feature["name"]);
            let integral = feature["inferred_type"] == "Integral";
            let mut cells: Vec<String> = levels[0]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    let x = v.as_f64().unwrap();
                    if integral {
                        format!("{}", x as i64)
                    } else {
                        format!("{x:?}")
                    }
                })
                .collect();
            assert_eq!(
                cells.len() as u64,
                numbers["common"]["num_present"].as_u64().unwrap()
            );
            cells.resize(rows, String::new());
            cells
        })
        .collect();
    let mut csv = features
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(",");
    csv.push('\n');
    for row in 0..rows {
        let cells: Vec<&str> = columns.iter().map(|c| c[row].as_str()).collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    csv
}

/// Ten real executions of a data-quality schedule (143 features, 93–96 rows each): driftd on
/// the same window writes the same statistics.json, the same constraints.json (suggested from
/// the window, with the observed completeness 0.978494623655914) and the same violations —
/// data types (String features holding numbers, the model's Fractional output in the Integral
/// label slot, neither of them checked for drift), completeness with today's wording, and
/// nothing for negative values under `is_non_negative`. Drift distances are left out: the
/// baseline statistics.json of this schedule is not in its repository, so the window's own
/// statistics stand in for it and every distance is 0.
#[test]
fn nyctaxi_executions_give_sagemakers_files() {
    let real = case("awsmljp-nyctaxi-monitor-samples/data_quality_samples");
    let reports = real.join("reports/2020");
    let mut windows: Vec<PathBuf> = Vec::new();
    for month in std::fs::read_dir(&reports).unwrap() {
        for day in std::fs::read_dir(month.unwrap().path()).unwrap() {
            windows.push(day.unwrap().path().join("01"));
        }
    }
    windows.sort();
    assert_eq!(windows.len(), 10);
    let dir = tempfile::tempdir().unwrap();
    for (i, window) in windows.iter().enumerate() {
        let here = dir.path().join(i.to_string());
        let statistics = read_json(&window.join("statistics.json"));
        let input = here.join("window.csv");
        std::fs::create_dir_all(&here).unwrap();
        std::fs::write(&input, nyctaxi_window_csv(&statistics)).unwrap();
        let baseline = baseline_dir(
            &here,
            &window.join("statistics.json"),
            &real.join("baseline/constraints.json"),
        );
        let out = here.join("out");
        run(&mut check(
            &baseline,
            &["--format", "csv", "--header"],
            &input,
            &out,
        ));

        assert_same_json(
            &out.join("statistics.json"),
            &window.join("statistics.json"),
        );
        assert_same_json(
            &out.join("constraints.json"),
            &window.join("constraints.json"),
        );
        let without_drift = |set: ViolationSet| -> ViolationSet {
            set.into_iter()
                .filter(|(_, check, _)| check != "baseline_drift_check")
                .collect()
        };
        let found = violations(&out.join("constraint_violations.json"));
        assert_eq!(
            without_drift(found.clone()),
            without_drift(violations(&window.join("constraint_violations.json"))),
            "{}",
            window.display()
        );
        assert!(
            found
                .iter()
                .all(|(_, check, _)| check != "baseline_drift_check"),
            "{found:#?}"
        );
    }
}

/// The last NYC-taxi window has negative values in three features suggested `is_non_negative`;
/// Model Monitor lists nothing for them, and driftd's own check reports them only when asked.
#[test]
fn non_negative_check_is_opt_in() {
    let real = case("awsmljp-nyctaxi-monitor-samples/data_quality_samples");
    let window = real.join("reports/2020/04/06/01");
    let statistics = read_json(&window.join("statistics.json"));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("window.csv");
    std::fs::write(&input, nyctaxi_window_csv(&statistics)).unwrap();
    let baseline = baseline_dir(
        dir.path(),
        &window.join("statistics.json"),
        &real.join("baseline/constraints.json"),
    );
    let csv = ["--format", "csv", "--header"];
    let plain = dir.path().join("plain");
    run(&mut check(&baseline, &csv, &input, &plain));
    let asked = dir.path().join("asked");
    run(check(&baseline, &csv, &input, &asked).arg("--non-negative-check"));

    let non_negative = |out: &Path| -> BTreeSet<String> {
        violations(&out.join("constraint_violations.json"))
            .into_iter()
            .filter(|(_, check, _)| check == "is_non_negative_check")
            .map(|(feature, _, _)| feature)
            .collect()
    };
    assert!(non_negative(&plain).is_empty());
    assert_eq!(
        non_negative(&asked),
        [
            "extra_mean_12slot",
            "extra_mean_16slot",
            "extra_mean_20slot"
        ]
        .map(String::from)
        .into()
    );
}

/// The intro notebook's churn endpoint: baseline from the training CSV, traffic from the CSV it
/// sends (one row of which carries fractions in 0/1 columns), and the model's probability in
/// the `Churn` slot, as the capture files show. The real execution reported 60 violations, all
/// data_type_check: the 59 columns that row spoils, and `Churn` at 0.0 % Integral — no drift
/// for `Churn`, whose window type is not the baseline's. The notebook printed the first ten.
#[test]
fn churn_traffic_gives_the_sixty_data_type_violations_and_no_drift() {
    let real = case("ase-intro-churn-dq");
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("baseline");
    run(common::driftd()
        .args(["baseline", "--format", "csv", "--header", "--input"])
        .arg(real.join("training-dataset-with-header.csv"))
        .arg("--output")
        .arg(&baseline));

    // The three probabilities the notebook's capture file shows, in turn for every request.
    let outputs: Vec<String> = std::fs::read_to_string(real.join("capture_sample_lines.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            record["captureData"]["endpointOutput"]["data"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let traffic = std::fs::read_to_string(real.join("test-dataset-input-cols.csv")).unwrap();
    let requests: Vec<Vec<String>> = traffic
        .lines()
        .map(|row| row.split(',').map(String::from).collect())
        .collect();
    let outputs: Vec<String> = (0..requests.len())
        .map(|i| outputs[i % outputs.len()].clone())
        .collect();
    let input = dir.path().join("capture.jsonl");
    common::write_capture_file(
        &input,
        &requests,
        &outputs,
        common::utc("2022-04-18T00:00:00Z"),
    );
    let out = dir.path().join("out");
    assert_eq!(
        run(&mut check(
            &baseline,
            &["--format", "capture"],
            &input,
            &out
        )),
        3
    );

    let found = violations(&out.join("constraint_violations.json"));
    assert_eq!(found.len(), 60, "{found:#?}");
    assert!(
        found.iter().all(|(_, check, _)| check == "data_type_check"),
        "{found:#?}"
    );
    // 333 of the 334 requests are integers in each spoiled column.
    let spoiled = "Data type match requirement is not met. Expected data type: Integral, Expected match: 100.0%. Observed: Only 99.7005988023952% of data is Integral.";
    let printed = read_json(&real.join("violations_head10_printed.json"));
    for row in printed["rows"].as_array().unwrap() {
        let feature = row["feature_name"].as_str().unwrap().to_string();
        let description = if feature == "Churn" {
            row["description"].as_str().unwrap().to_string()
        } else {
            spoiled.to_string()
        };
        assert!(
            found.contains(&(feature.clone(), "data_type_check".into(), description)),
            "{feature}: {found:#?}"
        );
    }
}

/// `driftd check | head`: a reader that closed stdout early must not turn into a panic
/// (exit 101); the files are written and the exit code still says "violations found".
#[test]
fn a_closed_stdout_does_not_panic() {
    let real = case("sdk-pipeline-dq-baseline");
    let dir = tempfile::tempdir().unwrap();
    let bad = baseline_dir(
        dir.path(),
        &real.join("statistics.json"),
        &real.join("bad_cases/constraints.json"),
    );
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = dir.path().join("out");
    let output = check(
        &bad,
        &["--format", "csv", "--no-header"],
        &real.join("baseline_dataset.csv"),
        &out,
    )
    .stdout(Stdio::from(writer))
    .stderr(Stdio::piped())
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.join("constraint_violations.json").exists());
}
