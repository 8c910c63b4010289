//! Streaming anomaly detectors.
