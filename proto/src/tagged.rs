//! Deserializing internally tagged enums (`{"kind": "trace", ...}`) so that
//! errors inside them keep their path.
//!
//! serde's derived internally tagged enums buffer the whole object before
//! they look at the tag, then deserialize the variant from that buffer. An
//! error inside the variant then happens outside the deserializer that
//! `serde_path_to_error` wraps, and `hops[2].probes[0].reply.rtt_us` would be
//! reported as the document root. So when the tag is the object's first key,
//! as in everything serde writes, we read it and hand the rest of the *same*
//! map to the variant: no buffer, full path. When it is not (a document
//! that went through `serde_json::Value`, which sorts keys, or another tool),
//! we buffer the object, and hand the path inside it to `decode` through
//! [`PathCapture`] so that the reported path is still complete.
//!
//! Serialization stays derived; the round-trip tests check that the two
//! directions agree.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeOwned, MapAccess};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An enum serialized as an object whose field `TAG` names the variant.
pub(crate) trait Tagged: Sized {
    /// The field that names the variant, e.g. `"kind"`.
    const TAG: &'static str;
    /// What the object is, for "invalid type" messages.
    const EXPECTING: &'static str;
    /// The tag's value, one unit variant per variant of `Self`.
    type Tag: DeserializeOwned;
    /// Deserializes the variant that `tag` names from the object's other fields.
    fn variant<'de, D: Deserializer<'de>>(tag: Self::Tag, fields: D) -> Result<Self, D::Error>;
}

/// Use as the body of `Deserialize::deserialize` for a [`Tagged`] type.
pub(crate) fn deserialize<'de, T: Tagged, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_map(TaggedVisitor(PhantomData))
}

struct TaggedVisitor<T>(PhantomData<T>);

impl<'de, T: Tagged> de::Visitor<'de> for TaggedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Err(de::Error::missing_field(T::TAG));
        };
        if first == T::TAG {
            let tag = map.next_value::<T::Tag>()?;
            return T::variant(tag, MapAccessDeserializer::new(map));
        }

        // Slow path: the tag comes later, so buffer the object.
        let mut object = serde_json::Map::new();
        object.insert(first, map.next_value()?);
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            let value = map.next_value::<Value>()?;
            object.insert(key, value);
        }
        let tag = object
            .remove(T::TAG)
            .ok_or_else(|| de::Error::missing_field(T::TAG))?;
        let tag = T::Tag::deserialize(tag).map_err(|e| nested_error(T::TAG, e))?;

        let mut track = serde_path_to_error::Track::new();
        let fields = serde_path_to_error::Deserializer::new(Value::Object(object), &mut track);
        T::variant(tag, fields).map_err(|e| {
            let path = track.path().to_string();
            // serde_path_to_error shows the root as ".".
            nested_error(if path == "." { "" } else { &path }, e)
        })
    }
}

thread_local! {
    /// While [`PathCapture`] is active: the path, inside a buffered object,
    /// of the error being returned. Each buffering level prepends its own
    /// part on the way out, and `decode` prepends the path its
    /// serde_path_to_error saw down to the buffered object.
    static INNER_PATH: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Collects the path inside buffered tagged objects for one decode. Without
/// one, that path goes into the error message instead.
pub(crate) struct PathCapture(());

impl PathCapture {
    pub(crate) fn start() -> Self {
        INNER_PATH.set(Some(String::new()));
        Self(())
    }

    /// The path to append to the one serde_path_to_error reports; empty
    /// when the error did not come from inside a buffered object.
    pub(crate) fn finish(self) -> String {
        let path = INNER_PATH.take().unwrap_or_default();
        drop(self);
        path
    }
}

impl Drop for PathCapture {
    fn drop(&mut self) {
        INNER_PATH.set(None);
    }
}

/// The error `error` at `path` inside a buffered object.
fn nested_error<E: de::Error>(path: &str, error: impl fmt::Display) -> E {
    let captured = INNER_PATH
        .with_borrow_mut(|inner| inner.as_mut().map(|inner| *inner = join_path(path, inner)));
    if captured.is_some() || path.is_empty() {
        E::custom(error)
    } else {
        E::custom(format_args!("{path}: {error}"))
    }
}

/// `hops[2]` + `ttl` = `hops[2].ttl`; `hops` + `[2]` = `hops[2]`.
pub(crate) fn join_path(outer: &str, inner: &str) -> String {
    if outer.is_empty() {
        inner.to_owned()
    } else if inner.is_empty() || inner.starts_with('[') {
        format!("{outer}{inner}")
    } else {
        format!("{outer}.{inner}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_like_serde_path_to_error_prints_them() {
        assert_eq!(join_path("", "hops[2].ttl"), "hops[2].ttl");
        assert_eq!(join_path("results[0]", ""), "results[0]");
        assert_eq!(
            join_path("results[0]", "hops[2].ttl"),
            "results[0].hops[2].ttl"
        );
        assert_eq!(join_path("results", "[0].kind"), "results[0].kind");
    }

    #[test]
    fn capture_ends_with_its_guard() {
        let capture = PathCapture::start();
        let _: serde_json::Error = nested_error("ttl", "bad");
        let _: serde_json::Error = nested_error("hops[1]", "bad");
        assert_eq!(capture.finish(), "hops[1].ttl");
        // Without a capture the path goes into the message.
        let e: serde_json::Error = nested_error("ttl", "bad");
        assert_eq!(e.to_string(), "ttl: bad");
        assert_eq!(INNER_PATH.take(), None);
    }
}
