//! The one CBOR codec of the project: a small value model that always **writes CTAP2 canonical
//! CBOR** and reads peer input defensively.
//!
//! Canonical form (CTAP 2.x §8 "Message encoding"): shortest-form integers and lengths, definite
//! lengths only, map keys sorted by major type, then by encoded length, then bytewise, and no
//! duplicate keys. Google Play Services rejects maps in any other order ("Keys in CBOR Map not in
//! strictly ascending natural order"), so the encoder sorts on every encode — construction order
//! never matters.
//!
//! Decoding accepts what real peers send (non-canonical order is tolerated unless
//! [`DecodeOptions::canonical`] is set) but rejects what is ambiguous or hostile: indefinite
//! lengths, duplicate map keys, nesting deeper than [`MAX_DEPTH`], lengths larger than the input,
//! tags and floats (CTAP2 uses neither), and trailing bytes after the single top-level item.
//!
//! ## Cost bounds on hostile input
//!
//! A peer controls every byte of a tunnel frame (up to 1 MiB) or a HID message, so decoding is
//! kept near-linear in the input size:
//!
//! * **Entry caps.** A map may hold at most [`MAX_MAP_ENTRIES`] (1024) entries and an array at
//!   most [`MAX_ARRAY_ITEMS`] (8192) items; more is [`CborError::TooManyEntries`]. CTAP 2.2's
//!   largest map is the getInfo response (about 30 keys) and its largest arrays are
//!   `allowList`/`excludeList`, bounded by the authenticator's `maxCredentialCountInList`
//!   (typically 8–64; platforms send a few hundred at most). The caps leave more than 10×
//!   headroom over any real message while keeping one container's work small.
//! * **Duplicate keys in O(n log n).** Canonical order (strictly ascending encoded keys, each
//!   itself canonically encoded) proves keys distinct with one comparison per key. Only a map
//!   that breaks that order falls back to sorting its keys' canonical encodings and comparing
//!   neighbours — never a scan of all earlier keys per key (that was O(n²): a 1 MiB frame of
//!   ~250k tiny keys cost minutes).
//! * **Declared counts are not trusted for allocation.** A head may claim 2³² items; a container
//!   pre-allocates at most what the remaining input could actually hold (one byte per array item,
//!   two per map entry), and never more than its cap.
//!
//! `cargo bench -p cablebridge-protocol --bench cbor` prints the worst-case decode time of a
//! 1 MiB input and its ratio to a plain linear pass over the same bytes.
//!
//! Why not a crate: see ARCHITECTURE.md ("Hand-written on purpose").

use crate::error::{Classify, Fault, Stage};
use core::cmp::Ordering;
use core::fmt;

/// Maximum nesting depth accepted on decode (CTAP2 messages nest at most ~5 deep).
pub const MAX_DEPTH: usize = 16;

/// Maximum entries in one decoded map (see the module docs for why this is generous for CTAP).
pub const MAX_MAP_ENTRIES: usize = 1024;

/// Maximum items in one decoded array (see the module docs for why this is generous for CTAP).
pub const MAX_ARRAY_ITEMS: usize = 8192;

/// A CBOR data item in the subset CTAP2 uses.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// Major type 0.
    Unsigned(u64),
    /// Major type 1: the value is `-1 - n`.
    Negative(u64),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// Major type 3.
    Text(String),
    /// Major type 4.
    Array(Vec<Value>),
    /// Major type 5, in the order written by the constructor or read from the wire. The encoder
    /// sorts canonically; lookups are linear (maps here have < 20 entries).
    Map(Vec<(Value, Value)>),
    /// Simple values 20/21.
    Bool(bool),
    /// Simple value 22.
    Null,
}

