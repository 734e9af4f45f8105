//! Parquet keeps its own column types; record batches come straight from the arrow reader.

use std::fs::File;
use std::path::Path;

use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::{Chunk, DecodeError, DecodeOptions, Decoder, Quarantine};

pub struct ParquetDecoder {
    reader: ParquetRecordBatchReader,
    source_name: String,
}

impl ParquetDecoder {
    /// Reads the footer now, so a file that is not Parquet fails here rather than mid-run.
    pub fn open(path: &Path, options: &DecodeOptions) -> Result<Self, DecodeError> {
        let source_name = path.display().to_string();
        let file = File::open(path).map_err(|error| DecodeError::Io {
            source_name: source_name.clone(),
            error,
        })?;
        let malformed = |error: ::parquet::errors::ParquetError| DecodeError::Malformed {
            source_name: source_name.clone(),
            message: format!("not readable as Parquet: {error}"),
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(malformed)?
            .with_batch_size(options.chunk_rows.max(1))
            .build()
            .map_err(malformed)?;
        Ok(Self {
            reader,
            source_name,
        })
    }
}

impl Decoder for ParquetDecoder {
    fn next_chunk(&mut self, _quarantine: &mut Quarantine) -> Result<Option<Chunk>, DecodeError> {
        match self.reader.next() {
            None => Ok(None),
            Some(Ok(features)) => Ok(Some(Chunk {
                features,
                events: None,
            })),
            Some(Err(error)) => Err(DecodeError::Malformed {
                source_name: self.source_name.clone(),
                message: format!("cannot read Parquet data: {error}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;
    use crate::decode::testing::{drain, options};
    use crate::decode::{InputFormat, open_path};

    #[test]
    fn keeps_parquet_types_in_chunks_of_chunk_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.parquet");
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Float64Array::from(vec![Some(0.5), None, Some(2.0)])),
                Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])),
            ],
        )
        .unwrap();
        let mut writer = ::parquet::arrow::ArrowWriter::try_new(
            File::create(&path).unwrap(),
            schema.clone(),
            None,
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        let options = DecodeOptions {
            chunk_rows: 2,
            ..options(InputFormat::Parquet)
        };
        let (chunks, _) = drain(open_path(&path, &options).unwrap());
        let sizes: Vec<usize> = chunks.iter().map(|c| c.features.num_rows()).collect();
        assert_eq!(sizes, [2, 1]);
        assert_eq!(chunks[0].features.schema(), schema);
        let x = chunks[0]
            .features
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!((x.value(0), x.is_null(1)), (0.5, true));
        let s = chunks[1]
            .features
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert!(s.is_null(0));
    }

    #[test]
    fn a_file_that_is_not_parquet_is_malformed_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.parquet");
        std::fs::write(&path, "a,b\n1,2\n").unwrap();
        match ParquetDecoder::open(&path, &options(InputFormat::Parquet)) {
            Err(DecodeError::Malformed { source_name, .. }) => {
                assert_eq!(source_name, path.display().to_string())
            }
            Err(other) => panic!("expected Malformed, got {other}"),
            Ok(_) => panic!("expected an error"),
        }
    }
}
