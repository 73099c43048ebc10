//! Control-API request lines (service/src/rpc.rs): JSON-RPC 2.0 parsing, then, for the ceremony
//! methods, the params reader (service/src/ceremony.rs: every field checked, unknown params
//! refused) against the default configuration; every refusal is a JSON-RPC error object.
#![no_main]

use cablebridge_service::ceremony::{self, Kind};
use cablebridge_service::config::Config;
use cablebridge_service::rpc::{self, Params};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = Config::from_toml("", Path::new("cablebridged.toml")) else {
        panic!("the empty config must parse")
    };
    match rpc::parse_request(data) {
        Ok(request) => {
            let kind = match request.method.as_str() {
                "ceremony.register" => Kind::Register,
                "ceremony.authenticate" => Kind::Authenticate,
                _ => return,
            };
            let mut params = Params::new(request.params);
            if ceremony::parse(kind, &mut params, &config).is_ok() {
                let _ = params.finish();
            }
        }
        Err((id, error)) => {
            let line = rpc::error_response(&id, &error);
            assert!(line.get("error").is_some(), "error response without error: {line}");
        }
    }
});