/// Errors from decoding (and the typed accessors built on top of it).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CborError {
    /// Input ended inside an item.
    Truncated,
    /// Bytes left over after the top-level item.
    TrailingBytes(usize),
    /// Indefinite-length item (not allowed in CTAP2).
    Indefinite,
    /// A tag, float or unknown simple value.
    Unsupported(&'static str),
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// The same key twice in one map.
    DuplicateKey,
    /// A map or array declared more entries than [`MAX_MAP_ENTRIES`]/[`MAX_ARRAY_ITEMS`].
    TooManyEntries {
        /// `"map"` or `"array"`.
        container: &'static str,
        /// The cap that was exceeded.
        limit: usize,
    },
    /// Text that is not UTF-8.
    InvalidUtf8,
    /// Non-canonical encoding while canonical decoding was requested.
    NotCanonical(&'static str),
    /// A field had the wrong type or was missing (used by typed parsers over [`Value`]).
    Field { field: &'static str, problem: &'static str },
}

impl fmt::Display for CborError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CborError::Truncated => write!(f, "CBOR input ends inside an item"),
            CborError::TrailingBytes(n) => write!(f, "{n} trailing bytes after the CBOR item"),
            CborError::Indefinite => write!(f, "indefinite-length CBOR is not allowed"),
            CborError::Unsupported(w) => write!(f, "unsupported CBOR item: {w}"),
            CborError::TooDeep => write!(f, "CBOR nested deeper than {MAX_DEPTH}"),
            CborError::DuplicateKey => write!(f, "duplicate key in CBOR map"),
            CborError::TooManyEntries { container, limit } => {
                write!(f, "CBOR {container} has more than {limit} entries")
            }
            CborError::InvalidUtf8 => write!(f, "CBOR text string is not UTF-8"),
            CborError::NotCanonical(w) => write!(f, "CBOR is not canonical: {w}"),
            CborError::Field { field, problem } => write!(f, "field {field}: {problem}"),
        }
    }
}

impl std::error::Error for CborError {}

impl Classify for CborError {
    fn fault(&self) -> Fault {
        Fault::Peer
    }
    fn stage(&self) -> Stage {
        Stage::Cbor
    }
}

/// Decoding options.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeOptions {
    /// Reject non-shortest integers/lengths and unsorted map keys.
    pub canonical: bool,
}

impl Value {
    /// An integer key or value, choosing major type 0 or 1.
    pub fn int(v: i64) -> Value {
        if v >= 0 {
            Value::Unsigned(v as u64)
        } else {
            // -1 - n = v  =>  n = -1 - v, which fits u64 for every i64.
            Value::Negative((-1 - v) as u64)
        }
    }
    /// A text value.
    pub fn text(s: impl Into<String>) -> Value {
        Value::Text(s.into())
    }
    /// A byte-string value.
    pub fn bytes(b: impl Into<Vec<u8>>) -> Value {
        Value::Bytes(b.into())
    }
    /// A map with integer keys (the common CTAP2 shape).
    pub fn int_map(entries: impl IntoIterator<Item = (i64, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(k, v)| (Value::int(k), v)).collect())
    }
    /// A map with text keys.
    pub fn text_map<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(k, v)| (Value::text(k), v)).collect())
    }

    /// Encodes canonically into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    /// Encodes canonically, appending to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Unsigned(n) => write_head(out, 0, *n),
            Value::Negative(n) => write_head(out, 1, *n),
            Value::Bytes(b) => {
                write_head(out, 2, b.len() as u64);
                out.extend_from_slice(b);
            }
            Value::Text(s) => {
                write_head(out, 3, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Array(items) => {
                write_head(out, 4, items.len() as u64);
                for i in items {
                    i.encode_into(out);
                }
            }
            Value::Map(entries) => {
                // Encode each key once, sort by the CTAP2 rule, then write.
                let mut keyed: Vec<(Vec<u8>, &Value)> =
                    entries.iter().map(|(k, v)| (k.to_vec(), v)).collect();
                keyed.sort_by(|a, b| canonical_key_order(&a.0, &b.0));
                keyed.dedup_by(|a, b| a.0 == b.0);
                write_head(out, 5, keyed.len() as u64);
                for (k, v) in keyed {
                    out.extend_from_slice(&k);
                    v.encode_into(out);
                }
            }
            Value::Bool(false) => out.push(0xf4),
            Value::Bool(true) => out.push(0xf5),
            Value::Null => out.push(0xf6),
        }
    }

    /// Decodes exactly one item, tolerating non-canonical order.
    pub fn decode(input: &[u8]) -> Result<Value, CborError> {
        Self::decode_with(input, DecodeOptions::default())
    }

    /// Decodes exactly one item with options.
    pub fn decode_with(input: &[u8], opts: DecodeOptions) -> Result<Value, CborError> {
        let (v, used) = Self::decode_prefix_with(input, opts)?;
        if used != input.len() {
            return Err(CborError::TrailingBytes(input.len() - used));
        }
        Ok(v)
    }

    /// Decodes one item from the start of `input`, returning it and the bytes consumed.
    pub fn decode_prefix(input: &[u8]) -> Result<(Value, usize), CborError> {
        Self::decode_prefix_with(input, DecodeOptions::default())
    }

    /// [`Value::decode_prefix`] with options.
    pub fn decode_prefix_with(
        input: &[u8],
        opts: DecodeOptions,
    ) -> Result<(Value, usize), CborError> {
        let mut r = Reader { input, pos: 0, opts, non_canonical: 0 };
        let v = r.item(0)?;
        Ok((v, r.pos))
    }

    // ----- accessors -----

    /// Looks up an integer key in a map.
    pub fn get(&self, key: i64) -> Option<&Value> {
        let want = Value::int(key);
        self.as_map()?.iter().find(|(k, _)| *k == want).map(|(_, v)| v)
    }
    /// Looks up a text key in a map.
    pub fn get_text(&self, key: &str) -> Option<&Value> {
        self.as_map()?.iter().find(|(k, _)| matches!(k, Value::Text(t) if t == key)).map(|(_, v)| v)
    }
    /// The entries if this is a map.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    /// The items if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    /// The bytes if this is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
    /// The text if this is a text string.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
    /// The boolean if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// The value as u64 if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Unsigned(n) => Some(*n),
            _ => None,
        }
    }
    /// The value as i64 if it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Unsigned(n) => i64::try_from(*n).ok(),
            Value::Negative(n) => i64::try_from(*n).ok().map(|n| -1 - n),
            _ => None,
        }
    }
}

