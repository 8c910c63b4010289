//! Test models, built as ONNX protobufs in Rust (no Python, no download),
//! and the same math in plain Rust to check tract's outputs against.
#![allow(dead_code, unreachable_pub)]

use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

/// Features of the MLP.
pub const MLP_IN: usize = 4;
/// Hidden units of the MLP.
pub const MLP_HIDDEN: usize = 8;
/// Classes of the MLP's logits output.
pub const MLP_CLASSES: usize = 3;

/// Weights of a `rows × cols` matrix (row-major), small and varied.
pub fn weights(seed: usize, rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| (((i * 7 + seed * 13) % 23) as f32 - 11.0) / 16.0)
        .collect()
}

/// The MLP's parameters: `(w1, b1, w2, b2, w3, b3)`.
pub fn mlp_params() -> [Vec<f32>; 6] {
    [
        weights(1, MLP_IN, MLP_HIDDEN),
        weights(2, 1, MLP_HIDDEN),
        weights(3, MLP_HIDDEN, MLP_CLASSES),
        weights(4, 1, MLP_CLASSES),
        weights(5, MLP_HIDDEN, 1),
        weights(6, 1, 1),
    ]
}

/// `logits = relu(x·W1 + b1)·W2 + b2` and `score = sigmoid(relu(x·W1 +
/// b1)·w3 + b3)`, computed in f64 for one row.
pub fn mlp_reference(x: &[f32]) -> Vec<f64> {
    let [w1, b1, w2, b2, w3, b3] = mlp_params();
    let h: Vec<f64> = (0..MLP_HIDDEN)
        .map(|j| {
            let z = b1[j] as f64
                + (0..MLP_IN)
                    .map(|i| x[i] as f64 * w1[i * MLP_HIDDEN + j] as f64)
                    .sum::<f64>();
            z.max(0.0)
        })
        .collect();
    let mut out: Vec<f64> = (0..MLP_CLASSES)
        .map(|k| {
            b2[k] as f64
                + (0..MLP_HIDDEN)
                    .map(|j| h[j] * w2[j * MLP_CLASSES + k] as f64)
                    .sum::<f64>()
        })
        .collect();
    let z = b3[0] as f64 + (0..MLP_HIDDEN).map(|j| h[j] * w3[j] as f64).sum::<f64>();
    out.push(1.0 / (1.0 + (-z).exp()));
    out
}

/// `y = 2·x₀ − x₁`.
pub fn linear_reference(x: &[f32]) -> f64 {
    2.0 * x[0] as f64 - x[1] as f64
}

fn tensor(name: &str, dims: &[i64], values: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: values,
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        name: output.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

/// A batch dimension: `None` for the symbol `N`.
fn dim(batch: Option<i64>) -> pb::tensor_shape_proto::Dimension {
    use pb::tensor_shape_proto::dimension::Value;
    pb::tensor_shape_proto::Dimension {
        value: Some(match batch {
            Some(n) => Value::DimValue(n),
            None => Value::DimParam("N".into()),
        }),
        ..Default::default()
    }
}

fn value_info(name: &str, batch: Option<i64>, width: i64) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::dimension::Value;
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![
                        dim(batch),
                        pb::tensor_shape_proto::Dimension {
                            value: Some(Value::DimValue(width)),
                            ..Default::default()
                        },
                    ],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn model(graph: pb::GraphProto) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        producer_name: "iotflow-ml tests".into(),
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `y = x·[2, −1]ᵀ`: one Gemm, input `[N, 2]`, output `[N, 1]`.
pub fn linear_onnx() -> Vec<u8> {
    model(pb::GraphProto {
        name: "linear".into(),
        node: vec![node("Gemm", &["x", "w", "b"], "y")],
        initializer: vec![
            tensor("w", &[2, 1], vec![2.0, -1.0]),
            tensor("b", &[1], vec![0.0]),
        ],
        input: vec![value_info("x", None, 2)],
        output: vec![value_info("y", None, 1)],
        ..Default::default()
    })
}

/// The MLP with outputs `logits` `[batch, 3]` and `score` `[batch, 1]`;
/// `batch`: `None` for symbolic.
pub fn mlp_onnx(batch: Option<i64>) -> Vec<u8> {
    let [w1, b1, w2, b2, w3, b3] = mlp_params();
    let (i, h, c) = (MLP_IN as i64, MLP_HIDDEN as i64, MLP_CLASSES as i64);
    model(pb::GraphProto {
        name: "mlp".into(),
        node: vec![
            node("Gemm", &["x", "w1", "b1"], "z1"),
            node("Relu", &["z1"], "h"),
            node("Gemm", &["h", "w2", "b2"], "logits"),
            node("Gemm", &["h", "w3", "b3"], "z3"),
            node("Sigmoid", &["z3"], "score"),
        ],
        initializer: vec![
            tensor("w1", &[i, h], w1),
            tensor("b1", &[h], b1),
            tensor("w2", &[h, c], w2),
            tensor("b2", &[c], b2),
            tensor("w3", &[h, 1], w3),
            tensor("b3", &[1], b3),
        ],
        input: vec![value_info("x", batch, i)],
        output: vec![
            value_info("logits", batch, c),
            value_info("score", batch, 1),
        ],
        ..Default::default()
    })
}

/// A model with two inputs (`a + b`), which iotflow cannot feed.
pub fn two_inputs_onnx() -> Vec<u8> {
    model(pb::GraphProto {
        name: "add".into(),
        node: vec![node("Add", &["a", "b"], "y")],
        input: vec![value_info("a", None, 2), value_info("b", None, 2)],
        output: vec![value_info("y", None, 2)],
        ..Default::default()
    })
}

/// Feature rows with values of several magnitudes and signs.
pub fn rows(n: usize, width: usize) -> Vec<f32> {
    (0..n * width)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 8.0 + (i % 3) as f32 * 0.125)
        .collect()
}

/// `|a − b| ≤ 1e-5 · max(1, |b|)`.
pub fn close(a: f32, b: f64) -> bool {
    (a as f64 - b).abs() <= 1e-5 * b.abs().max(1.0)
}
