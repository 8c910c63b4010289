//! Declarative patterns over readings, in TOML: operators change rules
//! without recompiling.
//!
//! ```toml
//! within_ms = 600000            # optional: the time bound of a match
//! skip = "past_last_event"      # no_skip (default), to_next, past_last_event,
//!                               # { to_first = "stage" }, { to_last = "stage" }
//!
//! [[stages]]
//! name = "boot"
//! where = { metric = "boot" }
//! quantifier = { at_least = 3 }   # "one" (default), "one_or_more",
//!                                 # { times = n }, { range = [min, max] }
//! # contiguity = "relaxed"        # into this stage: strict, relaxed (default), any
//! # inner = "strict"              # between a loop's events (consecutive / any)
//! # optional = true, greedy = true, until = { metric = "ok" }
//!
//! [[stages]]
//! name = "no-heartbeat"
//! not = "followed_by"             # a negation: "next" or "followed_by"
//! where = { all = [{ metric = "heartbeat" }, { value_gt = 0.0 }] }
//! ```
//!
//! Conditions ([`ReadingCondition`]) test a reading's metric, device, value,
//! unit and tags, and combine with `all`, `any` and `not`; `above_last` and
//! `below_last` compare the value with the last reading a stage took (the
//! iterative conditions of the common patterns, such as "rising").

use iotflow_types::Reading;
use serde::{Deserialize, Serialize};

use crate::error::{CepError, invalid};
use crate::matched::Partial;
use crate::pattern::{Contiguity, Limits, Pattern, PatternBuilder, Skip};

/// A pattern over readings, as written in TOML (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternConfig {
    /// The stages and negations, in order.
    pub stages: Vec<StageConfig>,
    /// Every event of a match is less than this after its first (ms).
    #[serde(default)]
    pub within_ms: Option<u64>,
    /// The after-match skip strategy.
    #[serde(default)]
    pub skip: Skip,
    /// Bounds on the state of one key.
    #[serde(default)]
    pub limits: Limits,
}

/// One stage (or, with `not`, one negation) of a [`PatternConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Unique name; matches give each stage's events under it.
    pub name: String,
    /// Makes this a negation: `next` or `followed_by`.
    #[serde(default)]
    pub not: Option<NotConfig>,
    /// The condition (default: every reading).
    #[serde(default, rename = "where")]
    pub condition: Option<ReadingCondition>,
    /// How many readings the stage takes (default one).
    #[serde(default)]
    pub quantifier: Quantifier,
    /// Contiguity into the stage's first reading (default relaxed; ignored
    /// on the first stage).
    #[serde(default)]
    pub contiguity: Contiguity,
    /// Contiguity between a looping stage's readings (default relaxed).
    #[serde(default)]
    pub inner: Option<Contiguity>,
    /// The stage may take no reading.
    #[serde(default)]
    pub optional: bool,
    /// A looping stage takes every reading it can.
    #[serde(default)]
    pub greedy: bool,
    /// A looping stage stops at the first reading matching this.
    #[serde(default)]
    pub until: Option<ReadingCondition>,
}

/// The kind of a negation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotConfig {
    /// `not_next`.
    Next,
    /// `not_followed_by`.
    FollowedBy,
}

/// How many readings a stage takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantifier {
    /// Exactly one.
    #[default]
    One,
    /// One or more.
    OneOrMore,
    /// Exactly n.
    Times(u32),
    /// Between min and max.
    Range(u32, u32),
    /// At least n.
    AtLeast(u32),
}

