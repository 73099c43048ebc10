//! The store of linked phones (filled in below).
