//! From request to JSON items: the content type, and the body as one object or an array of
//! them, keeping every field as sent (duplicates and unknown names included) so that
//! [`validate`](super::validate) can say exactly what is wrong with each.
//!
//! Parsing is serde_json's, with its recursion limit: a body nested too deeply is a syntax
//! error, never a deep recursion. No part of the body is skipped unparsed, so every byte of
//! an accepted body is valid JSON and valid UTF-8.

use std::{borrow::Cow, fmt, ops::Deref};

use http::{HeaderMap, header::CONTENT_TYPE};
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Whether the request says its body is JSON: `application/json`, in any case, with or
/// without parameters; a `charset` parameter, if any, must be UTF-8.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|param| match param.split_once('=') {
        Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => {
            let charset = charset.trim().trim_matches('"');
            charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    })
}

/// What kind of JSON value something is, for messages: "a string", "null", ...
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A field's name as sent: borrowed from the body, unless escapes in it had to be undone.
#[derive(Debug, PartialEq)]
pub(crate) struct Name<'de>(Cow<'de, str>);

impl Deref for Name<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl<'de> From<&'de str> for Name<'de> {
    fn from(name: &'de str) -> Self {
        Self(Cow::Borrowed(name))
    }
}

impl From<String> for Name<'_> {
    fn from(name: String) -> Self {
        Self(Cow::Owned(name))
    }
}

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct NameVisitor;

        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name::from(name))
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name::from(name.to_owned()))
            }

            fn visit_string<E: de::Error>(self, name: String) -> Result<Name<'de>, E> {
                Ok(Name::from(name))
            }
        }

        de.deserialize_str(NameVisitor)
    }
}

