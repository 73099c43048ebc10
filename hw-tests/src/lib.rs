//! Shared helpers for the hardware-facing test tiers (see hw-tests/README.md).
