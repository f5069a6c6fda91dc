//! `gateway.yaml` as an operator could write it: parse, validate, compile the
//! route table and the policy sections, exactly as `gateway validate` and a
//! reload do (`gateway::load_config`).
//!
//! Checks: no panic, no hang; and the verdict is deterministic (the same text
//! loaded twice gives the same config or the same error list, so an operator
//! never sees errors come and go between runs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_fuzz::{names_special_files, scratch_dir};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if names_special_files(text) {
        return;
    }
    let path = scratch_dir().join("gateway.yaml");
    std::fs::write(&path, text).expect("write config");
    let first = gateway::load_config(&path);
    let second = gateway::load_config(&path);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("one load accepted the config and the other refused it"),
    }
});
