//! HTTP ingest end to end: each case starts the server with an ingest
//! queue over a fresh registry (`Registry::open_in` a temporary
//! directory), posts readings with reqwest, and reads what the queue's
//! `IngestSource` hands to the pipeline.

mod auth;
mod common;
mod flow;
mod queue;