/// Typed field extraction for parsers over [`Value`]: each returns a [`CborError::Field`] naming
/// the field, so a malformed peer message says exactly what was wrong.
pub mod field {
    use super::{CborError, Value};

    fn err(field: &'static str, problem: &'static str) -> CborError {
        CborError::Field { field, problem }
    }
    /// Required byte string.
    pub fn bytes<'a>(v: Option<&'a Value>, name: &'static str) -> Result<&'a [u8], CborError> {
        v.ok_or(err(name, "missing"))?.as_bytes().ok_or(err(name, "not a byte string"))
    }
    /// Required text string.
    pub fn text<'a>(v: Option<&'a Value>, name: &'static str) -> Result<&'a str, CborError> {
        v.ok_or(err(name, "missing"))?.as_text().ok_or(err(name, "not a text string"))
    }
    /// Required unsigned integer.
    pub fn uint(v: Option<&Value>, name: &'static str) -> Result<u64, CborError> {
        v.ok_or(err(name, "missing"))?.as_u64().ok_or(err(name, "not an unsigned integer"))
    }
    /// Required integer.
    pub fn int(v: Option<&Value>, name: &'static str) -> Result<i64, CborError> {
        v.ok_or(err(name, "missing"))?.as_i64().ok_or(err(name, "not an integer"))
    }
    /// Required boolean.
    pub fn boolean(v: Option<&Value>, name: &'static str) -> Result<bool, CborError> {
        v.ok_or(err(name, "missing"))?.as_bool().ok_or(err(name, "not a boolean"))
    }
    /// Required map.
    pub fn map<'a>(v: Option<&'a Value>, name: &'static str) -> Result<&'a Value, CborError> {
        let v = v.ok_or(err(name, "missing"))?;
        v.as_map().map(|_| v).ok_or(err(name, "not a map"))
    }
    /// Required array.
    pub fn array<'a>(v: Option<&'a Value>, name: &'static str) -> Result<&'a [Value], CborError> {
        v.ok_or(err(name, "missing"))?.as_array().ok_or(err(name, "not an array"))
    }
    /// Byte string of an exact length.
    pub fn fixed<'a, const N: usize>(
        v: Option<&'a Value>,
        name: &'static str,
    ) -> Result<&'a [u8; N], CborError> {
        bytes(v, name)?.try_into().map_err(|_| err(name, "wrong length"))
    }
}

