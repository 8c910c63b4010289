//! iotflow: a dataflow framework for IoT telemetry (facade crate).
