//! Loading, checking and running an ONNX model.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::DimLike;

use crate::error::{Error, Result};

/// The default largest micro-batch (rows per model run).
pub const DEFAULT_MAX_BATCH: usize = 1024;

/// The batch (first) dimension of a model's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchDim {
    /// Any number of rows per run (`dim_param`, or no declared shape).
    Symbolic,
    /// Exactly this many rows per run: smaller batches are padded with
    /// zero rows whose outputs are dropped, larger ones split.
    Fixed(usize),
}

/// One output of a model, as the operators lay it out in a row's outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelOutput {
    /// The ONNX output name.
    pub name: String,
    /// Values per row: `k` for a `[batch, k]` output, 1 for `[batch]`.
    pub width: usize,
}

/// An ONNX model, loaded, checked and optimized once.
///
/// The model takes one `f32` input of shape `[batch, features]` and gives
/// one or more outputs of shape `[batch]` or `[batch, k]` (any numeric
/// type, converted to `f32`). A row's outputs are those of every output in
/// order, concatenated: [`Model::width`] values. Cloning shares the
/// optimized plan; each run is independent, so one `Model` serves every
/// worker.
///
/// ```no_run
/// # fn main() -> Result<(), iotflow_ml::Error> {
/// use iotflow_ml::Model;
/// let model = Model::from_path("models/fan-failure.onnx", 4)?.with_max_batch(512)?;
/// let outputs = model.run(&[0.1, 0.2, 0.3, 0.4, 1.0, 1.0, 1.0, 1.0])?; // two rows
/// assert_eq!(outputs.len(), 2 * model.width());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Model {
    plan: Arc<TypedRunnableModel>,
    features: usize,
    batch: BatchDim,
    outputs: Vec<ModelOutput>,
    width: usize,
    max_batch: usize,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("features", &self.features)
            .field("batch", &self.batch)
            .field("outputs", &self.outputs)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Loads the ONNX file at `path` for feature vectors of `features`
    /// values (tensor data in external files is resolved next to it).
    pub fn from_path(path: impl AsRef<Path>, features: usize) -> Result<Model> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        let dir = path.parent().and_then(Path::to_str);
        Self::load(&bytes, dir, features)
    }

    /// Loads an ONNX model from its bytes for feature vectors of `features`
    /// values.
    pub fn from_bytes(bytes: &[u8], features: usize) -> Result<Model> {
        Self::load(bytes, None, features)
    }

    fn load(mut bytes: &[u8], dir: Option<&str>, features: usize) -> Result<Model> {
        if features == 0 {
            return Err(Error::Config("a model needs at least one feature".into()));
        }
        let onnx = tract_onnx::onnx();
        let proto = onnx.proto_model_for_read(&mut bytes).map_err(load_error)?;
        let (batch, batch_name) = declared_input(&proto, features)?;
        let parsed = onnx.parse(&proto, dir).map_err(load_error)?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(Error::Load(format!(
                "unresolved inputs: {:?}",
                parsed.unresolved_inputs
            )));
        }
        let mut model = parsed.model;
        let batch_dim: TDim = match batch {
            BatchDim::Fixed(n) => n.to_dim(),
            BatchDim::Symbolic => model.symbols.sym(&batch_name).to_dim(),
        };
        let fact = f32::fact([batch_dim, features.to_dim()]);
        model.set_input_fact(0, fact.into()).map_err(load_error)?;
        let typed = model.into_optimized().map_err(load_error)?;
        let outputs = checked_outputs(&typed)?;
        let plan = typed.into_runnable().map_err(load_error)?;
        let width = outputs.iter().map(|o| o.width).sum();
        Ok(Model {
            plan,
            features,
            batch,
            outputs,
            width,
            max_batch: DEFAULT_MAX_BATCH,
        })
    }

    /// Sets the largest micro-batch the operators run at once (default
    /// [`DEFAULT_MAX_BATCH`]).
    pub fn with_max_batch(mut self, max_batch: usize) -> Result<Model> {
        if max_batch == 0 {
            return Err(Error::Config("max_batch must be at least 1".into()));
        }
        self.max_batch = max_batch;
        Ok(self)
    }

    /// Values per feature vector (the input's second dimension).
    pub fn features(&self) -> usize {
        self.features
    }

    /// The input's batch dimension.
    pub fn batch(&self) -> BatchDim {
        self.batch
    }

    /// The outputs, in the order their values appear in a row's outputs.
    pub fn outputs(&self) -> &[ModelOutput] {
        &self.outputs
    }

    /// Output values per row (the sum of the outputs' widths).
    pub fn width(&self) -> usize {
        self.width
    }

    /// The largest micro-batch the operators run at once.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Runs the model on `rows`, row-major feature vectors (a multiple of
    /// [`Model::features`] values), and returns [`Model::width`] values per
    /// row, row-major. Any number of rows: runs as many times as the batch
    /// dimension needs.
    pub fn run(&self, rows: &[f32]) -> Result<Vec<f32>> {
        if !rows.len().is_multiple_of(self.features) {
            return Err(Error::Shape(format!(
                "{} values are not rows of {} features",
                rows.len(),
                self.features
            )));
        }
        let n = rows.len() / self.features;
        let mut out = Vec::with_capacity(n * self.width);
        let chunk = match self.batch {
            BatchDim::Symbolic => n.max(1),
            BatchDim::Fixed(b) => b,
        };
        for part in rows.chunks(chunk * self.features) {
            self.run_chunk(part, &mut out)?;
        }
        Ok(out)
    }

    /// One run of the plan on up to one batch of rows.
    fn run_chunk(&self, rows: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let n = rows.len() / self.features;
        let input = match self.batch {
            BatchDim::Fixed(b) if b > n => {
                let mut padded = rows.to_vec();
                padded.resize(b * self.features, 0.0);
                Tensor::from_shape(&[b, self.features], &padded)
            }
            _ => Tensor::from_shape(&[n, self.features], rows),
        }
        .map_err(run_error)?;
        let results = self.plan.run(tvec!(input.into())).map_err(run_error)?;
        let mut views = Vec::with_capacity(results.len());
        for (value, spec) in results.iter().zip(&self.outputs) {
            let values = value.cast_to::<f32>().map_err(run_error)?;
            let view = values.to_plain_array_view::<f32>().map_err(run_error)?;
            if view.len() < n * spec.width {
                return Err(Error::Run(format!(
                    "output {} has {} values for {n} rows of {}",
                    spec.name,
                    view.len(),
                    spec.width
                )));
            }
            views.push(view.iter().copied().collect::<Vec<f32>>());
        }
        for row in 0..n {
            for (values, spec) in views.iter().zip(&self.outputs) {
                out.extend_from_slice(&values[row * spec.width..(row + 1) * spec.width]);
            }
        }
        Ok(())
    }
}

