//! Rows of text values → a `Utf8` RecordBatch whose columns are in first-seen order.
//!
//! New names are registered in one quick sequential pass (first-seen order is sequential by
//! nature); copying text into Arrow arrays, most of the work for wide records, then runs on
//! contiguous row ranges in parallel, and the ranges' arrays are concatenated per column.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use rayon::prelude::*;

use super::{Quarantine, RejectReason};

/// One value as text; `None` is null.
pub(crate) type Value<'a> = Option<Cow<'a, str>>;

/// A run of a row's values, named the one way or the other.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Run<'r, 'a> {
    /// CSV fields or JSON array elements: value `i` is position `offset + i`, column `_c{…}`
    /// (Spark's names for headerless columns).
    Positional {
        values: &'r [Value<'a>],
        offset: usize,
    },
    /// A flattened JSON object: each value with its key.
    Named {
        keys: &'r [String],
        values: &'r [Value<'a>],
    },
}

impl Run<'_, '_> {
    pub(crate) const EMPTY: Self = Run::Positional {
        values: &[],
        offset: 0,
    };
}

/// A row as up to two runs (a capture record's output and input payloads).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowRef<'r, 'a>(pub [Run<'r, 'a>; 2]);

impl<'r, 'a> RowRef<'r, 'a> {
    pub(crate) fn new(run: Run<'r, 'a>) -> Self {
        Self([run, Run::EMPTY])
    }
}

/// Rows per parallel range; below this, splitting costs more than it saves.
const MIN_RANGE_ROWS: usize = 2048;

/// The columns one object has shown so far. They outlive chunks: a later chunk has every
/// column of the earlier ones, in the same order.
#[derive(Debug)]
pub(crate) struct Columns {
    /// `limits.max_columns`: names past it are refused, so a key that differs on every record
    /// cannot grow every later chunk (and the profile) without bound.
    max_columns: usize,
    names: Vec<String>,
    by_name: HashMap<String, usize>,
    /// Position `k` → column index, filled on first use.
    by_position: Vec<Option<usize>>,
    /// Positions `0..dense` are all registered, so most positional runs need no lookups.
    dense: usize,
    schema: Option<SchemaRef>,
}

impl Columns {
    pub(crate) fn new(max_columns: usize) -> Self {
        Self {
            max_columns,
            names: Vec::new(),
            by_name: HashMap::new(),
            by_position: Vec::new(),
            dense: 0,
            schema: None,
        }
    }

    /// Registers the names of `row`, in order, and returns how many of its values were refused
    /// because their name would be a column past `limits.max_columns`. Call for every row
    /// before [`Columns::batch`]; refused values are left out of the batch.
    pub(crate) fn admit(&mut self, row: RowRef) -> usize {
        row.0.into_iter().map(|run| self.register(run)).sum()
    }

