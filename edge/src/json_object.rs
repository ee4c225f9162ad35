//! A JSON object read as its keys and the raw text of each value, borrowed
//! from the request body.
//!
//! The edge reads a handful of an item's fields and forwards the rest as the
//! sender wrote it. Building a `serde_json::Value` tree of every item and
//! printing it again costs an allocation per string, number and map entry:
//! most of the per-item CPU in the Worker. Here each member is a key and a
//! `&RawValue` (a slice of the body, validated by serde_json), and only the
//! fields the edge needs are parsed further.
//!
//! `RawValue` skips nested values without serde_json's recursion limit, so
//! [`check_depth`] bounds the nesting of the whole body first.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Containers (objects, arrays) nested in each other at most, as deep as
/// serde_json's own parser allows: enough for any Graph payload, and the
/// fan-out parses what the edge forwards with that same limit.
pub const MAX_DEPTH: usize = 127;

/// A JSON object's members in the sender's order, duplicates included.
#[derive(Debug)]
pub struct RawObject<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    /// The raw value of `name`; the last one when the sender repeated the
    /// key, as a `serde_json::Map` would keep it.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.members.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.get())
    }

    /// The members' keys and raw values, in the sender's order.
    pub fn members(&self) -> impl Iterator<Item = (&str, &'a str)> + '_ {
        self.members.iter().map(|(key, value)| (key.as_ref(), value.get()))
    }

    /// The object as JSON text without any member named `left_out`; every
    /// other member is the sender's own text.
    pub fn to_json_without(&self, left_out: &str) -> String {
        let capacity = self.members.iter().map(|(key, value)| key.len() + value.get().len() + 4).sum::<usize>() + 2;
        let mut out = String::with_capacity(capacity);
        out.push('{');
        for (key, value) in self.members.iter().filter(|(key, _)| key != left_out) {
            if out.len() > 1 {
                out.push(',');
            }
            push_key(&mut out, key);
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
        out
    }
}

/// The text of a raw JSON string value (a `RawValue`'s text, so valid JSON);
/// `None` when it is no string. Most strings hold no escape: those are the
/// raw text between the quotes, borrowed.
pub fn string_value(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// Appends an object key as a JSON string. A borrowed key is the sender's
/// text between its quotes, which serde_json borrows only when it holds no
/// escape (and refuses control characters): it needs none, and is copied
/// as it is. A key that held escapes was decoded, and is escaped again.
#[allow(clippy::ptr_arg)] // the key's variant decides how it is written
fn push_key(out: &mut String, key: &Cow<'_, str>) {
    match key {
        Cow::Borrowed(text) => {
            out.push('"');
            out.push_str(text);
            out.push('"');
        }
        // Escaping is serde_json's job; a string always serialises.
        Cow::Owned(text) => out.push_str(&serde_json::Value::from(text.as_str()).to_string()),
    }
}

/// A value read where an object is expected but anything may come: an
/// object as its raw members, anything else skipped (so one bad item of a
/// collection does not fail the body).
#[derive(Debug)]
pub enum MaybeObject<'a> {
    Object(RawObject<'a>),
    Other,
}

impl<'a> MaybeObject<'a> {
    /// Reads `text`, which must be one JSON value (else a syntax error).
    pub fn read(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl<'de> Deserialize<'de> for MaybeObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MaybeObjectVisitor)
    }
}

struct MaybeObjectVisitor;

impl<'de> Visitor<'de> for MaybeObjectVisitor {
    type Value = MaybeObject<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16).min(64));
        while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
            members.push((key, value));
        }
        Ok(MaybeObject::Object(RawObject { members }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(MaybeObject::Other)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(MaybeObject::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(MaybeObject::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(MaybeObject::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(MaybeObject::Other)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(MaybeObject::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(MaybeObject::Other)
    }
}

/// An object key, borrowed from the body unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(key.to_owned())))
    }
}

/// Whether `text` nests containers at most [`MAX_DEPTH`] deep. Meant for
/// text that is then parsed as JSON: it only follows brackets outside
/// strings, skipping string contents a run at a time.
pub fn check_depth(text: &str) -> bool {
    let bytes = text.as_bytes();
    // Text with no more opening brackets than the limit, in strings or
    // not, cannot nest deeper. A Graph item holds one or two objects, so
    // most batches pass on this one count, which runs a word at a time.
    if opening_brackets_at_most(bytes, MAX_DEPTH) {
        return true;
    }
    let (mut depth, mut at) = (0usize, 0usize);
    while at < bytes.len() {
        match bytes[at] {
            b'"' => at = string_end(bytes, at + 1),
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return false;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    true
}

/// Whether at most `limit` bytes are `[` or `{`. It counts a block at a
/// time and stops at the block that passes the limit, so a body with many
/// containers pays the count only up to there.
fn opening_brackets_at_most(bytes: &[u8], limit: usize) -> bool {
    let mut count = 0;
    for block in bytes.chunks(256) {
        count += opening_brackets(block);
        if count > limit {
            return false;
        }
    }
    true
}

/// How many bytes are `[` or `{`, counted eight at a time in a `u64`: the
/// two differ only in bit 0x20, so with it set both read `{`, and a byte
/// of the word XOR eight `{` is zero exactly where one was. A byte's high
/// bit is then set in `high_bit_where_zero` only for a zero byte (adding
/// 0x7f to its low seven bits carries into the high bit for any other).
/// wasm32 has no vector instructions in this build; byte by byte, this
/// count took almost five times as long in V8.
fn opening_brackets(bytes: &[u8]) -> usize {
    const LOW_SEVEN: u64 = u64::from_ne_bytes([0x7f; 8]);
    let chunks = bytes.chunks_exact(8);
    let tail = chunks.remainder().iter().filter(|&&b| b | 0x20 == b'{').count();
    chunks.fold(tail, |count, chunk| {
        let word = u64::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        let zero_where_bracket = (word | u64::from_ne_bytes([0x20; 8])) ^ u64::from_ne_bytes([b'{'; 8]);
        let high_bit_where_zero = !(((zero_where_bracket & LOW_SEVEN) + LOW_SEVEN) | zero_where_bracket | LOW_SEVEN);
        count + high_bit_where_zero.count_ones() as usize
    })
}

/// The index of the quote closing the string whose contents start at `at`
/// (or the end of `bytes` when it is never closed).
fn string_end(bytes: &[u8], mut at: usize) -> usize {
    while let Some(offset) = memchr::memchr2(b'"', b'\\', &bytes[at.min(bytes.len())..]) {
        let found = at + offset;
        if bytes[found] == b'"' {
            return found;
        }
        at = found + 2; // the backslash and the character it escapes
    }
    bytes.len()
}

/// `text` read as an object, for tests (it panics on anything else).
#[cfg(test)]
pub(crate) fn read_object(text: &str) -> RawObject<'_> {
    match MaybeObject::read(text).unwrap() {
        MaybeObject::Object(object) => object,
        MaybeObject::Other => panic!("{text} is no object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn members_are_the_senders_text_in_the_senders_order() {
        let text = r#"{ "b" : [1, 2.50] , "a":{"x" :"y"}, "c\"q": "\u00e9", "n": null }"#;
        let object = read_object(text);
        assert_eq!(object.get("b"), Some("[1, 2.50]"));
        assert_eq!(object.get("a"), Some(r#"{"x" :"y"}"#));
        assert_eq!(object.get("c\"q"), Some(r#""\u00e9""#), "an escaped key is found by its meaning");
        assert_eq!(object.get("n"), Some("null"));
        assert_eq!(object.get("missing"), None);
        let rewritten = object.to_json_without("a");
        assert_eq!(rewritten, r#"{"b":[1, 2.50],"c\"q":"\u00e9","n":null}"#);
        let meaning: Value = serde_json::from_str(&rewritten).unwrap();
        assert_eq!(meaning, json!({"b": [1, 2.5], "c\"q": "é", "n": null}));
    }

    #[test]
    fn a_repeated_key_reads_as_its_last_value_and_is_left_out_everywhere() {
        let object = read_object(r#"{"k":"first","s":1,"k":"last","s":2}"#);
        assert_eq!(object.get("k"), Some(r#""last""#));
        assert_eq!(object.to_json_without("k"), r#"{"s":1,"s":2}"#);
        assert_eq!(object.to_json_without("s"), r#"{"k":"first","k":"last"}"#);
        assert_eq!(read_object("{}").to_json_without("k"), "{}");
    }

    #[test]
    fn valid_json_that_is_no_object_differs_from_invalid_json() {
        for text in ["[]", "\"text\"", "12", "null", "[{\"a\":1}]"] {
            assert!(matches!(MaybeObject::read(text).unwrap(), MaybeObject::Other), "{text}");
        }
        for text in ["", "{", "{\"a\":}", "{\"a\":1}x", "[1,", "nul", "{\"a\" 1}"] {
            assert!(MaybeObject::read(text).is_err(), "{text:?} is not JSON");
        }
    }

    #[test]
    fn depth_counts_containers_outside_strings_only() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(check_depth(&nested(MAX_DEPTH)));
        assert!(!check_depth(&nested(MAX_DEPTH + 1)));
        let in_strings = format!(r#"{{"a":"{}","b":"\"[{{\\"}}"#, "[".repeat(500));
        assert!(check_depth(&in_strings), "brackets inside strings, after escaped quotes and backslashes");
        let after_escape = format!(r#"["\\",{}{}]"#, "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(!check_depth(&after_escape), "an escaped backslash ends before the closing quote");
    }

    proptest::proptest! {
        #[test]
        fn opening_brackets_are_counted_a_word_at_a_time_as_one_by_one(
            bytes in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(b'['), proptest::strategy::Just(b'{'),
                proptest::strategy::Just(0xdb_u8), proptest::strategy::Just(0xfb_u8),
                proptest::num::u8::ANY,
            ], 0..100)
        ) {
            let one_by_one = bytes.iter().filter(|&&b| b == b'[' || b == b'{').count();
            proptest::prop_assert_eq!(opening_brackets(&bytes), one_by_one);
            let long = bytes.repeat(9);
            for limit in [0, one_by_one, one_by_one * 9, one_by_one * 9 + 1] {
                proptest::prop_assert_eq!(opening_brackets_at_most(&long, limit), one_by_one * 9 <= limit);
            }
        }
    }

    #[test]
    fn the_depth_limit_is_serde_jsons() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(serde_json::from_str::<Value>(&nested(MAX_DEPTH)).is_ok());
        assert!(serde_json::from_str::<Value>(&nested(MAX_DEPTH + 1)).is_err());
    }
}