fn load_error(e: impl fmt::Display) -> Error {
    Error::Load(format!("{e:#}"))
}

fn run_error(e: impl fmt::Display) -> Error {
    Error::Run(format!("{e:#}"))
}

/// The batch dimension the model declares for its one input (and the name
/// of its symbol), after checking the input takes `features` `f32` values
/// per row.
fn declared_input(proto: &pb::ModelProto, features: usize) -> Result<(BatchDim, String)> {
    const BATCH: &str = "batch";
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::Load("the model has no graph".into()))?;
    // Old exporters list initializers among the inputs.
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    let [input] = inputs[..] else {
        return Err(Error::Shape(format!(
            "the model has {} inputs; iotflow feeds one [batch, features] input",
            inputs.len()
        )));
    };
    let tensor = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        None => return Ok((BatchDim::Symbolic, BATCH.into())),
        Some(TypeValue::TensorType(t)) => t,
    };
    let float = pb::tensor_proto::DataType::Float as i32;
    if tensor.elem_type != float && tensor.elem_type != 0 {
        return Err(Error::Shape(format!(
            "input {} has element type {}; iotflow feeds f32",
            input.name, tensor.elem_type
        )));
    }
    let Some(shape) = tensor.shape.as_ref() else {
        return Ok((BatchDim::Symbolic, BATCH.into()));
    };
    let [batch, width] = &shape.dim[..] else {
        return Err(Error::Shape(format!(
            "input {} has rank {}; iotflow feeds [batch, features]",
            input.name,
            shape.dim.len()
        )));
    };
    if let Some(DimValue::DimValue(w)) = width.value
        && usize::try_from(w).ok() != Some(features)
    {
        return Err(Error::Shape(format!(
            "input {} takes {w} features; the pipeline builds {features}",
            input.name
        )));
    }
    Ok(match &batch.value {
        Some(DimValue::DimValue(b)) if *b > 0 => match usize::try_from(*b) {
            Ok(b) => (BatchDim::Fixed(b), BATCH.into()),
            Err(_) => (BatchDim::Symbolic, BATCH.into()),
        },
        Some(DimValue::DimParam(name)) if !name.is_empty() => (BatchDim::Symbolic, name.clone()),
        _ => (BatchDim::Symbolic, BATCH.into()),
    })
}

/// Each output's name and width, after checking it is `[batch]` or
/// `[batch, k]` of numbers.
fn checked_outputs(model: &TypedModel) -> Result<Vec<ModelOutput>> {
    let outlets = model.output_outlets().map_err(load_error)?;
    let mut outputs = Vec::with_capacity(outlets.len());
    for (ix, outlet) in outlets.iter().enumerate() {
        let name = model
            .outlet_label(*outlet)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("output{ix}"));
        let fact = model.outlet_fact(*outlet).map_err(load_error)?;
        let dt = fact.datum_type;
        if !(dt.is_float() || dt.is_integer() || dt == DatumType::Bool) {
            return Err(Error::Shape(format!(
                "output {name} holds {dt:?}, not numbers"
            )));
        }
        let dims = fact.shape.dims();
        let width = match dims {
            [_] => 1,
            [_, k] => k
                .to_usize()
                .map_err(|_| Error::Shape(format!("output {name} has a symbolic width {k}")))?,
            _ => {
                return Err(Error::Shape(format!(
                    "output {name} has shape {:?}; iotflow reads [batch] or [batch, k]",
                    fact.shape
                )));
            }
        };
        outputs.push(ModelOutput { name, width });
    }
    if outputs.is_empty() {
        return Err(Error::Shape("the model has no outputs".into()));
    }
    Ok(outputs)
}