/// CTAP2 canonical key order over encoded keys: major type, then length, then bytes.
pub fn canonical_key_order(a: &[u8], b: &[u8]) -> Ordering {
    let ma = a.first().map(|x| x >> 5);
    let mb = b.first().map(|x| x >> 5);
    ma.cmp(&mb).then(a.len().cmp(&b.len())).then_with(|| a.cmp(b))
}

fn write_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= u8::MAX as u64 {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= u16::MAX as u64 {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u32::MAX as u64 {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    opts: DecodeOptions,
    /// How many non-canonical encodings (non-shortest heads, unsorted maps) lenient decoding has
    /// tolerated so far. A map key is canonically encoded iff this did not move while reading it.
    non_canonical: u64,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        let end = self.pos.checked_add(n).ok_or(CborError::Truncated)?;
        let s = self.input.get(self.pos..end).ok_or(CborError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, CborError> {
        Ok(self.take(1)?[0])
    }

    /// Reads the argument of a head whose initial byte had additional info `ai`.
    fn arg(&mut self, ai: u8) -> Result<u64, CborError> {
        let (n, min) = match ai {
            0..=23 => return Ok(ai as u64),
            24 => (self.byte()? as u64, 24),
            25 => {
                let b = self.take(2)?;
                (u16::from_be_bytes([b[0], b[1]]) as u64, 0x100)
            }
            26 => {
                let b = self.take(4)?;
                (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64, 0x1_0000)
            }
            27 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (u64::from_be_bytes(a), 0x1_0000_0000)
            }
            31 => return Err(CborError::Indefinite),
            _ => return Err(CborError::Unsupported("reserved additional information")),
        };
        if n < min {
            if self.opts.canonical {
                return Err(CborError::NotCanonical("integer or length not in shortest form"));
            }
            self.non_canonical += 1;
        }
        Ok(n)
    }

    /// A length that must fit in the remaining input (each element takes at least one byte), so
    /// a hostile length can never make us allocate more than the input size.
    fn len(&mut self, ai: u8) -> Result<usize, CborError> {
        let n = self.arg(ai)?;
        let remaining = (self.input.len() - self.pos) as u64;
        if n > remaining {
            return Err(CborError::Truncated);
        }
        Ok(n as usize)
    }

    /// A container's entry count: within `limit` (checked first, so the error names the cap)
    /// and within the input (see [`Reader::len`]).
    fn count(&mut self, ai: u8, container: &'static str, limit: usize) -> Result<usize, CborError> {
        let n = self.arg(ai)?;
        if n > limit as u64 {
            return Err(CborError::TooManyEntries { container, limit });
        }
        if n > (self.input.len() - self.pos) as u64 {
            return Err(CborError::Truncated);
        }
        Ok(n as usize)
    }

    /// Capacity to reserve for `n` declared entries of at least `min_bytes` each: never more than
    /// the rest of the input could hold, so a lying head cannot make us over-allocate.
    fn capacity(&self, n: usize, min_bytes: usize) -> usize {
        n.min((self.input.len() - self.pos) / min_bytes)
    }

    fn map(&mut self, ai: u8, depth: usize) -> Result<Value, CborError> {
        let n = self.count(ai, "map", MAX_MAP_ENTRIES)?;
        let mut entries: Vec<(Value, Value)> = Vec::with_capacity(self.capacity(n, 2));
        // Encoded span of each key, and whether that encoding was canonical.
        let mut keys: Vec<(usize, usize, bool)> = Vec::with_capacity(entries.capacity());
        let mut ascending = true;
        for _ in 0..n {
            let (start, before) = (self.pos, self.non_canonical);
            let k = self.item(depth + 1)?;
            let key_canonical = self.non_canonical == before;
            if let Some(&(ps, pe, _)) = keys.last() {
                match canonical_key_order(&self.input[ps..pe], &self.input[start..self.pos]) {
                    Ordering::Equal => return Err(CborError::DuplicateKey),
                    Ordering::Greater if self.opts.canonical => {
                        return Err(CborError::NotCanonical("map keys out of order"))
                    }
                    Ordering::Greater => ascending = false,
                    Ordering::Less => {}
                }
            }
            keys.push((start, self.pos, key_canonical));
            let v = self.item(depth + 1)?;
            entries.push((k, v));
        }
        // Strictly ascending canonical encodings are distinct, and so are the keys. Anything else
        // (only reachable in lenient mode) is checked by sorting.
        if !(ascending && keys.iter().all(|k| k.2)) {
            self.non_canonical += 1;
            check_distinct(self.input, &keys, &entries)?;
        }
        Ok(Value::Map(entries))
    }

    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        let ib = self.byte()?;
        let (major, ai) = (ib >> 5, ib & 0x1f);
        match major {
            0 => Ok(Value::Unsigned(self.arg(ai)?)),
            1 => Ok(Value::Negative(self.arg(ai)?)),
            2 => {
                let n = self.len(ai)?;
                Ok(Value::Bytes(self.take(n)?.to_vec()))
            }
            3 => {
                let n = self.len(ai)?;
                let s = self.take(n)?;
                let s = core::str::from_utf8(s).map_err(|_| CborError::InvalidUtf8)?;
                Ok(Value::Text(s.to_owned()))
            }
            4 => {
                let n = self.count(ai, "array", MAX_ARRAY_ITEMS)?;
                let mut items = Vec::with_capacity(self.capacity(n, 1));
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            5 => self.map(ai, depth),
            6 => Err(CborError::Unsupported("tag")),
            _ => match ai {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                25..=27 => Err(CborError::Unsupported("float")),
                31 => Err(CborError::Indefinite),
                _ => Err(CborError::Unsupported("simple value")),
            },
        }
    }
}

/// Duplicate check for a map whose keys were not in canonical order: sort the keys' canonical
/// encodings (the raw span when it already was canonical, a re-encoding otherwise, so `0x01` and
/// `0x18 0x01` collide as the same key) and compare neighbours. O(n log n) comparisons.
fn check_distinct(
    input: &[u8],
    keys: &[(usize, usize, bool)],
    entries: &[(Value, Value)],
) -> Result<(), CborError> {
    let mut encoded: Vec<std::borrow::Cow<'_, [u8]>> = keys
        .iter()
        .zip(entries)
        .map(|(&(start, end, canonical), (k, _))| match canonical {
            true => std::borrow::Cow::Borrowed(&input[start..end]),
            false => std::borrow::Cow::Owned(k.to_vec()),
        })
        .collect();
    encoded.sort_unstable_by(|a, b| canonical_key_order(a, b));
    if encoded.windows(2).any(|w| w[0] == w[1]) {
        return Err(CborError::DuplicateKey);
    }
    Ok(())
}

impl fmt::Debug for Value {
    /// Diagnostic notation (RFC 8949 §8), with byte strings as `h'..'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Unsigned(n) => write!(f, "{n}"),
            Value::Negative(n) => write!(f, "-{}", *n as u128 + 1),
            Value::Bytes(b) => write!(f, "h'{}'", hex::encode(b)),
            Value::Text(t) => write!(f, "{t:?}"),
            Value::Array(a) => f.debug_list().entries(a).finish(),
            Value::Map(m) => f.debug_map().entries(m.iter().map(|(k, v)| (k, v))).finish(),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Null => write!(f, "null"),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::text(s)
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::int(n)
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Unsigned(n)
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}
impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Value::Bytes(b.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn ctap2_key_order_sorts_major_type_then_length() {
        // COSE key: 1, 3, -1, -2, -3 in canonical order regardless of construction order.
        let v = Value::int_map([
            (-3, Value::bytes([0u8; 1])),
            (-2, Value::bytes([0u8; 1])),
            (-1, Value::int(1)),
            (3, Value::int(-7)),
            (1, Value::int(2)),
        ]);
        assert_eq!(hex::encode(v.to_vec()), "a5010203262001214100224100");
        // "alg" before "type" (pubKeyCredParams pitfall) and 24 (2 bytes) before -1.
        let t = Value::text_map([("type", Value::text("public-key")), ("alg", Value::int(-7))]);
        assert_eq!(&t.to_vec()[1..5], &h("63616c67")[..]);
        let m = Value::Map(vec![(Value::int(-1), Value::Null), (Value::int(24), Value::Null)]);
        assert_eq!(m.to_vec(), h("a21818f620f6"));
    }

    #[test]
    fn qr_vector_round_trips_byte_exactly() {
        let cbor = h("a600582103dd39afaf50b1b5b05ac1dad0b2848a00c0f6ec4e65a25687ca4f3c71dae50bea0150871bcec9c1227f91ccb86c9ffacd9eac0202031a6356217b04f505626d63");
        let v = Value::decode_with(&cbor, DecodeOptions { canonical: true }).unwrap();
        assert_eq!(v.to_vec(), cbor);
        assert_eq!(v.get(5).and_then(Value::as_text), Some("mc"));
    }

    #[test]
    fn rejects_hostile_input() {
        assert_eq!(Value::decode(&h("5f")), Err(CborError::Indefinite));
        assert_eq!(
            Value::decode(&h("5a ffffffff".replace(' ', "").as_str())),
            Err(CborError::Truncated)
        );
        assert_eq!(
            Value::decode(&h("9bffffffffffffffff")),
            Err(CborError::TooManyEntries { container: "array", limit: MAX_ARRAY_ITEMS })
        );
        assert_eq!(Value::decode(&h("980a01")), Err(CborError::Truncated));
        assert_eq!(
            Value::decode(&h("a20101 0102".replace(' ', "").as_str())),
            Err(CborError::DuplicateKey)
        );
        assert_eq!(Value::decode(&h("0101")), Err(CborError::TrailingBytes(1)));
        assert_eq!(Value::decode(&h("c0")), Err(CborError::Unsupported("tag")));
        assert_eq!(Value::decode(&h("f93c00")), Err(CborError::Unsupported("float")));
        let deep = vec![0x81u8; MAX_DEPTH + 2];
        assert!(matches!(Value::decode(&deep), Err(CborError::TooDeep | CborError::Truncated)));
        let strict = DecodeOptions { canonical: true };
        assert!(matches!(Value::decode_with(&h("1801"), strict), Err(CborError::NotCanonical(_))));
        assert!(matches!(
            Value::decode_with(&h("a2030001 00".replace(' ', "").as_str()), strict),
            Err(CborError::NotCanonical(_))
        ));
        // Lenient mode accepts unsorted maps but not duplicates.
        assert!(Value::decode(&h("a203000100")).is_ok());
    }

    #[test]
    fn integer_extremes() {
        for n in
            [0i64, 23, 24, 255, 256, 65535, 65536, i64::MAX, -1, -24, -25, -256, -257, i64::MIN]
        {
            let v = Value::int(n);
            let back = Value::decode_with(&v.to_vec(), DecodeOptions { canonical: true }).unwrap();
            assert_eq!(back.as_i64(), Some(n));
        }
        assert_eq!(Value::Negative(u64::MAX).as_i64(), None);
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<u64>().prop_map(Value::Unsigned),
            any::<u64>().prop_map(Value::Negative),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            ".{0,20}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::vec((inner.clone(), inner), 0..8).prop_map(|kv| {
                    // Drop duplicate keys: a map with duplicates has no canonical form.
                    let mut seen: Vec<Vec<u8>> = Vec::new();
                    Value::Map(
                        kv.into_iter()
                            .filter(|(k, _)| {
                                let e = k.to_vec();
                                let fresh = !seen.contains(&e);
                                seen.push(e);
                                fresh
                            })
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases!(256)))]

        #[test]
        fn canonical_round_trip(v in arb_value()) {
            let enc = v.to_vec();
            let back = Value::decode_with(&enc, DecodeOptions { canonical: true }).unwrap();
            // Re-encoding the decoded value is byte-identical (canonical is a fixed point).
            prop_assert_eq!(back.to_vec(), enc);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Value::decode(&bytes);
            let _ = Value::decode_with(&bytes, DecodeOptions { canonical: true });
        }
    }
}
