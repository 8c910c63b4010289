//! `CsvDecoder` must never panic on arbitrary bytes, header detection
//! included; accepted readings go through `Rules::check`.
#![no_main]

use iotflow_core::codec::{CsvDecoder, Decoder};
use iotflow_core::validate::Rules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut dec = CsvDecoder::new();
    // Split like the source does: one record per line, header skipped.
    for line in data.split(|&b| b == b'\n') {
        if dec.is_header(line) {
            continue;
        }
        if let Ok(reading) = dec.decode(line) {
            let _ = Rules::fleet_default().check(&reading);
        }
    }
});
