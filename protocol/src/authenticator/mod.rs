//! A software CTAP2 authenticator as a pure state machine.
//! (being written)
