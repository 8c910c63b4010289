//! Job runtime: workers, processes, cluster mode, shutdown.
