//! Typed reading and writing of CTAP2 integer-keyed maps, shared by every request/response type.
//!
//! Reading: unknown keys are ignored (or collected), known keys are type-checked, and every
//! failure names the field as the spec spells it. Writing: optional members are simply left out,
//! and the final map goes through the canonical encoder, so construction order never matters.

use super::error::Ctap2Error;
use crate::cbor::Value;

/// A view over a CBOR map being decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    map: &'a [(Value, Value)],
}

impl<'a> Fields<'a> {
    /// Requires `v` to be a map; `what` names the message for the error.
    pub(crate) fn new(v: &'a Value, what: &'static str) -> Result<Self, Ctap2Error> {
        v.as_map().map(|map| Fields { map }).ok_or(Ctap2Error::field(what, "not a map"))
    }

    fn raw(&self, key: &Value) -> Option<&'a Value> {
        self.map.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A field under an integer key.
    pub(crate) fn get(&self, key: i64) -> Option<&'a Value> {
        self.raw(&Value::int(key))
    }

    /// A field under a text key.
    pub(crate) fn get_text(&self, key: &str) -> Option<&'a Value> {
        self.map.iter().find(|(k, _)| k.as_text() == Some(key)).map(|(_, v)| v)
    }

    /// Entries whose integer key is not in `known`, kept so they survive a round trip.
    pub(crate) fn unknown_int(&self, known: &[i64]) -> Vec<(Value, Value)> {
        self.map
            .iter()
            .filter(|(k, _)| !k.as_i64().is_some_and(|k| known.contains(&k)))
            .cloned()
            .collect()
    }
}

/// Requires a present value.
pub(crate) fn req<'a>(v: Option<&'a Value>, name: &'static str) -> Result<&'a Value, Ctap2Error> {
    v.ok_or(Ctap2Error::MissingField(name))
}

pub(crate) fn bytes(v: &Value, name: &'static str) -> Result<Vec<u8>, Ctap2Error> {
    v.as_bytes().map(<[u8]>::to_vec).ok_or(Ctap2Error::field(name, "not a byte string"))
}

pub(crate) fn text(v: &Value, name: &'static str) -> Result<String, Ctap2Error> {
    v.as_text().map(str::to_owned).ok_or(Ctap2Error::field(name, "not a text string"))
}

pub(crate) fn uint(v: &Value, name: &'static str) -> Result<u64, Ctap2Error> {
    v.as_u64().ok_or(Ctap2Error::field(name, "not an unsigned integer"))
}

pub(crate) fn int(v: &Value, name: &'static str) -> Result<i64, Ctap2Error> {
    v.as_i64().ok_or(Ctap2Error::field(name, "not an integer"))
}

pub(crate) fn boolean(v: &Value, name: &'static str) -> Result<bool, Ctap2Error> {
    v.as_bool().ok_or(Ctap2Error::field(name, "not a boolean"))
}

pub(crate) fn array<'a>(v: &'a Value, name: &'static str) -> Result<&'a [Value], Ctap2Error> {
    v.as_array().ok_or(Ctap2Error::field(name, "not an array"))
}

pub(crate) fn map(v: &Value, name: &'static str) -> Result<Value, Ctap2Error> {
    v.as_map().map(|_| v.clone()).ok_or(Ctap2Error::field(name, "not a map"))
}

pub(crate) fn fixed<const N: usize>(v: &Value, name: &'static str) -> Result<[u8; N], Ctap2Error> {
    let b = v.as_bytes().ok_or(Ctap2Error::field(name, "not a byte string"))?;
    b.try_into().map_err(|_| Ctap2Error::field(name, "wrong length"))
}

/// Applies `f` to an optional value.
pub(crate) fn opt<'a, T>(
    v: Option<&'a Value>,
    name: &'static str,
    f: impl FnOnce(&'a Value, &'static str) -> Result<T, Ctap2Error>,
) -> Result<Option<T>, Ctap2Error> {
    v.map(|v| f(v, name)).transpose()
}

/// An array of text strings.
pub(crate) fn text_list(v: &Value, name: &'static str) -> Result<Vec<String>, Ctap2Error> {
    array(v, name)?.iter().map(|i| text(i, name)).collect()
}

/// An array of unsigned integers.
pub(crate) fn uint_list(v: &Value, name: &'static str) -> Result<Vec<u64>, Ctap2Error> {
    array(v, name)?.iter().map(|i| uint(i, name)).collect()
}

/// Builds an integer-keyed map, skipping `None` members.
#[derive(Debug, Default)]
pub(crate) struct MapBuilder(Vec<(Value, Value)>);

impl MapBuilder {
    pub(crate) fn new() -> Self {
        Self::default()
    }
    pub(crate) fn put(mut self, key: i64, v: impl Into<Value>) -> Self {
        self.0.push((Value::int(key), v.into()));
        self
    }
    pub(crate) fn put_opt(self, key: i64, v: Option<impl Into<Value>>) -> Self {
        match v {
            Some(v) => self.put(key, v),
            None => self,
        }
    }
    pub(crate) fn put_text(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.0.push((Value::text(key), v.into()));
        self
    }
    pub(crate) fn put_text_opt(self, key: &str, v: Option<impl Into<Value>>) -> Self {
        match v {
            Some(v) => self.put_text(key, v),
            None => self,
        }
    }
    pub(crate) fn extend(mut self, extra: &[(Value, Value)]) -> Self {
        for (k, v) in extra {
            if !self.0.iter().any(|(ek, _)| ek == k) {
                self.0.push((k.clone(), v.clone()));
            }
        }
        self
    }
    pub(crate) fn build(self) -> Value {
        Value::Map(self.0)
    }
}

/// Text strings as a CBOR array.
pub(crate) fn texts(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::text(s.clone())).collect())
}
