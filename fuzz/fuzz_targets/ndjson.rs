//! `JsonDecoder::decode` must never panic, whatever the bytes, and whatever it
//! accepts must go through `Rules::check` without panicking either.
#![no_main]

use iotflow_core::codec::{Decoder, JsonDecoder};
use iotflow_core::validate::Rules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut dec = JsonDecoder::new();
    if let Ok(reading) = dec.decode(data) {
        // A decoded reading keeps the invariants the rest of the pipeline relies on.
        assert!(!reading.device.as_str().is_empty());
        let _ = Rules::fleet_default().check(&reading);
        let _ = Rules::permissive().check(&reading);
    }
});
