//! The notification collection's envelope, `{"value": [...],
//! "validationTokens": [...]}` (docs/graph-protocol.md section 3), read in
//! one pass: each item as its raw members (see `json_object`), the tokens
//! as a JSON value, every other member skipped.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::json_object::MaybeObject;

/// What the envelope holds. A repeated member counts as its last value, as
/// a `serde_json::Map` would keep it.
#[derive(Debug, Default)]
pub struct Envelope<'a> {
    /// `value`, when it is an array: its items, objects or not.
    pub items: Option<Vec<MaybeObject<'a>>>,
    /// `validationTokens` as sent (`Some(Null)` when sent as null).
    pub validation_tokens: Option<Value>,
}

/// Why the text is no envelope.
#[derive(Debug)]
pub enum EnvelopeError {
    /// Not JSON at all; serde_json's message says where.
    Syntax(serde_json::Error),
    /// JSON, but not an object, or its `value` is not an array.
    Shape,
}

/// Reads `text` as an envelope.
pub fn read(text: &str) -> Result<Envelope<'_>, EnvelopeError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let envelope = deserializer.deserialize_any(EnvelopeVisitor).and_then(|envelope| {
        deserializer.end()?;
        Ok(envelope)
    });
    envelope.map_err(|e| if e.is_data() { EnvelopeError::Shape } else { EnvelopeError::Syntax(e) })
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with a \"value\" array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "value" => envelope.items = Some(map.next_value()?),
                "validationTokens" => envelope.validation_tokens = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_and_tokens_are_read_and_the_rest_skipped() {
        let text = r#"{"other":{"deep":[1,{"x":2}]},"value":[{"a":1},"text",[{"b":2}],null,{}],
            "validationTokens":["t.o.k"],"more":"x"}"#;
        let envelope = read(text).unwrap();
        let shapes: Vec<bool> =
            envelope.items.unwrap().iter().map(|item| matches!(item, MaybeObject::Object(_))).collect();
        assert_eq!(shapes, [true, false, false, false, true]);
        assert_eq!(envelope.validation_tokens, Some(json!(["t.o.k"])));
    }

    #[test]
    fn null_tokens_are_kept_apart_from_absent_ones() {
        assert_eq!(read(r#"{"value":[],"validationTokens":null}"#).unwrap().validation_tokens, Some(Value::Null));
        assert_eq!(read(r#"{"value":[]}"#).unwrap().validation_tokens, None);
    }

    #[test]
    fn shape_errors_differ_from_syntax_errors() {
        for text in ["[]", "1", r#"{"value":{}}"#, r#"{"value":"x"}"#] {
            assert!(matches!(read(text), Err(EnvelopeError::Shape)), "{text}");
        }
        for text in ["{", r#"{"value":[}"#, r#"{"value":[]} x"#, ""] {
            assert!(matches!(read(text), Err(EnvelopeError::Syntax(_))), "{text:?}");
        }
        assert!(read("{}").unwrap().items.is_none());
    }
}
