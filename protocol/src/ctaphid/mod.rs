//! CTAPHID: 64-byte reports, channels, fragmentation, host and device state machines.
//! (being written)
