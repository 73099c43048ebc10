//! A minimal DER TLV walker for the certificate extensions the formats read (Android's
//! KeyDescription, Apple's nonce, TPM's subjectAltName). The `der` crate's tags stop at
//! number 30; Android's authorization lists use context tags up to 7xx (`[600]`, `[702]`), so
//! this reads the high-tag-number form itself. Definite lengths only (DER).

/// One element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// 0 universal, 1 application, 2 context-specific, 3 private.
    pub class: u8,
    /// Constructed (SEQUENCE, SET, EXPLICIT tags).
    pub constructed: bool,
    /// The tag number.
    pub number: u32,
    /// The contents.
    pub value: &'a [u8],
}

/// Universal tags we use.
pub const INTEGER: u32 = 2;
pub const OCTET_STRING: u32 = 4;
pub const SEQUENCE: u32 = 16;
pub const SET: u32 = 17;

/// Reads one element from the front of `input`; returns it and what follows.
pub fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), &'static str> {
    let (&first, mut rest) = input.split_first().ok_or("truncated tag")?;
    let class = first >> 6;
    let constructed = first & 0x20 != 0;
    let mut number = u32::from(first & 0x1f);
    if number == 0x1f {
        number = 0;
        loop {
            let (&b, r) = rest.split_first().ok_or("truncated tag number")?;
            rest = r;
            number = number.checked_mul(128).ok_or("tag number too large")? | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let (&l, r) = rest.split_first().ok_or("truncated length")?;
    rest = r;
    let len = if l < 0x80 {
        usize::from(l)
    } else {
        let n = usize::from(l & 0x7f);
        if n == 0 || n > 4 {
            return Err("unsupported length form");
        }
        let bytes = rest.get(..n).ok_or("truncated length")?;
        rest = &rest[n..];
        bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let value = rest.get(..len).ok_or("truncated value")?;
    Ok((Tlv { class, constructed, number, value }, &rest[len..]))
}

/// Reads exactly one element of universal tag `number` spanning all of `input`.
pub fn read_only(input: &[u8], number: u32) -> Result<Tlv<'_>, &'static str> {
    let (tlv, rest) = read(input)?;
    if !rest.is_empty() {
        return Err("trailing bytes");
    }
    if tlv.class != 0 || tlv.number != number {
        return Err("unexpected tag");
    }
    Ok(tlv)
}

/// The elements inside a constructed value.
pub fn children(mut value: &[u8]) -> Result<Vec<Tlv<'_>>, &'static str> {
    let mut out = Vec::new();
    while !value.is_empty() {
        let (tlv, rest) = read(value)?;
        out.push(tlv);
        value = rest;
    }
    Ok(out)
}

/// A small INTEGER or ENUMERATED (at most 8 content bytes), two's complement.
pub fn small_int(tlv: &Tlv<'_>) -> Result<i64, &'static str> {
    let v = tlv.value;
    if v.is_empty() || v.len() > 8 {
        return Err("integer out of range");
    }
    let negative = v[0] & 0x80 != 0;
    let start: i64 = if negative { -1 } else { 0 };
    Ok(v.iter().fold(start, |acc, b| (acc << 8) | i64::from(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_high_tag_numbers_and_long_lengths() {
        // [702] EXPLICIT INTEGER 0 (Android's origin), then a 130-byte OCTET STRING.
        let mut input = vec![0xbf, 0x85, 0x3e, 0x03, 0x02, 0x01, 0x00, 0x04, 0x81, 0x82];
        input.extend_from_slice(&[7; 130]);
        let (tlv, rest) = read(&input).unwrap();
        assert_eq!((tlv.class, tlv.constructed, tlv.number), (2, true, 702));
        let inner = read_only(tlv.value, INTEGER).unwrap();
        assert_eq!(small_int(&inner), Ok(0));
        let os = read_only(rest, OCTET_STRING).unwrap();
        assert_eq!(os.value.len(), 130);
        assert!(read(&[0x04, 0x05, 1]).is_err());
        assert!(read(&[0x04, 0x80]).is_err());
        assert_eq!(
            small_int(&Tlv { class: 0, constructed: false, number: 2, value: &[0xff] }),
            Ok(-1)
        );
    }
}
