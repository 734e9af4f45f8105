//! `statistics.json`, field for field as Model Monitor writes it (FORMATS.md §2).
//!
//! The same types read SageMaker's files and driftd's: every field that a real file may lack is
//! optional on read, and unknown fields are ignored (these are data files, not configuration).

use serde::{Deserialize, Serialize};

use crate::profile::{ColumnProfile, DataType, KllSketch, Profile};

/// Model Monitor always writes 10 equal-width buckets; the number is not configurable there.
pub const KLL_BUCKETS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statistics {
    pub version: f64,
    pub dataset: Dataset,
    pub features: Vec<FeatureStatistics>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub item_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStatistics {
    pub name: String,
    pub inferred_type: DataType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerical_statistics: Option<NumericalStatistics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_statistics: Option<StringStatistics>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Common {
    pub num_present: u64,
    pub num_missing: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericalStatistics {
    pub common: Common,
    pub mean: f64,
    pub sum: f64,
    pub std_dev: f64,
    pub min: f64,
    pub max: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<NumericalDistribution>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericalDistribution {
    pub kll: Kll,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kll {
    pub buckets: Vec<KllBucket>,
    pub sketch: Sketch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KllBucket {
    pub lower_bound: f64,
    pub upper_bound: f64,
    pub count: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    pub parameters: SketchParameters,
    /// `data[h]` holds the items of compactor level `h`, each of weight 2^h.
    pub data: Vec<Vec<f64>>,
}

/// Deequ writes `c` (shrinking factor) and `k` (sketch size) as doubles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SketchParameters {
    pub c: f64,
    pub k: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StringStatistics {
    pub common: Common,
    #[serde(default)]
    pub distinct_count: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<StringDistribution>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StringDistribution {
    pub categorical: Categorical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Categorical {
    pub buckets: Vec<CategoricalBucket>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalBucket {
    pub value: String,
    pub count: u64,
}

impl Statistics {
    pub fn from_profile(profile: &Profile) -> Self {
        Self {
            version: 0.0,
            dataset: Dataset {
                item_count: profile.row_count,
            },
            features: profile
                .columns
                .iter()
                .map(|(name, column)| FeatureStatistics::from_column(name, column))
                .collect(),
        }
    }

    pub fn feature(&self, name: &str) -> Option<&FeatureStatistics> {
        self.features.iter().find(|f| f.name == name)
    }
}

impl FeatureStatistics {
    fn from_column(name: &str, column: &ColumnProfile) -> Self {
        let common = Common {
            num_present: column.num_present,
            num_missing: column.num_missing,
        };
        let inferred_type = column.reported_type();
        let mut feature = Self {
            name: name.to_string(),
            inferred_type,
            numerical_statistics: None,
            string_statistics: None,
        };
        match inferred_type {
            DataType::Integral | DataType::Fractional => {
                let moments = &column.moments;
                feature.numerical_statistics = Some(NumericalStatistics {
                    common,
                    // Deequ's Mean is sum / count, not a running mean.
                    mean: if moments.count == 0 {
                        0.0
                    } else {
                        moments.sum / moments.count as f64
                    },
                    sum: moments.sum,
                    std_dev: moments.std_dev_population(),
                    min: moments.min,
                    max: moments.max,
                    distribution: Some(NumericalDistribution {
                        kll: Kll::from_sketch(&column.kll, moments.min, moments.max),
                    }),
                });
            }
            _ => {
                let buckets = column
                    .frequencies
                    .most_frequent_first()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(value, count)| CategoricalBucket { value, count })
                    .collect();
                feature.string_statistics = Some(StringStatistics {
                    common,
                    distinct_count: column.distinct_estimate().round(),
                    distribution: Some(StringDistribution {
                        categorical: Categorical { buckets },
                    }),
                });
            }
        }
        feature
    }

    pub fn common(&self) -> Option<Common> {
        self.numerical_statistics
            .as_ref()
            .map(|n| n.common)
            .or_else(|| self.string_statistics.as_ref().map(|s| s.common))
    }

    pub fn is_numeric(&self) -> bool {
        matches!(
            self.inferred_type,
            DataType::Integral | DataType::Fractional
        )
    }

    /// The KLL sketch rebuilt from `sketch.data`, if the file has one.
    pub fn sketch(&self) -> Option<KllSketch> {
        let kll = &self
            .numerical_statistics
            .as_ref()?
            .distribution
            .as_ref()?
            .kll;
        let parameters = kll.sketch.parameters;
        Some(KllSketch::from_levels(
            kll.sketch.data.clone(),
            parameters.k as usize,
            parameters.c,
        ))
    }

    /// Category → count, if the file has a categorical distribution.
    pub fn categories(&self) -> Option<Vec<(String, u64)>> {
        let buckets = &self
            .string_statistics
            .as_ref()?
            .distribution
            .as_ref()?
            .categorical
            .buckets;
        Some(buckets.iter().map(|b| (b.value.clone(), b.count)).collect())
    }
}

impl Kll {
    fn from_sketch(sketch: &KllSketch, min: f64, max: f64) -> Self {
        Self {
            buckets: sketch
                .equal_width_buckets(min, max, KLL_BUCKETS)
                .into_iter()
                .map(|b| KllBucket {
                    lower_bound: b.lower_bound,
                    upper_bound: b.upper_bound,
                    count: b.count,
                })
                .collect(),
            sketch: Sketch {
                parameters: SketchParameters {
                    c: sketch.c(),
                    k: sketch.k() as f64,
                },
                data: sketch.levels(),
            },
        }
    }
}