    /// [`Columns::admit`] for the rows of one record, which is counted under
    /// `too_many_columns` when some of its values were refused (it is still used, without them).
    pub(crate) fn admit_record<'r, 'a: 'r>(
        &mut self,
        rows: impl IntoIterator<Item = RowRef<'r, 'a>>,
        source_name: &str,
        (line, raw): (u64, &[u8]),
        quarantine: &mut Quarantine,
    ) {
        let refused: usize = rows.into_iter().map(|row| self.admit(row)).sum();
        if refused > 0 {
            let detail = format!(
                "{refused} values left out: their columns would be past limits.max_columns ({}); \
                 the record's other values are kept",
                self.max_columns
            );
            quarantine.reject(
                source_name,
                line,
                RejectReason::TooManyColumns,
                &detail,
                raw,
            );
        }
    }

    /// The batch of admitted `rows`, with every column seen so far (absent values are null). A
    /// name given twice in one row keeps its first value.
    pub(crate) fn batch(&mut self, rows: &[RowRef]) -> RecordBatch {
        let width = self.names.len();
        let range_rows = rows
            .len()
            .div_ceil(rayon::current_num_threads())
            .max(MIN_RANGE_ROWS);
        let mut ranges: Vec<Vec<ArrayRef>> = rows
            .par_chunks(range_rows)
            .map(|range| self.arrays(range, width))
            .collect();
        let arrays = match ranges.len() {
            0 => self.arrays(&[], width),
            1 => ranges.pop().expect("one range"),
            _ => (0..width)
                .into_par_iter()
                .map(|column| {
                    let pieces: Vec<&dyn arrow::array::Array> =
                        ranges.iter().map(|range| range[column].as_ref()).collect();
                    arrow::compute::concat(&pieces).expect("pieces of one column share its type")
                })
                .collect(),
        };
        batch(self.schema(), arrays, rows.len())
    }

    /// Registers the run's names; returns how many were refused.
    fn register(&mut self, run: Run) -> usize {
        let mut refused = 0;
        match run {
            Run::Positional { values, offset } => {
                for position in offset.max(self.dense)..offset + values.len() {
                    if matches!(self.by_position.get(position), Some(Some(_))) {
                        continue;
                    }
                    let Some(index) = self.register_key(&format!("_c{position}")) else {
                        refused += 1;
                        continue;
                    };
                    if self.by_position.len() <= position {
                        self.by_position.resize(position + 1, None);
                    }
                    self.by_position[position] = Some(index);
                    while matches!(self.by_position.get(self.dense), Some(Some(_))) {
                        self.dense += 1;
                    }
                }
            }
            Run::Named { keys, .. } => {
                for key in keys {
                    refused += usize::from(self.register_key(key).is_none());
                }
            }
        }
        refused
    }

    /// The column of `key`, registered now if there is room for it.
    fn register_key(&mut self, key: &str) -> Option<usize> {
        if let Some(index) = self.by_name.get(key) {
            return Some(*index);
        }
        if self.names.len() >= self.max_columns {
            return None;
        }
        let index = self.names.len();
        self.names.push(key.to_string());
        self.by_name.insert(key.to_string(), index);
        Some(index)
    }

    fn arrays(&self, rows: &[RowRef], width: usize) -> Vec<ArrayRef> {
        let mut builders: Vec<StringBuilder> = (0..width)
            .map(|_| StringBuilder::with_capacity(rows.len(), rows.len() * 8))
            .collect();
        // Rows filled per column (cheaper to keep than to ask the builders).
        let mut filled = vec![0; width];
        let mut set = |column: usize, row: usize, value: &Value| {
            // Past `row` means this row already set the column: the first value wins.
            if filled[column] <= row {
                if filled[column] < row {
                    builders[column].append_nulls(row - filled[column]);
                }
                builders[column].append_option(value.as_deref());
                filled[column] = row + 1;
            }
        };
        for (i, row) in rows.iter().enumerate() {
            for run in row.0 {
                match run {
                    // A position or key without a column was refused by `admit`.
                    Run::Positional { values, offset } => {
                        let columns = self.by_position.get(offset..).unwrap_or_default();
                        for (value, column) in values.iter().zip(columns) {
                            if let Some(column) = column {
                                set(*column, i, value);
                            }
                        }
                    }
                    Run::Named { keys, values } => {
                        for (key, value) in keys.iter().zip(values) {
                            if let Some(column) = self.by_name.get(key) {
                                set(*column, i, value);
                            }
                        }
                    }
                }
            }
        }
        builders
            .iter_mut()
            .zip(filled)
            .map(|(builder, filled)| {
                builder.append_nulls(rows.len() - filled);
                Arc::new(builder.finish()) as ArrayRef
            })
            .collect()
    }

    fn schema(&mut self) -> SchemaRef {
        match &self.schema {
            Some(schema) if schema.fields().len() == self.names.len() => schema.clone(),
            _ => {
                let schema = utf8_schema(&self.names);
                self.schema = Some(schema.clone());
                schema
            }
        }
    }
}

