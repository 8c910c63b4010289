//! Pipeline builder and the reference fleet pipeline.
