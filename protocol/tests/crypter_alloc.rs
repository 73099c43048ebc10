//! Proves the data phase allocates nothing per frame: a counting global allocator wraps
//! `seal_in_place`, `open_in_place` and `seal_frame` (with a warmed-up Vec) over 1000 frames.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers, not peer input

use cablebridge_protocol::hybrid::crypter::{sealed_len, Crypter};
use cablebridge_protocol::hybrid::messages::FrameType;

mod alloc_support;
use alloc_support::allocations;

const MAX: usize = 8 * 1024;

fn sizes() -> impl Iterator<Item = usize> {
    (0..1000usize).map(|i| (i * 977) % MAX)
}

// Counted per thread (see `ALLOCATIONS`), so parallel tests and the harness do not disturb it.
#[test]
fn data_phase_frames_do_not_allocate() {
    let mut desktop = Crypter::new(&[1; 32], &[2; 32]);
    let mut phone = Crypter::new(&[2; 32], &[1; 32]);
    let mut buf = vec![0u8; sealed_len(MAX)];
    let payload = vec![0x5au8; MAX];
    let mut frame = Vec::with_capacity(sealed_len(MAX + 1));

    // The counter is live: a fresh Vec is seen.
    let probe_start = allocations();
    let probe = std::hint::black_box(Vec::<u8>::with_capacity(32));
    assert!(allocations() > probe_start);
    drop(probe);

    let before = allocations();
    let mut opened = 0usize;
    for len in sizes() {
        buf[..len].fill(len as u8);
        let n = desktop.seal_in_place(&mut buf, len).unwrap();
        opened += phone.open_in_place(&mut buf[..n]).unwrap();
        desktop.seal_frame(FrameType::Ctap, &payload[..len], &mut frame).unwrap();
        opened += phone.open_in_place(&mut frame).unwrap();
    }
    let after = allocations();
    assert_eq!(after - before, 0, "heap allocations during 2000 seal/open pairs");
    assert_eq!(opened, sizes().map(|l| 2 * l + 1).sum::<usize>());
}
