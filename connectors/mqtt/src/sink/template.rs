//! Topic templates: `devices/{device}/metrics/{metric}` filled from a
//! record's JSON fields.

use serde_json::Value;

use crate::error::MqttError;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A field path: `a.b` is field `b` of object field `a`.
    Field(Vec<String>),
}

/// A publish topic with `{field}` placeholders.
///
/// * `{name}` is the record's top-level field `name`; `{tags.site}` reaches
///   into objects. `{{` and `}}` are literal braces.
/// * Strings are inserted as they are, numbers and booleans in their JSON
///   form. A missing or null field, an object or array, an empty string, or
///   a value holding `/`, `+`, `#` or NUL (which would change the topic's
///   levels or make it a filter) is an error for that record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicTemplate {
    source: String,
    parts: Vec<Part>,
}

impl TopicTemplate {
    /// Parses a template; a publish topic may not contain `+`, `#` or NUL.
    pub fn parse(template: &str) -> Result<TopicTemplate, MqttError> {
        let bad = |why: String| MqttError::Config(format!("topic template {template:?}: {why}"));
        if template.is_empty() {
            return Err(bad("empty".into()));
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => return Err(bad("unclosed '{'".into())),
                            Some(c) => name.push(c),
                        }
                    }
                    let path: Vec<String> = name.trim().split('.').map(str::to_owned).collect();
                    if path.iter().any(String::is_empty) {
                        return Err(bad(format!("bad field name {name:?}")));
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Field(path));
                }
                '}' => return Err(bad("unmatched '}' (write '}}' for a brace)".into())),
                '+' | '#' | '\0' => {
                    return Err(bad(format!("{c:?} is not allowed in a publish topic")));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(TopicTemplate {
            source: template.to_owned(),
            parts,
        })
    }

    /// Whether the template has placeholders (records must then be JSON
    /// objects).
    pub fn has_fields(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The topic of a template without placeholders.
    pub fn fixed(&self) -> Option<String> {
        if self.has_fields() {
            return None;
        }
        Some(
            self.parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => t.as_str(),
                    Part::Field(_) => "",
                })
                .collect(),
        )
    }

    /// The topic for `record`, or why it has none.
    pub fn render(&self, record: &Value) -> Result<String, String> {
        let mut topic = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(t) => topic.push_str(t),
                Part::Field(path) => {
                    let name = path.join(".");
                    let mut v = record;
                    for p in path {
                        v = match v.get(p) {
                            Some(next) => next,
                            None => {
                                return Err(format!(
                                    "missing field `{name}` for topic template {:?}",
                                    self.source
                                ));
                            }
                        };
                    }
                    let s = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => {
                            return Err(format!(
                                "field `{name}` is null (topic template {:?})",
                                self.source
                            ));
                        }
                        Value::Array(_) | Value::Object(_) => {
                            return Err(format!(
                                "field `{name}` is not a string, number or boolean (topic template {:?})",
                                self.source
                            ));
                        }
                    };
                    if s.is_empty() {
                        return Err(format!("field `{name}` is empty"));
                    }
                    if s.contains(['/', '+', '#', '\0']) {
                        return Err(format!(
                            "field `{name}` = {s:?} holds '/', '+', '#' or NUL, which cannot go into one topic level"
                        ));
                    }
                    topic.push_str(&s);
                }
            }
        }
        Ok(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_fields_from_the_record() {
        let t = TopicTemplate::parse("devices/{device}/metrics/{metric}").expect("parses");
        assert!(t.has_fields());
        let r = json!({"device": "d-1", "metric": "temp", "value": 21.5});
        assert_eq!(t.render(&r).as_deref(), Ok("devices/d-1/metrics/temp"));
        let n = TopicTemplate::parse("site/{tags.site}/{seq}/{ok}").expect("parses");
        let r = json!({"tags": {"site": "north"}, "seq": 7, "ok": true});
        assert_eq!(n.render(&r).as_deref(), Ok("site/north/7/true"));
        let b = TopicTemplate::parse("a/{{x}}").expect("parses");
        assert_eq!(b.fixed().as_deref(), Some("a/{x}"));
    }

    #[test]
    fn missing_or_unusable_fields_are_errors_for_that_record() {
        let t = TopicTemplate::parse("devices/{device}/m").expect("parses");
        let e = t.render(&json!({"metric": "x"})).expect_err("missing");
        assert!(e.contains("missing field `device`"), "{e}");
        for v in [
            json!({"device": null}),
            json!({"device": ""}),
            json!({"device": "a/b"}),
            json!({"device": "a+"}),
            json!({"device": ["x"]}),
            json!("not an object"),
        ] {
            assert!(t.render(&v).is_err(), "{v}");
        }
    }

    #[test]
    fn bad_templates_are_config_errors() {
        for bad in [
            "", "a/{x", "a/x}", "a/+/b", "a/#", "a/{}", "a/{x.}", "a/{x{y}}",
        ] {
            assert!(TopicTemplate::parse(bad).is_err(), "{bad:?}");
        }
        let fixed = TopicTemplate::parse("plain/topic").expect("parses");
        assert!(!fixed.has_fields());
        assert_eq!(fixed.fixed().as_deref(), Some("plain/topic"));
    }
}
