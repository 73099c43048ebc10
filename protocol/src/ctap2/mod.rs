//! CTAP2 request/response types, status codes, PIN/UV auth protocols, attestation parsing.
//! (being written)
