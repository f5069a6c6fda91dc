//! `sidecar.yaml` as an operator could write it: parse, apply `WEIR_*`
//! overrides, validate (`SidecarConfig::from_yaml`, what start-up and reload
//! do). The first input byte, when it is below 8, picks a set of environment
//! overrides so their parsing is fuzzed together with the file.
//!
//! Checks: no panic, no hang; the verdict is deterministic; an accepted
//! config's effective file validates again to the same result (what `/config`
//! shows is what runs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sidecar::SidecarConfig;

const ENVS: [&[(&str, &str)]; 4] = [
    &[],
    &[("WEIR_SERVICE", "orders"), ("WEIR_MODE", "transparent")],
    &[
        ("WEIR_INBOUND_ADDRESS", "127.0.0.1:0"),
        ("WEIR_APP_ADDRESS", "[::1]:8080"),
        ("WEIR_OUTBOUND_TRANSPARENT", "true"),
    ],
    &[("WEIR_MODE", "sideways"), ("WEIR_ADMIN_ADDRESS", "nope")],
];

fuzz_target!(|data: &[u8]| {
    let (env, text) = match data.first() {
        Some(&b) if b < 8 => (ENVS[usize::from(b) % ENVS.len()], &data[1..]),
        _ => (ENVS[0], data),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let lookup = |k: &str| {
        env.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned())
    };
    let first = SidecarConfig::from_yaml(text, &lookup);
    let second = SidecarConfig::from_yaml(text, &lookup);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("one load accepted the config and the other refused it"),
    }
    if let Ok(config) = first {
        let again = config
            .effective
            .clone()
            .validate(&lookup)
            .unwrap_or_else(|e| panic!("the effective config of an accepted file is refused: {e}"));
        assert_eq!(format!("{again:?}"), format!("{config:?}"));
    }
});
