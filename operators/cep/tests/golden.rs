//! Golden cases: Flink CEP's documented examples, expected matches written by
//! hand (see tests/golden/README.md for the format).

use std::path::Path;

use iotflow_cep::{CepTally, Matcher, Outcome, PatternConfig};
use iotflow_types::{Reading, Timestamp};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    doc: String,
    input: String,
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    pattern: PatternConfig,
    expected: Vec<String>,
    #[serde(default)]
    timeouts: Option<Vec<String>>,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    frontier: Option<Timestamp>,
}

/// `b2@500` → metric `b`, value 2, ts 500 (default ts: 1000 × (i + 1)).
fn parse(input: &str) -> Vec<Reading> {
    input
        .split_whitespace()
        .enumerate()
        .map(|(i, tok)| {
            let (tok, ts) = match tok.split_once('@') {
                Some((t, ms)) => (t, ms.parse().expect("time")),
                None => (tok, 1000 * (i as u64 + 1)),
            };
            let digits = tok.find(|c: char| c.is_ascii_digit()).unwrap_or(tok.len());
            let value = tok[digits..].parse::<f64>().unwrap_or(0.0);
            Reading::new("k", ts, &tok[..digits], value)
        })
        .collect()
}

fn token(r: &Reading) -> String {
    if r.value == 0.0 {
        r.metric.to_string()
    } else {
        format!("{}{}", r.metric, r.value)
    }
}

fn run(case: &Case, input: &str) -> (Vec<String>, Vec<String>) {
    let pattern = case
        .pattern
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let mut m = Matcher::default();
    let mut tally = CepTally::default();
    let (mut matches, mut timeouts) = (Vec::new(), Vec::new());
    let mut out = |_: Timestamp, o: Outcome<Reading>| match o {
        Outcome::Match(m) => matches.push(m.events().map(token).collect::<Vec<_>>().join(" ")),
        Outcome::Timeout(t) => {
            timeouts.push(t.partial.events().map(token).collect::<Vec<_>>().join(" "))
        }
    };
    for r in parse(input) {
        m.push(&pattern, r, &mut tally, &mut out);
    }
    // No frontier: the input ends (all time passes).
    m.advance(&pattern, case.frontier, &mut tally, &mut out);
    assert_eq!(tally.matches as usize, matches.len());
    (matches, timeouts)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn flink_documented_examples() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "golden files missing: {files:?}");
    let mut cases = 0;
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let file: File =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!file.doc.is_empty());
        for case in &file.case {
            cases += 1;
            let input = case.input.as_deref().unwrap_or(&file.input);
            let (matches, timeouts) = run(case, input);
            let name = format!(
                "{} / {}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                case.name
            );
            if sorted(matches.clone()) != sorted(case.expected.clone()) {
                failures.push(format!(
                    "{name}\n  input    {input}\n  expected {:?}\n  got      {matches:?}",
                    case.expected
                ));
            }
            if let Some(want) = &case.timeouts
                && sorted(timeouts.clone()) != sorted(want.clone())
            {
                failures.push(format!(
                    "{name}\n  input    {input}\n  timeouts expected {want:?}\n  got               {timeouts:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases >= 40, "only {cases} cases");
}
