//! The operations HTTP server of `run` (README "Operations"): `/healthz`,
//! JSON 404/405 bodies, `http.enabled = false`, and the stop on SIGTERM.

mod common;

use common::daemon::{wait_until, Daemon, Setup};
use common::http::try_request;
use std::time::Duration;

/// A daemon whose sources never answer (port 9 refuses): the HTTP server must
/// not depend on a cycle.
fn offline_daemon() -> Daemon {
    Daemon::start(&Setup::with_sources("http://127.0.0.1:9/api", "http://127.0.0.1:9", None))
}

#[test]
fn healthz_answers_while_the_daemon_runs() {
    let mut daemon = offline_daemon();
    let reply = daemon.http_get("/healthz");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["status"], "ok");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    daemon.assert_alive();
}

#[test]
fn unknown_paths_and_methods_get_short_json_errors() {
    let daemon = offline_daemon();
    let addr = daemon.http_addr();

    let reply = daemon.http_get("/nope");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "not found");
    assert_eq!(reply.json()["status"], 404);

    let reply = try_request(&addr, "POST", "/healthz").unwrap();
    assert_eq!(reply.status, 405, "{}", reply.text());
    assert_eq!(reply.json()["error"], "method not allowed");
    assert_eq!(reply.header("allow"), Some("GET"));
}

#[test]
fn sigterm_stops_the_http_server_with_the_daemon() {
    let mut daemon = offline_daemon();
    let addr = daemon.http_addr();
    assert_eq!(daemon.http_get("/healthz").status, 200);
    daemon.sigterm();
    let status =
        daemon.wait_exit(Duration::from_secs(6)).expect("the daemon did not exit within 6 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(try_request(&addr, "GET", "/healthz").is_err(), "the HTTP server still answers after the exit");
}

#[test]
fn http_enabled_false_starts_no_server() {
    let mut setup = Setup::with_sources("http://127.0.0.1:9/api", "http://127.0.0.1:9", None);
    setup.set("http", "enabled", "false");
    let mut daemon = Daemon::start(&setup);
    wait_until(Duration::from_secs(10), "the daemon's start-up line", || {
        daemon.log().contains("starting:").then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    daemon.assert_alive();
    assert!(!daemon.log().contains("http: listening"), "{}", daemon.log());
}

#[test]
fn an_address_in_use_stops_start_up_naming_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut setup = Setup::with_sources("http://127.0.0.1:9/api", "http://127.0.0.1:9", None);
    setup.set_str("http", "bind", &format!("127.0.0.1:{port}"));
    let mut daemon = Daemon::start(&setup);
    let status = daemon.wait_exit(Duration::from_secs(10)).expect("the daemon kept running on a taken port");
    assert_eq!(status.code(), Some(2), "{}", daemon.log());
    assert!(daemon.log().contains("http.bind"), "{}", daemon.log());
}
