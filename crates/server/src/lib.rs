//! iotflow HTTP server: device registry API, ingest, queries.
