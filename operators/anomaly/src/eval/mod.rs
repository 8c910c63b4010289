//! Evaluating a detector on a labelled series: what `iotflow eval-anomaly`
//! computes.
//!
//! [`read_series`] reads a CSV file of `timestamp,value[,label]` rows;
//! [`replay`](crate::replay) runs a detector over it in file order, so a
//! row's score depends only on the rows up to it; [`evaluate`] compares the
//! flags with the labels.
//!
//! # Definitions
//!
//! * An **anomaly window** is a maximal run of consecutive rows labelled 1.
//!   It is **detected** when a row inside it, or within `tolerance` rows
//!   after its end, is flagged; its **time to detect** is the timestamp of
//!   the first such row minus the timestamp of the window's first row.
//! * A **flagged event** is a maximal run of consecutive flagged rows. It is
//!   a **false alarm** when none of its rows is inside a window extended by
//!   the tolerance.
//! * **recall** = detected windows / windows;
//!   **precision** = detected windows / (detected windows + false alarms);
//!   **F1** = 2·P·R / (P + R). Counting events, not rows, means a detector
//!   that flags a whole level shift gains nothing over one that flags its
//!   first row, and a detector that flags one stray row loses as much as
//!   one that flags a stray burst.
//! * Row-level figures are reported beside them: row precision = flagged
//!   labelled rows / flagged rows, row recall = flagged labelled rows /
//!   labelled rows.

mod metrics;
mod series;
mod timestamp;

pub use metrics::{Metrics, WindowResult, evaluate, runs};
pub use series::{CsvError, Series, read_series};
pub use timestamp::parse_timestamp;