/// All columns nullable `Utf8`: the text decoders' schema.
pub(crate) fn utf8_schema(names: &[String]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|name| Field::new(name, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

/// A batch with an explicit row count, so rows without any column still count.
pub(crate) fn batch(schema: SchemaRef, arrays: Vec<ArrayRef>, rows: usize) -> RecordBatch {
    RecordBatch::try_new_with_options(
        schema,
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .expect("decoders build arrays that match their schema")
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, StringArray};

    use super::*;
    use crate::decode::testing::names;

    fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
        let array = batch.column_by_name(column).unwrap();
        let array = array.as_any().downcast_ref::<StringArray>().unwrap();
        (0..array.len())
            .map(|i| array.is_valid(i).then(|| array.value(i).to_string()))
            .collect()
    }

    fn text(values: &[&'static str]) -> Vec<Value<'static>> {
        values.iter().map(|v| Some(Cow::Borrowed(*v))).collect()
    }

    fn admitted(columns: &mut Columns, rows: &[RowRef]) -> RecordBatch {
        for row in rows {
            assert_eq!(columns.admit(*row), 0);
        }
        columns.batch(rows)
    }

    #[test]
    fn names_past_max_columns_are_refused_and_the_rest_of_the_row_kept() {
        let mut columns = Columns::new(3);
        let keys: Vec<[String; 3]> = (0..4)
            .map(|i| ["a".to_string(), "b".to_string(), format!("k{i}")])
            .collect();
        let values = text(&["1", "1.5", "7"]);
        let rows: Vec<RowRef> = keys
            .iter()
            .map(|keys| {
                RowRef::new(Run::Named {
                    keys,
                    values: &values,
                })
            })
            .collect();
        let refused: Vec<usize> = rows.iter().map(|row| columns.admit(*row)).collect();
        assert_eq!(refused, [0, 1, 1, 1]);
        let positional = text(&["p", "q"]);
        let wide = RowRef::new(Run::Positional {
            values: &positional,
            offset: 0,
        });
        assert_eq!(columns.admit(wide), 2);
        let mut all = rows.clone();
        all.push(wide);
        let batch = columns.batch(&all);
        assert_eq!(names(&batch), ["a", "b", "k0"]);
        let one = Some("1".to_string());
        assert_eq!(
            strings(&batch, "a"),
            [&one, &one, &one, &one, &None].map(Clone::clone)
        );
        assert_eq!(
            strings(&batch, "k0"),
            [Some("7".into()), None, None, None, None]
        );
    }

    #[test]
    fn columns_in_first_seen_order_padded_with_nulls_and_kept_across_chunks() {
        let mut columns = Columns::new(usize::MAX);
        let keys1 = ["a".to_string(), "b".to_string()];
        let keys2 = ["c".to_string(), "a".to_string(), "a".to_string()];
        let (values1, values2) = (text(&["1", "2"]), text(&["3", "4", "dup"]));
        let first = admitted(
            &mut columns,
            &[
                RowRef::new(Run::Named {
                    keys: &keys1,
                    values: &values1,
                }),
                RowRef::new(Run::Named {
                    keys: &keys2,
                    values: &values2,
                }),
            ],
        );
        assert_eq!(first.num_rows(), 2);
        let names: Vec<_> = first
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(strings(&first, "a"), [Some("1".into()), Some("4".into())]);
        assert_eq!(strings(&first, "b"), [Some("2".into()), None]);
        assert_eq!(strings(&first, "c"), [None, Some("3".into())]);

        let output = text(&["0.5"]);
        let (input_keys, input) = (["b".to_string()], text(&["5"]));
        let extra = [Some(Cow::Borrowed("x")), None];
        let second = admitted(
            &mut columns,
            &[
                RowRef([
                    Run::Positional {
                        values: &output,
                        offset: 0,
                    },
                    Run::Named {
                        keys: &input_keys,
                        values: &input,
                    },
                ]),
                RowRef([
                    Run::EMPTY,
                    Run::Positional {
                        values: &extra,
                        offset: 1,
                    },
                ]),
            ],
        );
        let names: Vec<_> = second
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["a", "b", "c", "_c0", "_c1", "_c2"]);
        assert_eq!(strings(&second, "a"), [None, None]);
        assert_eq!(strings(&second, "b"), [Some("5".into()), None]);
        assert_eq!(strings(&second, "_c0"), [Some("0.5".into()), None]);
        assert_eq!(strings(&second, "_c1"), [None, Some("x".into())]);
        assert_eq!(strings(&second, "_c2"), [None, None]);
    }

    #[test]
    fn row_ranges_built_in_parallel_are_joined_in_order() {
        let values: Vec<Vec<Value>> = (0..3 * MIN_RANGE_ROWS + 5)
            .map(|i| vec![Some(Cow::Owned(i.to_string()))])
            .collect();
        let rare_keys = ["rare".to_string()];
        let rare_value = text(&["r"]);
        let rows: Vec<RowRef> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let rare = if i % 1000 == 7 {
                    Run::Named {
                        keys: &rare_keys,
                        values: &rare_value,
                    }
                } else {
                    Run::EMPTY
                };
                RowRef([
                    Run::Positional {
                        values: v,
                        offset: 0,
                    },
                    rare,
                ])
            })
            .collect();
        let batch = admitted(&mut Columns::new(usize::MAX), &rows);
        let expected: Vec<Option<String>> =
            (0..values.len()).map(|i| Some(i.to_string())).collect();
        assert_eq!(strings(&batch, "_c0"), expected);
        let rare = strings(&batch, "rare");
        assert_eq!(rare.iter().flatten().count(), 7);
        assert_eq!(rare[6007], Some("r".into()));
        assert_eq!(rare[6008], None);
    }
}
