//! The config loader: arbitrary TOML and JSON never panic, and a config
//! that loads either builds a gate or says why.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::gate::GateConfig;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for config in [GateConfig::from_toml(&text), GateConfig::from_json(&text)] {
        if let Ok(config) = config {
            if let Err(error) = config.build() {
                assert!(!error.to_string().is_empty());
            }
        }
    }
});
