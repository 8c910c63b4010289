//! Inference throughput: 1M feature vectors through the test MLP
//! (4 → 8 → 3 + 1), in batches of 1024, with `Model::run` and through the
//! `.infer` operator on one worker.
//!
//! `cargo run --release -p iotflow-ml --example throughput [rows] [batch]`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use iotflow_ml::{Infer, Model, features_fn};
use timely::dataflow::operators::{Inspect, ToStream};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let batch: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1024);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/mlp.onnx");
    let model = Model::from_path(path, 4)?.with_max_batch(batch)?;
    let x: Vec<f32> = (0..rows * 4)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 8.0)
        .collect();

    let start = Instant::now();
    let mut checksum = 0.0f64;
    for chunk in x.chunks(batch * 4) {
        let out = model.run(chunk)?;
        checksum += out.iter().map(|v| *v as f64).sum::<f64>();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "Model::run   {rows} rows, batches of {batch}: {secs:.3} s, {:.2} M rows/s (checksum {checksum:.3})",
        rows as f64 / secs / 1e6
    );

    let records: Vec<[f32; 4]> = x
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    let start = Instant::now();
    let scored = Arc::new(AtomicUsize::new(0));
    let seen = scored.clone();
    timely::example(move |scope| {
        let features = features_fn(4, |r: &[f32; 4], out: &mut [f32]| {
            out.copy_from_slice(r);
            Ok(())
        });
        records
            .to_stream(scope)
            .infer("mlp", &model, features)
            .expect("4 features")
            .inferred
            .inspect_core(move |event| {
                if let Ok((_, batch)) = event {
                    seen.fetch_add(batch.len(), Ordering::Relaxed);
                }
            });
    });
    let secs = start.elapsed().as_secs_f64();
    let scored = scored.load(Ordering::Relaxed);
    println!(
        ".infer       {} rows, 1 worker: {secs:.3} s, {:.2} M rows/s",
        scored,
        scored as f64 / secs / 1e6
    );
    Ok(())
}