/// A condition over a reading (and, for `above_last` / `below_last`, the
/// partial match).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadingCondition {
    /// The metric is this.
    Metric(String),
    /// The metric is one of these.
    MetricIn(Vec<String>),
    /// The device is this.
    Device(String),
    /// The device id starts with this.
    DevicePrefix(String),
    /// value > x.
    ValueGt(f64),
    /// value >= x.
    ValueGe(f64),
    /// value < x.
    ValueLt(f64),
    /// value <= x.
    ValueLe(f64),
    /// value == x.
    ValueEq(f64),
    /// min <= value <= max.
    ValueBetween(f64, f64),
    /// The unit is this.
    Unit(String),
    /// The reading has tag `key` = `value`.
    Tag {
        /// Tag name.
        key: String,
        /// Tag value.
        value: String,
    },
    /// The value is above the last value the named stage took (true while
    /// it took none).
    AboveLast(String),
    /// The value is below the last value the named stage took (true while
    /// it took none).
    BelowLast(String),
    /// Every condition holds.
    All(Vec<ReadingCondition>),
    /// Some condition holds.
    Any(Vec<ReadingCondition>),
    /// The condition does not hold.
    Not(Box<ReadingCondition>),
}

impl ReadingCondition {
    /// Whether `r` satisfies the condition, given the partial match `p`.
    pub fn test(&self, r: &Reading, p: &Partial<'_, Reading>) -> bool {
        use ReadingCondition as C;
        match self {
            C::Metric(m) => r.metric.as_str() == m,
            C::MetricIn(ms) => ms.iter().any(|m| r.metric.as_str() == m),
            C::Device(d) => r.device.as_str() == d,
            C::DevicePrefix(d) => r.device.as_str().starts_with(d.as_str()),
            C::ValueGt(x) => r.value > *x,
            C::ValueGe(x) => r.value >= *x,
            C::ValueLt(x) => r.value < *x,
            C::ValueLe(x) => r.value <= *x,
            C::ValueEq(x) => r.value == *x,
            C::ValueBetween(lo, hi) => *lo <= r.value && r.value <= *hi,
            C::Unit(u) => r.unit.as_deref() == Some(u.as_str()),
            C::Tag { key, value } => r
                .tags
                .iter()
                .any(|(k, v)| k.as_str() == key && v.as_str() == value),
            C::AboveLast(s) => p.last(s).is_none_or(|l| r.value > l.value),
            C::BelowLast(s) => p.last(s).is_none_or(|l| r.value < l.value),
            C::All(cs) => cs.iter().all(|c| c.test(r, p)),
            C::Any(cs) => cs.iter().any(|c| c.test(r, p)),
            C::Not(c) => !c.test(r, p),
        }
    }

    fn check(&self, stages: &[&str]) -> Result<(), CepError> {
        use ReadingCondition as C;
        match self {
            C::ValueGt(x) | C::ValueGe(x) | C::ValueLt(x) | C::ValueLe(x) | C::ValueEq(x)
                if !x.is_finite() =>
            {
                invalid(format!("condition {self:?}: the value must be finite"))
            }
            C::ValueBetween(lo, hi) if !(lo.is_finite() && hi.is_finite() && lo <= hi) => {
                invalid(format!("condition {self:?}: needs finite min <= max"))
            }
            C::AboveLast(s) | C::BelowLast(s) if !stages.contains(&s.as_str()) => {
                Err(CepError::UnknownStage(s.clone()))
            }
            C::All(cs) | C::Any(cs) => cs.iter().try_for_each(|c| c.check(stages)),
            C::Not(c) => c.check(stages),
            _ => Ok(()),
        }
    }
}

impl PatternConfig {
    /// Parses a pattern from TOML.
    pub fn from_toml(text: &str) -> Result<Self, CepError> {
        toml::from_str(text).map_err(|e| CepError::Parse(e.to_string()))
    }

    /// Checks the pattern and builds it.
    pub fn build(&self) -> Result<Pattern<Reading>, CepError> {
        let names: Vec<&str> = self
            .stages
            .iter()
            .filter(|s| s.not.is_none())
            .map(|s| s.name.as_str())
            .collect();
        let Some((first, rest)) = self.stages.split_first() else {
            return invalid("a pattern needs at least one stage");
        };
        if first.not.is_some() {
            return invalid(format!(
                "pattern cannot begin with negation {:?}",
                first.name
            ));
        }
        let mut b = stage(Pattern::begin(&first.name), first, &names)?;
        for s in rest {
            b = match (s.not, s.contiguity) {
                (Some(NotConfig::Next), _) => b.not_next(&s.name),
                (Some(NotConfig::FollowedBy), _) => b.not_followed_by(&s.name),
                (None, Contiguity::Strict) => b.next(&s.name),
                (None, Contiguity::Relaxed) => b.followed_by(&s.name),
                (None, Contiguity::Any) => b.followed_by_any(&s.name),
            };
            b = stage(b, s, &names)?;
        }
        if let Some(w) = self.within_ms {
            b = b.within_ms(w);
        }
        b.skip(self.skip.clone()).limits(self.limits).build()
    }
}

