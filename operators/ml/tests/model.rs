//! Loading and running ONNX models built in Rust, against the same math in
//! plain Rust.

mod common;

use std::path::PathBuf;

use common::*;
use iotflow_ml::{BatchDim, Error, Model, ModelOutput};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn committed_models_are_what_the_generator_builds() {
    // Set IOTFLOW_REGENERATE_MODELS=1 to rewrite them after changing it.
    for (name, bytes) in [("linear.onnx", linear_onnx()), ("mlp.onnx", mlp_onnx(None))] {
        let path = data(name);
        if std::env::var_os("IOTFLOW_REGENERATE_MODELS").is_some() {
            std::fs::write(&path, &bytes).expect("write model");
        }
        let committed = std::fs::read(&path).expect("committed model");
        assert!(committed == bytes, "{name} differs from the generator's");
    }
}

#[test]
fn mlp_outputs_match_plain_rust_from_a_file_and_from_bytes() {
    let from_file = Model::from_path(data("mlp.onnx"), MLP_IN).expect("load");
    let from_bytes = Model::from_bytes(&mlp_onnx(None), MLP_IN).expect("load");
    for model in [from_file, from_bytes] {
        assert_eq!(model.batch(), BatchDim::Symbolic);
        assert_eq!(
            model.outputs(),
            [
                ModelOutput {
                    name: "logits".into(),
                    width: 3
                },
                ModelOutput {
                    name: "score".into(),
                    width: 1
                }
            ]
        );
        assert_eq!(model.width(), 4);
        let x = rows(300, MLP_IN);
        let out = model.run(&x).expect("run");
        assert_eq!(out.len(), 300 * 4);
        let (mut positive, mut negative) = (0, 0);
        for (row, got) in x.chunks(MLP_IN).zip(out.chunks(4)) {
            let want = mlp_reference(row);
            for (g, w) in got.iter().zip(&want) {
                assert!(close(*g, *w), "{got:?} != {want:?} for {row:?}");
            }
            positive += want[..3].iter().filter(|v| **v > 0.0).count();
            negative += want[..3].iter().filter(|v| **v < 0.0).count();
        }
        // Both signs come out: the rows exercise the network, not a constant.
        assert!(positive > 100 && negative > 100, "{positive} {negative}");
    }
}

#[test]
fn a_rows_outputs_do_not_depend_on_its_batch() {
    let model = Model::from_bytes(&mlp_onnx(None), MLP_IN).expect("load");
    let x = rows(1500, MLP_IN);
    let whole = model.run(&x).expect("run");
    for size in [1, 2, 7, 64, 1024] {
        let parts: Vec<f32> = x
            .chunks(size * MLP_IN)
            .flat_map(|c| model.run(c).expect("run"))
            .collect();
        let same = parts
            .iter()
            .zip(&whole)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "batches of {size} change the outputs");
    }
}

#[test]
fn fixed_batch_models_are_padded_and_split() {
    let model = Model::from_bytes(&mlp_onnx(Some(16)), MLP_IN).expect("load");
    assert_eq!(model.batch(), BatchDim::Fixed(16));
    for n in [1, 16, 37] {
        let x = rows(n, MLP_IN);
        let out = model.run(&x).expect("run");
        assert_eq!(out.len(), n * 4);
        for (row, got) in x.chunks(MLP_IN).zip(out.chunks(4)) {
            let want = mlp_reference(row);
            assert!(got.iter().zip(&want).all(|(g, w)| close(*g, *w)));
        }
    }
}

#[test]
fn linear_model_is_exact() {
    let model = Model::from_path(data("linear.onnx"), 2).expect("load");
    let x = [3.0, 1.0, -2.5, 4.0, 0.0, 0.0];
    let out = model.run(&x).expect("run");
    let want: Vec<f32> = x.chunks(2).map(|r| linear_reference(r) as f32).collect();
    assert_eq!(out, want);
    assert!(model.run(&[]).expect("no rows").is_empty());
}

#[test]
fn models_that_do_not_fit_are_refused_with_the_reason() {
    let err = Model::from_bytes(&mlp_onnx(None), 5).expect_err("4 features");
    assert!(
        matches!(err, Error::Shape(ref m) if m.contains("takes 4 features")),
        "{err}"
    );
    let err = Model::from_bytes(&two_inputs_onnx(), 2).expect_err("two inputs");
    assert!(
        matches!(err, Error::Shape(ref m) if m.contains("2 inputs")),
        "{err}"
    );
    let err = Model::from_bytes(b"not a model", 2).expect_err("garbage");
    assert!(matches!(err, Error::Load(_)), "{err}");
    let err = Model::from_path(data("missing.onnx"), 2).expect_err("no file");
    assert!(matches!(err, Error::Read { .. }), "{err}");
    let err = Model::from_bytes(&linear_onnx(), 0).expect_err("no features");
    assert!(matches!(err, Error::Config(_)), "{err}");
    let model = Model::from_bytes(&linear_onnx(), 2).expect("load");
    assert!(matches!(
        model.clone().with_max_batch(0),
        Err(Error::Config(_))
    ));
    assert!(matches!(model.run(&[1.0, 2.0, 3.0]), Err(Error::Shape(_))));
}
