//! iotflow's integration tests live in `integration/` (one test binary,
//! `cargo test -p iotflow-tests`); golden cases in `golden/<case>/`; the
//! fleet-v1 Python reference scripts in `reference/`. This library is empty.
