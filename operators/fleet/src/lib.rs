//! Fleet status: last seen, offline and online events in event time, incremental fleet views.
