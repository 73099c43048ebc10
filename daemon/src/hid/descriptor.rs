//! A small HID report descriptor parser: enough to find the FIDO collection and its report sizes.
//!
//! Implements the item encoding of the USB HID spec 1.11 §6.2.2 (short items; long items, prefix
//! 0xFE, are skipped) and the parts of the parser state that decide report layout: the global
//! items Usage Page, Report Size, Report ID, Report Count, Push and Pop, the local item Usage
//! (including 4-byte extended usages, §6.2.2.8), and the main items Input, Output, Feature,
//! Collection and End Collection. It is not a general HID parser: logical/physical ranges,
//! units and usage ranges are ignored because CTAPHID reports are opaque byte arrays.
//!
//! FIDO devices are recognised as in the CTAP 2.1 spec §11.2.8.1 (HID report descriptor): a
//! top-level application collection with usage page 0xF1D0 and usage 0x01 (CTAPHID device).
//! Unlike libfido2's check (the last Usage Page item anywhere in the descriptor) this looks at
//! the collection, so a composite device with a FIDO interface and another collection is
//! classified by the right one.

use std::collections::BTreeMap;

/// The FIDO Alliance usage page.
pub const FIDO_USAGE_PAGE: u16 = 0xF1D0;
/// Usage "CTAPHID authenticator device" (FIDO U2F HID spec: "U2F Authenticator Device").
pub const FIDO_USAGE_CTAPHID: u16 = 0x01;

/// Report sizes of one report ID inside a top-level collection, in bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportBits {
    /// Sum of `Report Size × Report Count` over Input items.
    pub input: u32,
    /// Same for Output items.
    pub output: u32,
    /// Same for Feature items.
    pub feature: u32,
}

/// One top-level (application) collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopCollection {
    /// Usage page in force at the Collection item.
    pub usage_page: u16,
    /// Usage of the collection.
    pub usage: u16,
    /// Report sizes per report ID (`None`: the device uses no report IDs).
    pub reports: BTreeMap<Option<u8>, ReportBits>,
}

/// What a FIDO interface's reports look like on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FidoReportLayout {
    /// Report ID to prefix writes with and strip from reads; `None` when the device has none
    /// (hidraw then expects a 0x00 byte in front of each write).
    pub report_id: Option<u8>,
    /// Input report length in bytes (device → host), without any report ID.
    pub input_len: usize,
    /// Output report length in bytes (host → device), without any report ID.
    pub output_len: usize,
}

/// Why a descriptor could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorError(pub String);

#[derive(Debug, Clone, Copy, Default)]
struct Globals {
    usage_page: u16,
    report_size: u32,
    report_count: u32,
    report_id: Option<u8>,
}

// Item tags with the size bits masked off (HID 1.11 §6.2.2.4–6.2.2.8).
const MAIN_INPUT: u8 = 0x80;
const MAIN_OUTPUT: u8 = 0x90;
const MAIN_COLLECTION: u8 = 0xA0;
const MAIN_FEATURE: u8 = 0xB0;
const MAIN_END_COLLECTION: u8 = 0xC0;
const GLOBAL_USAGE_PAGE: u8 = 0x04;
const GLOBAL_REPORT_SIZE: u8 = 0x74;
const GLOBAL_REPORT_ID: u8 = 0x84;
const GLOBAL_REPORT_COUNT: u8 = 0x94;
const GLOBAL_PUSH: u8 = 0xA4;
const GLOBAL_POP: u8 = 0xB4;
const LOCAL_USAGE: u8 = 0x08;
const LONG_ITEM: u8 = 0xFE;
const COLLECTION_APPLICATION: u32 = 0x01;
/// Bounds the Push stack and nesting so a hostile descriptor cannot make us allocate much.
const MAX_DEPTH: usize = 32;

