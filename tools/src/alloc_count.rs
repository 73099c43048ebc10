//! The binary's global allocator: the system allocator plus an allocation counter that
//! `cablebridge bench` switches on around the loops whose allocations it reports
//! (`allocs_per_frame`, `allocs_per_message`, ...).
//!
//! Cost when not counting (every other command, and the timed bench loops): one relaxed load of a
//! static flag and a well-predicted branch per allocation, next to the tens of nanoseconds malloc
//! itself takes. Counting is process-wide (every thread's allocations count); the benches that
//! count run single-threaded in-memory loops.

// A GlobalAlloc implementation is inherently `unsafe` (it is the runtime's allocator interface).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The system allocator with an on/off allocation counter.
#[derive(Debug)]
pub struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU64 = AtomicU64::new(0);

#[inline(always)]
fn note() {
    if COUNTING.load(Ordering::Relaxed) {
        COUNT.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// GlobalAlloc contract (layout validity, pointer provenance) is exactly System's; the counter
// touches only atomics and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged; the caller upholds alloc's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator, i.e. from System.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged; `ptr` came from System with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The [`cablebridged::bench::AllocCounter`] over [`CountingAlloc`].
#[derive(Debug)]
pub struct Counter;

impl cablebridged::bench::AllocCounter for Counter {
    fn start(&self) {
        COUNT.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::SeqCst);
    }

    fn stop(&self) -> u64 {
        COUNTING.store(false, Ordering::SeqCst);
        COUNT.load(Ordering::SeqCst)
    }
}
