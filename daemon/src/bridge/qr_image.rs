//! Reading the desktop's `FIDO:/` QR code from a picture (`bridge --qr-image FILE`): lab rigs
//! often have a screenshot of the browser's QR dialog, not the string.
//!
//! PNG and JPEG are decoded with the `image` crate (format guessed from the bytes, not the file
//! name; decoder allocations bounded), converted to 8-bit luma and searched for QR codes with
//! `rqrr`. The first code whose text is a valid `FIDO:/` URL (PROTOCOL-hybrid.md §2) wins, so a
//! screenshot with other codes in it still works.
//!
//! What it is not: a camera pipeline (no perspective hints, no video frames).

use cablebridge_protocol::error::{Classify, Fault, Stage};
use cablebridge_protocol::hybrid::qr::{QrError, QrPayload};
use core::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};

/// Screenshots of 8K displays are fine; anything bigger is not a screenshot.
const MAX_DIMENSION: u32 = 10_000;
/// Upper bound on decoder allocations.
const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Why no `FIDO:/` QR could be read from an image.
#[non_exhaustive]
#[derive(Debug)]
pub enum QrImageError {
    /// The file could not be read (missing, permissions): an environment problem.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not a PNG/JPEG we can decode.
    NotAnImage {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The image has no readable QR code.
    NoQrCode {
        /// The file.
        path: PathBuf,
        /// How many QR finder patterns were found but could not be decoded.
        undecodable: usize,
    },
    /// QR codes were found, but none holds a valid `FIDO:/` URL.
    NotFido {
        /// The file.
        path: PathBuf,
        /// The first code's text (truncated), for the operator.
        text: String,
        /// Why it is not a hybrid QR.
        source: QrError,
    },
}

impl fmt::Display for QrImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QrImageError::Unreadable { path, source } => {
                write!(f, "cannot read QR image {}: {source}", path.display())
            }
            QrImageError::NotAnImage { path, reason } => {
                write!(f, "{} is not a PNG or JPEG image: {reason}", path.display())
            }
            QrImageError::NoQrCode { path, undecodable: 0 } => {
                write!(f, "no QR code found in {}", path.display())
            }
            QrImageError::NoQrCode { path, undecodable } => write!(
                f,
                "{undecodable} QR code(s) found in {} but none could be decoded (blurred, cut \
                 off or too small?)",
                path.display()
            ),
            QrImageError::NotFido { path, text, source } => write!(
                f,
                "the QR code in {} is not a FIDO:/ hybrid code ({source}); it says {text:?}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for QrImageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QrImageError::Unreadable { source, .. } => Some(source),
            QrImageError::NotFido { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Classify for QrImageError {
    fn fault(&self) -> Fault {
        match self {
            QrImageError::Unreadable { .. } => Fault::Environment,
            _ => Fault::Caller,
        }
    }
    fn stage(&self) -> Stage {
        Stage::Qr
    }
}

/// Reads `path` and returns the first `FIDO:/` QR code in it.
pub fn read_qr_image(path: &Path) -> Result<QrPayload, QrImageError> {
    let bytes = std::fs::read(path)
        .map_err(|source| QrImageError::Unreadable { path: path.to_owned(), source })?;
    decode_qr_image(&bytes, path)
}

/// Decodes image `bytes` (named `path` in errors) and returns the first `FIDO:/` QR code.
pub fn decode_qr_image(bytes: &[u8], path: &Path) -> Result<QrPayload, QrImageError> {
    let not_image = |reason: String| QrImageError::NotAnImage { path: path.to_owned(), reason };
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| not_image(e.to_string()))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        Some(other) => return Err(not_image(format!("{other:?} is not supported"))),
        None => return Err(not_image("unknown file format".to_owned())),
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let luma = reader.decode().map_err(|e| not_image(e.to_string()))?.to_luma8();

    let (width, height) = (luma.width() as usize, luma.height() as usize);
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        // x < width and y < height by construction; the fallback only keeps this panic-free.
        luma.get_pixel_checked(x as u32, y as u32).map_or(255, |p| p.0[0])
    });
    let grids = prepared.detect_grids();
    let mut undecodable = 0;
    let mut first_error = None;
    for grid in &grids {
        let Ok((_, text)) = grid.decode() else {
            undecodable += 1;
            continue;
        };
        match QrPayload::from_url(text.trim()) {
            Ok(qr) => return Ok(qr),
            Err(source) if first_error.is_none() => {
                let shown: String = text.chars().take(60).collect();
                first_error =
                    Some(QrImageError::NotFido { path: path.to_owned(), text: shown, source });
            }
            Err(_) => {}
        }
    }
    Err(first_error.unwrap_or(QrImageError::NoQrCode { path: path.to_owned(), undecodable }))
}