/// Parses `desc` into its top-level collections.
pub fn parse(desc: &[u8]) -> Result<Vec<TopCollection>, DescriptorError> {
    let mut globals = Globals::default();
    let mut stack: Vec<Globals> = Vec::new();
    // Local usages since the last main item; only the first one matters for a collection.
    let mut usages: Vec<(Option<u16>, u16)> = Vec::new();
    let mut depth = 0usize;
    let mut collections: Vec<TopCollection> = Vec::new();
    let mut rest = desc;

    while let Some((&prefix, after)) = rest.split_first() {
        if prefix == LONG_ITEM {
            // Long item: bDataSize, bLongItemTag, data (§6.2.2.3). None are defined; skip.
            let (&size, _) =
                after.split_first().ok_or_else(|| DescriptorError("truncated long item".into()))?;
            let skip = 2 + usize::from(size);
            rest =
                after.get(skip..).ok_or_else(|| DescriptorError("truncated long item".into()))?;
            continue;
        }
        let size = match prefix & 0x03 {
            3 => 4,
            n => usize::from(n),
        };
        let data = after.get(..size).ok_or_else(|| {
            DescriptorError(format!("item 0x{prefix:02x} needs {size} data bytes, descriptor ends"))
        })?;
        rest = &after[size..];
        let value = data.iter().rev().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        let tag = prefix & 0xFC;

        match tag {
            GLOBAL_USAGE_PAGE => globals.usage_page = (value & 0xFFFF) as u16,
            GLOBAL_REPORT_SIZE => globals.report_size = value,
            GLOBAL_REPORT_COUNT => globals.report_count = value,
            GLOBAL_REPORT_ID => {
                let id = u8::try_from(value)
                    .ok()
                    .filter(|&id| id != 0)
                    .ok_or_else(|| DescriptorError(format!("invalid report ID {value}")))?;
                globals.report_id = Some(id);
            }
            GLOBAL_PUSH => {
                if stack.len() >= MAX_DEPTH {
                    return Err(DescriptorError("Push nested too deeply".into()));
                }
                stack.push(globals);
            }
            GLOBAL_POP => {
                globals = stack.pop().ok_or_else(|| DescriptorError("Pop without Push".into()))?;
            }
            LOCAL_USAGE => {
                // A 4-byte usage carries its own page in the high half (§6.2.2.8).
                let page = (size == 4).then_some((value >> 16) as u16);
                usages.push((page, (value & 0xFFFF) as u16));
            }
            MAIN_COLLECTION => {
                if depth == 0 {
                    let (page, usage) = usages.first().copied().unwrap_or((None, 0));
                    if value == COLLECTION_APPLICATION || value == 0 {
                        collections.push(TopCollection {
                            usage_page: page.unwrap_or(globals.usage_page),
                            usage,
                            reports: BTreeMap::new(),
                        });
                    }
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DescriptorError("collections nested too deeply".into()));
                }
                usages.clear();
            }
            MAIN_END_COLLECTION => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| DescriptorError("End Collection without Collection".into()))?;
                usages.clear();
            }
            MAIN_INPUT | MAIN_OUTPUT | MAIN_FEATURE => {
                let bits = globals.report_size.saturating_mul(globals.report_count);
                if let (true, Some(top)) = (depth > 0, collections.last_mut()) {
                    let entry = top.reports.entry(globals.report_id).or_default();
                    let field = match tag {
                        MAIN_INPUT => &mut entry.input,
                        MAIN_OUTPUT => &mut entry.output,
                        _ => &mut entry.feature,
                    };
                    *field = field.saturating_add(bits);
                }
                usages.clear();
            }
            // Logical/physical ranges, units, delimiters, designators, strings: irrelevant here.
            _ => {}
        }
    }
    if depth != 0 {
        return Err(DescriptorError(format!("{depth} collection(s) not closed")));
    }
    Ok(collections)
}

fn bytes(bits: u32) -> usize {
    // Report lengths are whole bytes on the wire; padding bits round up (HID 1.11 §8.4).
    usize::try_from(bits.div_ceil(8)).unwrap_or(usize::MAX)
}

/// Finds the FIDO CTAPHID collection and its report layout; `Ok(None)` for non-FIDO devices.
///
/// Picks the first report (by ID) of the FIDO collection that has both input and output fields.
pub fn fido_layout(desc: &[u8]) -> Result<Option<FidoReportLayout>, DescriptorError> {
    let collections = parse(desc)?;
    let Some(fido) = collections
        .iter()
        .find(|c| c.usage_page == FIDO_USAGE_PAGE && c.usage == FIDO_USAGE_CTAPHID)
    else {
        return Ok(None);
    };
    let (report_id, bits) =
        fido.reports.iter().find(|(_, bits)| bits.input > 0 && bits.output > 0).ok_or_else(
            || DescriptorError("FIDO collection has no report with both input and output".into()),
        )?;
    Ok(Some(FidoReportLayout {
        report_id: *report_id,
        input_len: bytes(bits.input),
        output_len: bytes(bits.output),
    }))
}

#[cfg(test)]
#[path = "descriptor_tests.rs"]
mod tests;