fn stage(
    mut b: PatternBuilder<Reading>,
    s: &StageConfig,
    names: &[&str],
) -> Result<PatternBuilder<Reading>, CepError> {
    if let Some(c) = &s.condition {
        c.check(names)?;
        let c = c.clone();
        b = b.filter_with(move |r, p| c.test(r, p));
    }
    b = match s.quantifier {
        Quantifier::One => b,
        Quantifier::OneOrMore => b.one_or_more(),
        Quantifier::Times(n) => b.times(n),
        Quantifier::Range(lo, hi) => b.times_range(lo, hi),
        Quantifier::AtLeast(n) => b.times_or_more(n),
    };
    if s.optional {
        b = b.optional();
    }
    if s.greedy {
        b = b.greedy();
    }
    match s.inner {
        None | Some(Contiguity::Relaxed) => {}
        Some(Contiguity::Strict) => b = b.consecutive(),
        Some(Contiguity::Any) => b = b.allow_combinations(),
    }
    if let Some(u) = &s.until {
        u.check(names)?;
        let u = u.clone();
        b = b.until(move |r, p| u.test(r, p));
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_builds_a_full_pattern() {
        let cfg = PatternConfig::from_toml(
            r#"
            within_ms = 60000
            skip = { to_last = "rise" }
            [limits]
            max_partial_matches = 50
            [[stages]]
            name = "rise"
            where = { all = [{ metric = "temp" }, { above_last = "rise" }] }
            quantifier = { times = 3 }
            inner = "strict"
            [[stages]]
            name = "calm"
            not = "followed_by"
            where = { metric = "reset" }
            [[stages]]
            name = "spike"
            contiguity = "any"
            where = { any = [{ value_gt = 2.5 }, { value_between = [-9.0, -5.0] }] }
            "#,
        )
        .expect("parses");
        assert_eq!(cfg.limits.max_partial_matches, 50);
        let p = cfg.build().expect("builds");
        assert_eq!(p.stage_names(), ["rise", "spike"]);
        assert_eq!(p.within(), Some(60_000));
        assert_eq!(p.skip(), &Skip::ToLast("rise".into()));
    }

    #[test]
    fn rejects_bad_patterns_with_clear_errors() {
        let err = |text: &str| match PatternConfig::from_toml(text).and_then(|c| c.build()) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        };
        assert!(err("stages = []").contains("at least one stage"));
        assert!(
            err("[[stages]]\nname = \"a\"\nwhere = { colour = \"red\" }")
                .contains("unknown variant")
        );
        assert!(err("[[stages]]\nname = \"a\"\nfoo = 1").contains("unknown field"));
        assert!(err("[[stages]]\nname = \"a\"\n[[stages]]\nname = \"a\"").contains("used twice"));
        assert!(
            err("[[stages]]\nname = \"a\"\n[[stages]]\nname = \"b\"\nnot = \"followed_by\"")
                .contains("within")
        );
        assert!(
            err("[[stages]]\nname = \"a\"\nwhere = { above_last = \"zz\" }").contains("\"zz\"")
        );
        assert!(
            err("[[stages]]\nname = \"a\"\nwhere = { value_between = [3.0, 1.0] }")
                .contains("min <= max")
        );
        assert!(err("skip = { to_first = \"q\" }\n[[stages]]\nname = \"a\"").contains("\"q\""));
        assert!(err("[[stages]]\nname = \"a\"\ngreedy = true").contains("looping"));
        assert!(
            err("[[stages]]\nname = \"a\"\nquantifier = { range = [3, 2] }")
                .contains("max below min")
        );
    }
}
