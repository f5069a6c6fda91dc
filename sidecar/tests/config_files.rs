//! The shipped `config/sidecar-*.yaml` files are valid, and the CLI's
//! `validate` reports problems with their field path and line.

use std::path::PathBuf;
use std::process::Command;

use sidecar::SidecarConfig;

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

#[test]
fn shipped_configs_are_valid_and_use_the_demo_ports() {
    let ports = [
        ("catalog", 8081, 4143, 4140, 4191),
        ("order", 8082, 4243, 4240, 4291),
        ("payment", 8083, 4343, 4340, 4391),
    ];
    for (name, app, inbound, outbound, admin) in ports {
        let path = config_dir().join(format!("sidecar-{name}.yaml"));
        let c = SidecarConfig::load(&path, &|_| None)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(c.service, name);
        assert_eq!(c.inbound.app.port(), app);
        assert_eq!(c.inbound.address.port(), inbound);
        assert_eq!(c.outbound.address.port(), outbound);
        assert_eq!(c.admin.port(), admin);
    }
    let order = SidecarConfig::load(&config_dir().join("sidecar-order.yaml"), &|_| None).unwrap();
    assert_eq!(
        order.services["catalog"].endpoints[0].to_string(),
        "127.0.0.1:4143"
    );
    let payment = &order.services["payment"];
    assert_eq!(payment.endpoints[0].to_string(), "127.0.0.1:4343");
    assert!(
        payment.retry.non_idempotent,
        "payment dedupes on Idempotency-Key"
    );
    assert_eq!(
        payment.retry.statuses,
        vec![http::StatusCode::SERVICE_UNAVAILABLE]
    );
    assert!(!order.services["catalog"].retry.non_idempotent);
}

#[test]
fn validate_exit_codes_and_messages() {
    let bin = env!("CARGO_BIN_EXE_sidecar");
    let ok = Command::new(bin)
        .args(["validate", "--config"])
        .arg(config_dir().join("sidecar-order.yaml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = std::env::temp_dir().join(format!("weir-validate-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "service: x\ninbound:\n  address: 127.0.0.1:1\n  app: 127.0.0.1:2\n  timout: 1s\nadmin: { address: 127.0.0.1:3 }\n",
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["validate", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("inbound.timout (line 5)"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
