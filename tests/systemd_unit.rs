//! `deploy/horde-hydrator.service` is a unit systemd accepts: `systemd-analyze
//! verify` says nothing about it (an unknown key or a bad value is a message,
//! so silence is required, not only exit 0), with `ExecStart` pointed at the
//! binary under test (verify checks that the program exists). The unit also
//! keeps the promises the README makes (notify, reload by SIGHUP, restart on
//! failure, hardening).
//!
//! Where `systemd-analyze` is not installed the test says so and skips;
//! under CI (`CI=true`, where `.ci/run` installs Debian's `systemd`) it fails.

use std::path::Path;
use std::process::Command;

const UNIT: &str = include_str!("../deploy/horde-hydrator.service");
const BIN: &str = env!("CARGO_BIN_EXE_horde-hydrator");

fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    if found {
        return Some("systemd-analyze");
    }
    let msg = "systemd-analyze not found (Debian package `systemd`): the unit file was not verified";
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

#[test]
fn the_unit_keeps_the_readmes_promises() {
    let lines: Vec<&str> = UNIT.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    for wanted in [
        "Type=notify",
        "ExecStart=/usr/local/bin/horde-hydrator --config /etc/horde-hydrator/config.toml run",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "EnvironmentFile=-/etc/horde-hydrator/secrets.env",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet=",
    ] {
        assert!(lines.contains(&wanted), "the unit has no `{wanted}` line");
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Some(analyze) = systemd_analyze() else { return };
    let dir = tempfile::tempdir().unwrap();
    let unit = UNIT.replace("/usr/local/bin/horde-hydrator", BIN);
    assert_ne!(unit, UNIT, "ExecStart does not name /usr/local/bin/horde-hydrator");
    let path = dir.path().join("horde-hydrator.service");
    std::fs::write(&path, unit).unwrap();
    let out = verify(analyze, &path);
    assert!(out.0 && out.1.trim().is_empty(), "systemd-analyze verify rejected the unit:\n{}", out.1);

    // The check can fail: a misspelt key is reported.
    let broken = dir.path().join("broken").join("horde-hydrator.service");
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    std::fs::write(&broken, std::fs::read_to_string(&path).unwrap().replace("DynamicUser=", "DynamicUsr="))
        .unwrap();
    let out = verify(analyze, &broken);
    assert!(out.1.contains("DynamicUsr"), "a misspelt key was not reported: {}", out.1);
}

/// (exit 0, everything it printed)
fn verify(analyze: &str, unit: &Path) -> (bool, String) {
    let out = Command::new(analyze).arg("verify").arg(unit).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}
