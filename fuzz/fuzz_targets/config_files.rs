//! Configuration-like files an operator or lab writes: the service's TOML config
//! (service/src/config.rs, unknown keys refused with their line) and lab-run scenarios
//! (daemon/src/labrun/scenario.rs), including the step resolution that follows a parse.
#![no_main]

use cablebridge_service::config::Config;
use cablebridged::labrun::Scenario;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    if which & 1 == 0 {
        let _ = Config::from_toml(text, Path::new("cablebridged.toml"));
    } else if let Ok(scenario) = Scenario::parse(text) {
        let _ = scenario.resolve_steps();
    }
});
