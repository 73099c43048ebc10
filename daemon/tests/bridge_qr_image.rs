//! `--qr-image`: a desktop's `FIDO:/` QR rendered with the qrcode crate into PNG and JPEG (as a
//! screenshot would be), read back with `bridge::qr_image`, and each typed failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_protocol::error::{Classify, Fault};
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_protocol::hybrid::tunnel::RequestHint;
use cablebridged::bridge::qr_image::{decode_qr_image, read_qr_image, QrImageError};
use image::{ImageFormat, Luma};
use std::io::Cursor;
use std::path::Path;

fn render(text: &str, format: ImageFormat) -> Vec<u8> {
    let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
    let img = code.render::<Luma<u8>>().module_dimensions(6, 6).build();
    // Put it off-centre on a larger grey canvas, like a dialog in a screenshot.
    let mut canvas =
        image::GrayImage::from_pixel(img.width() + 200, img.height() + 120, Luma([200]));
    image::imageops::overlay(&mut canvas, &img, 130, 40);
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageLuma8(canvas).write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn desktop_qr() -> QrPayload {
    QrPayload::generate(&mut rand::rngs::OsRng, 1_700_000_000, RequestHint::MakeCredential, true).1
}

#[test]
fn png_and_jpeg_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for (format, name) in [(ImageFormat::Png, "qr.png"), (ImageFormat::Jpeg, "shot.jpg")] {
        let qr = desktop_qr();
        let path = dir.path().join(name);
        std::fs::write(&path, render(&qr.to_url(), format)).unwrap();
        let back = read_qr_image(&path).unwrap();
        assert_eq!(back.to_url(), qr.to_url(), "{name}");
        assert_eq!(back.tunnel_id(), qr.tunnel_id());
    }
}

#[test]
fn typed_failures() {
    let dir = tempfile::tempdir().unwrap();
    let missing = read_qr_image(&dir.path().join("nope.png")).unwrap_err();
    assert!(matches!(missing, QrImageError::Unreadable { .. }), "{missing}");
    assert_eq!(missing.fault(), Fault::Environment);

    let not_image = decode_qr_image(b"FIDO:/123 is text, not a picture", Path::new("x.png"));
    let e = not_image.unwrap_err();
    assert!(matches!(e, QrImageError::NotAnImage { .. }), "{e}");
    assert_eq!(e.fault(), Fault::Caller);

    let mut blank = Cursor::new(Vec::new());
    image::GrayImage::from_pixel(300, 200, Luma([255]))
        .write_to(&mut blank, ImageFormat::Png)
        .unwrap();
    let e = decode_qr_image(blank.get_ref(), Path::new("blank.png")).unwrap_err();
    assert!(matches!(e, QrImageError::NoQrCode { .. }), "{e}");
    assert!(e.to_string().contains("no QR code found in blank.png"), "{e}");

    let other = render("https://example.com/not-fido", ImageFormat::Png);
    let e = decode_qr_image(&other, Path::new("web.png")).unwrap_err();
    assert!(matches!(e, QrImageError::NotFido { .. }), "{e}");
    assert!(e.to_string().contains("https://example.com/not-fido"), "{e}");
    assert_eq!(e.fault(), Fault::Caller);
}
