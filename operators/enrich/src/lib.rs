//! Enrichment of readings with device metadata as of event time.