/// One JSON value where an event is expected.
#[derive(Debug, PartialEq)]
pub(crate) enum Item<'de> {
    /// An object: its fields in the order sent, repeated names included.
    Object(Vec<(Name<'de>, Value)>),
    /// Anything else, by [`kind`].
    Other(&'static str),
}

/// The body of a batch.
#[derive(Debug, PartialEq)]
pub(crate) enum Batch<'de> {
    /// An array of at most the allowed number of items.
    Items(Vec<Item<'de>>),
    /// An array of this many items, more than allowed; they were parsed but not kept.
    TooMany(usize),
    /// Not an array, but this [`kind`] of value.
    NotArray(&'static str),
}

/// Parses the body of a single event.
pub(crate) fn single(body: &[u8]) -> Result<Item<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let item = de.deserialize_any(ItemVisitor)?;
    de.end()?;
    Ok(item)
}

/// Parses the body of a batch, keeping at most `max_len` items.
pub(crate) fn batch(body: &[u8], max_len: usize) -> Result<Batch<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let batch = de.deserialize_any(BatchVisitor { max_len })?;
    de.end()?;
    Ok(batch)
}

/// Reads the rest of a sequence, checking it as JSON, keeping none of it. Returns the number
/// of elements read.
fn drain<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<usize, A::Error> {
    let mut n = 0;
    // `Value`, not `IgnoredAny`: serde_json skips ignored values without its recursion limit
    // and without checking strings are UTF-8.
    while seq.next_element::<Value>()?.is_some() {
        n += 1;
    }
    Ok(n)
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<String, Value>()?.is_some() {}
    Ok(())
}

/// Visitor methods for every value but the one the visitor wants: each maps to a kind.
macro_rules! other_kinds {
    ($other:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other("a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other("a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other("a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($other("a string"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($other("null"))
        }
    };
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item<'de>, A::Error> {
        let mut fields = Vec::new();
        while let Some(field) = map.next_entry::<Name<'de>, Value>()? {
            fields.push(field);
        }
        Ok(Item::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item<'de>, A::Error> {
        drain(seq)?;
        Ok(Item::Other("an array"))
    }

    other_kinds!(Item::Other);
}

impl<'de> DeserializeSeed<'de> for ItemVisitor {
    type Value = Item<'de>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Item<'de>, D::Error> {
        de.deserialize_any(self)
    }
}

struct BatchVisitor {
    max_len: usize,
}

impl<'de> Visitor<'de> for BatchVisitor {
    type Value = Batch<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Batch<'de>, A::Error> {
        let mut items = Vec::new();
        while items.len() < self.max_len {
            match seq.next_element_seed(ItemVisitor)? {
                Some(item) => items.push(item),
                None => return Ok(Batch::Items(items)),
            }
        }
        match drain(seq)? {
            0 => Ok(Batch::Items(items)),
            more => Ok(Batch::TooMany(items.len() + more)),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Batch<'de>, A::Error> {
        drain_map(map)?;
        Ok(Batch::NotArray("an object"))
    }

    other_kinds!(Batch::NotArray);
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::{error::Category, json};

    use super::*;

    fn content_type(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
        }
        is_json(&headers)
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
            "application/json; charset=\"utf-8\"",
            "application/json ; foo=bar",
        ] {
            assert!(content_type(&[ok]), "{ok}");
        }
        assert!(!content_type(&[]));
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/json-seq",
            "application/json; charset=latin1",
            "text/json",
            "",
        ] {
            assert!(!content_type(&[bad]), "{bad}");
        }
        assert!(!content_type(&["application/json", "text/plain"]));
    }

    #[test]
    fn an_object_keeps_every_field_in_order() {
        let item = single(br#"{"event": "search", "accountId": 1, "x": null, "event": 2}"#);
        assert_eq!(
            item.unwrap(),
            Item::Object(vec![
                ("event".into(), json!("search")),
                ("accountId".into(), json!(1)),
                ("x".into(), Value::Null),
                ("event".into(), json!(2)),
            ])
        );
    }

    #[test]
    fn field_names_are_borrowed_unless_escaped() {
        let Item::Object(fields) = single(br#"{"accountId": 1, "\u0065vent": "x"}"#).unwrap()
        else {
            panic!("an object");
        };
        assert!(matches!(fields[0].0, Name(Cow::Borrowed("accountId"))));
        assert!(matches!(&fields[1].0, Name(Cow::Owned(name)) if name == "event"));
    }

    #[test]
    fn other_values_are_named_by_kind() {
        for (body, kind) in [
            (&b"[1, 2]"[..], "an array"),
            (b"\"text\"", "a string"),
            (b"12", "a number"),
            (b"-1.5", "a number"),
            (b"true", "a boolean"),
            (b"null", "null"),
        ] {
            assert_eq!(single(body).unwrap(), Item::Other(kind));
        }
        assert_eq!(
            batch(b"{\"a\": [1]}", 10).unwrap(),
            Batch::NotArray("an object")
        );
        assert_eq!(batch(b"\"[]\"", 10).unwrap(), Batch::NotArray("a string"));
        assert_eq!(
            batch(b"[{}, 1, []]", 10).unwrap(),
            Batch::Items(vec![
                Item::Object(vec![]),
                Item::Other("a number"),
                Item::Other("an array")
            ])
        );
    }

    #[test]
    fn a_batch_over_the_limit_is_counted_not_kept() {
        assert_eq!(batch(b"[]", 2).unwrap(), Batch::Items(vec![]));
        assert!(matches!(batch(b"[{}, {}]", 2).unwrap(), Batch::Items(v) if v.len() == 2));
        assert_eq!(batch(b"[{}, {}, {}, 4]", 2).unwrap(), Batch::TooMany(4));
        // What is not kept is still checked.
        assert!(batch(b"[{}, {}, {}, [}]", 2).is_err());
    }

    fn category(result: Result<impl fmt::Debug, serde_json::Error>) -> Category {
        result.unwrap_err().classify()
    }

    #[test]
    fn not_json_is_a_syntax_error() {
        for body in [
            &b""[..],
            b"{",
            b"{\"accountId\": 1, \"event\": \"search\"",
            b"{\"accountId\": 1,}",
            b"accountId=1&event=search",
            b"{\"accountId\": 1} {}",
            b"{'accountId': 1}",
        ] {
            let c = category(single(body));
            assert!(
                matches!(c, Category::Syntax | Category::Eof),
                "{body:?}: {c:?}"
            );
            let c = category(batch(body, 10));
            assert!(
                matches!(c, Category::Syntax | Category::Eof),
                "{body:?}: {c:?}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_a_syntax_error_wherever_it_is() {
        for body in [
            &b"{\"accountId\": 1, \"event\": \"se\xffarch\"}"[..],
            b"{\"accountId\": 1, \"ev\xc3\x28ent\": \"x\"}",
            b"[1, \"\xff\"]",
            b"\xef\xbb\xbf{}",
        ] {
            assert_eq!(category(single(body)), Category::Syntax, "{body:?}");
        }
        // Inside a value that is not kept, too.
        assert_eq!(category(batch(b"[{}, \"\xff\"]", 1)), Category::Syntax);
        assert_eq!(category(batch(b"{\"a\": \"\xff\"}", 1)), Category::Syntax);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = |open: &str, close: &str| {
            format!("{}{}", open.repeat(10_000), close.repeat(10_000)).into_bytes()
        };
        let arrays = deep("[", "]");
        let objects = deep("{\"a\":", "}");
        let in_field = [&b"{\"accountId\": "[..], &arrays, b", \"event\": \"x\"}"].concat();
        let in_batch = [&b"[{}, "[..], &arrays, b"]"].concat();
        for body in [&arrays, &objects, &in_field, &in_batch] {
            assert_eq!(category(single(body)), Category::Syntax);
            assert_eq!(category(batch(body, 1000)), Category::Syntax);
            // Past the item limit, where items are read but not kept.
            assert_eq!(category(batch(body, 1)), Category::Syntax);
        }
    }
}
