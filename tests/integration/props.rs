//! Properties of the NDJSON path: no input makes it panic, and every record
//! is either a valid reading or a reject with a reason.

use iotflow_core::codec::{CsvDecoder, Decoder, JsonDecoder};
use iotflow_core::event_time::EventTimeConfig;
use iotflow_testing::harness::{Harness, SourceOnly};
use proptest::prelude::*;

/// A JSON value, well-formed or not, of the kinds devices send.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        (-60.0..160.0f64).prop_map(|v| format!("{v:.2}")),
        (0u64..2_000_000_000_000).prop_map(|v| v.to_string()),
        Just("NaN".to_owned()),
        Just("-Infinity".to_owned()),
        Just("1e999".to_owned()),
        Just("\"NaN\"".to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("[1,2]".to_owned()),
        Just("{\"a\":\"b\"}".to_owned()),
        Just("\"temp\"".to_owned()),
        Just("\"d-1\"".to_owned()),
        "[a-z\\\\\"\\u{80}-\\u{10FFFF}]{0,8}".prop_map(|s| format!("\"{s}\"")),
    ]
}

/// An object over the reading's fields (and others), possibly truncated.
fn jsonish() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("device_id"),
        Just("ts"),
        Just("metric"),
        Just("value"),
        Just("unit"),
        Just("tags"),
        Just("other")
    ];
    (
        proptest::collection::vec((key, value()), 0..7),
        any::<Option<prop::sample::Index>>(),
    )
        .prop_map(|(fields, cut)| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let text = format!("{{{}}}", body.join(","));
            match cut {
                Some(i) => {
                    let mut at = i.index(text.len() + 1);
                    while !text.is_char_boundary(at) {
                        at -= 1;
                    }
                    text[..at].to_owned()
                }
                None => text,
            }
        })
}

/// A record line: JSON-ish text, arbitrary text or arbitrary bytes, without `\n`.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => jsonish().prop_map(String::into_bytes),
        1 => ".{0,40}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..60),
        1 => Just(b"   \t".to_vec()),
    ]
    .prop_map(|mut l| {
        l.retain(|&b| b != b'\n');
        l
    })
}

proptest! {
    #[test]
    fn decoders_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = JsonDecoder::new().decode(&bytes);
        let _ = CsvDecoder::new().decode(&bytes);
    }

    #[test]
    fn json_decoder_accepts_or_gives_a_reason(text in jsonish()) {
        match JsonDecoder::new().decode(text.as_bytes()) {
            Ok(r) => prop_assert!(text.contains("device_id") && text.contains("\"ts\"") && !r.value.is_nan()),
            Err(reason) => prop_assert!(!reason.code().is_empty()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn source_accounts_for_every_line(lines in proptest::collection::vec(line(), 0..40), workers in 1usize..3) {
        let non_blank: Vec<&Vec<u8>> = lines
            .iter()
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace) && l.as_slice() != b"\r")
            .collect();
        let mut per_worker = vec![Vec::new(); workers];
        for (i, l) in lines.iter().enumerate() {
            per_worker[i % workers].push(l.clone());
        }
        let got = Harness::new(EventTimeConfig::default()).with_lines_per_chunk(3).run(per_worker, SourceOnly);
        let t = &got.tally;
        prop_assert_eq!(t.lines, non_blank.len() as u64);
        prop_assert!(t.check_conservation(false).is_ok(), "{:?}", t);
        prop_assert_eq!(got.rejects.len() as u64, t.rejected_total());
        prop_assert_eq!(got.source_late.len() as u64, t.late);
        for r in &got.rejects {
            prop_assert!(!r.reason.code().is_empty());
        }
    }
}
