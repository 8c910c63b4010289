//! Inference named in configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::FeatureSpec;
use crate::model::{DEFAULT_MAX_BATCH, Model};

/// An inference step: which model, on which features, in batches of what
/// size.
///
/// ```
/// use iotflow_ml::InferConfig;
/// let config: InferConfig = toml::from_str(r#"
///     model = "tests/data/linear.onnx"
///     features = { window = { columns = ["mean", "max"] } }
/// "#).expect("valid");
/// assert_eq!(config.max_batch, 1024);
/// let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
/// let model = config.load_from(dir).expect("the model takes 2 features");
/// assert_eq!((model.features(), model.width()), (2, 1));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferConfig {
    /// Path of the ONNX model file (relative paths: see
    /// [`InferConfig::load_from`]).
    pub model: PathBuf,
    /// The feature vector the model takes.
    pub features: FeatureSpec,
    /// Most rows per model run. Default 1024.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

fn default_max_batch() -> usize {
    DEFAULT_MAX_BATCH
}

impl InferConfig {
    /// Loads the model, relative paths from the working directory.
    pub fn load(&self) -> Result<Model> {
        self.load_from(std::path::Path::new("."))
    }

    /// Loads the model, a relative path from `dir` (the directory of the
    /// pipeline file), checked against the features' width.
    pub fn load_from(&self, dir: &std::path::Path) -> Result<Model> {
        let width = match &self.features {
            FeatureSpec::Window { columns } => columns.len(),
            FeatureSpec::Shingle { size } => *size,
        };
        if width == 0 {
            return Err(Error::Config("the feature vector is empty".into()));
        }
        Model::from_path(dir.join(&self.model), width)?.with_max_batch(self.max_batch)
    }
}
