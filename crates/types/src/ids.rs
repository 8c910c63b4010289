use std::fmt;
use std::hash::{Hash, Hasher};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// A string that stays inline up to 24 bytes (no heap allocation).
pub type SmallStr = CompactString;

macro_rules! small_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(SmallStr);

        impl $name {
            /// Creates an identifier from a string slice (inline when ≤ 24 bytes).
            pub fn new(s: &str) -> Self {
                Self(SmallStr::new(s))
            }
            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(SmallStr::from(s))
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }
    };
}

small_id!(
    /// A device identifier such as `d-00042`.
    DeviceId
);
small_id!(
    /// A metric name such as `temp` or `vibration`.
    Metric
);

/// A hash of `value` that is the same in every process and on every run
/// (FxHash, no random seed). Exchanging records between workers by key must
/// use it: two processes of a cluster have to send a key to the same worker.
///
/// ```
/// use iotflow_types::{stable_hash, DeviceId};
/// assert_eq!(stable_hash(&DeviceId::new("d-1")), stable_hash(&DeviceId::new("d-1")));
/// ```
pub fn stable_hash<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    value.hash(&mut h);
    // FxHash's low bits are weak for short keys; timely routes by the low bits.
    let x = h.finish();
    (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (x >> 32)
}
