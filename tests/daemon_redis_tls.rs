//! Redis as deployments run it, against real `redis-server`s: TLS only
//! (`rediss://`, a throw-away private CA made here with rcgen and given as
//! `redis.tls_ca_file`), ACL users (`user:password@` in the URL, the default
//! user switched off), and a unix socket (`redis+unix://…?user=…&pass=…`). Each time the
//! daemon writes the nine entries, `admin status` (the CLI's own connection)
//! answers, and no password appears in the daemon's log or the status output.
//!
//! Each server is configured by a `redis.conf` of its own and checked through
//! a unix socket (as an ACL user of the test's own), so the test's view never
//! depends on the connection under test.

mod common;

use common::daemon::{wait_until, Daemon, Setup, ENTRY_NAMES};
use common::redis_server::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ENTRIES: Duration = Duration::from_secs(60);
const CHECKER: (&str, &str) = ("checker", "checker-pw-0d41");

/// A `redis-server` started from a config file, killed when dropped.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts `redis-server` with `extra` config lines (besides no persistence,
    /// loopback, a unix socket and the checker's ACL user) and waits until it
    /// answers on the unix socket.
    fn start(extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let conf = format!(
            "save \"\"\nappendonly no\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/redis.log\n\
             unixsocket {dir}/redis.sock\nunixsocketperm 700\n\
             user {user} on >{pw} ~* &* +@all\n{extra}\n",
            dir = dir.path().display(),
            user = CHECKER.0,
            pw = CHECKER.1,
        );
        std::fs::write(dir.path().join("redis.conf"), conf).unwrap();
        let child = Command::new(std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into()))
            .arg(dir.path().join("redis.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run redis-server (install it; .ci/run does)");
        let mut server = Server { child, dir };
        wait_until(Duration::from_secs(10), "redis-server to answer on its unix socket", || {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("redis-server exited ({status}): {}", server.log());
            }
            server.checker_once().ok()
        });
        server
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    fn checker_once(&self) -> redis::RedisResult<redis::Connection> {
        let url = format!("redis+unix://{}?user={}&pass={}", self.socket().display(), CHECKER.0, CHECKER.1);
        let mut conn = redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(2))?;
        redis::cmd("PING").query::<String>(&mut conn)?;
        Ok(conn)
    }

    /// Waits until the nine entries exist under the default prefix.
    fn wait_for_entries(&self) {
        let mut conn = self.checker_once().unwrap();
        wait_until(ENTRIES, "the nine entries", || {
            let keys: Vec<String> =
                ENTRY_NAMES.iter().map(|n| format!("{}:{n}", common::daemon::DEFAULT_PREFIX)).collect();
            let found: i64 = redis::cmd("EXISTS").arg(&keys).query(&mut conn).unwrap();
            (found == 9).then_some(())
        });
    }

    /// The user names of the connected clients (CLIENT LIST).
    fn client_users(&self) -> Vec<String> {
        let mut conn = self.checker_once().unwrap();
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut conn).unwrap();
        list.lines()
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("user=")).map(str::to_string))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throw-away CA and a server certificate for 127.0.0.1 and localhost,
/// written as PEM files into `dir`: (ca.pem, server.pem, server.key).
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "horde-hydrator test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    server.distinguished_name.push(DnType::CommonName, "redis test server");
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();

    let paths = (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, server_cert.pem()).unwrap();
    std::fs::write(&paths.2, server_key.serialize_pem()).unwrap();
    (paths.0, paths.1, paths.2)
}

/// The daemon's settings: the example snapshot as sources, Redis at `url`.
fn setup(url: &str) -> Setup {
    Setup::from_snapshot(&common::example_data(), Some(url))
}

/// Runs `admin status` with the daemon's settings; its output must say ok.
fn admin_status(daemon: &Daemon) -> String {
    let out = daemon.cli(&["admin", "status"], Duration::from_secs(20));
    assert!(out.status.success(), "admin status failed: {}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("\"ok\": true"), "{}", out.stdout);
    format!("{}{}", out.stdout, out.stderr)
}

fn assert_no_secret(secret: &str, what: &str, text: &str) {
    assert!(!text.contains(secret), "the password appears in {what}:\n{text}");
}

/// The daemon writes the nine entries as the ACL user `hydrator`; its `admin
/// status` output says each of `status_says`; neither that output nor the
/// daemon's log shows `password`.
#[track_caller]
fn assert_acl_user_writes(server: &Server, daemon: &mut Daemon, password: &str, status_says: &[&str]) {
    server.wait_for_entries();
    assert!(server.client_users().iter().any(|u| u == "hydrator"), "{:?}", server.client_users());
    let status = admin_status(daemon);
    for says in status_says {
        assert!(status.contains(says), "{status}");
    }
    assert_no_secret(password, "the status output", &status);
    daemon.assert_alive();
    assert_no_secret(password, "the daemon's log", &daemon.log());
}

#[test]
fn rediss_with_a_private_ca_and_an_acl_user_writes_the_nine_entries() {
    const PASSWORD: &str = "tls-acl-pw-5e2c91";
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificates(dir.path());
    let tls_port = free_port();
    let server = Server::start(&format!(
        "port 0\ntls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
         tls-auth-clients no\nuser default off\nuser hydrator on >{PASSWORD} ~* &* +@all",
        cert.display(),
        key.display(),
        ca.display()
    ));
    let url = format!("rediss://hydrator:{PASSWORD}@127.0.0.1:{tls_port}/0");

    // Without the private CA the server's certificate is not trusted: no entries.
    let untrusted = Daemon::start(&setup(&url));
    let log = wait_until(Duration::from_secs(20), "the certificate error in the log", || {
        let log = untrusted.log();
        log.contains("redis: rediss://hydrator:***@127.0.0.1").then_some(log)
    });
    assert!(log.to_lowercase().contains("certificate"), "{log}");
    assert_no_secret(PASSWORD, "the log of the daemon without the CA", &log);
    drop(untrusted);

    let mut with_ca = setup(&url);
    with_ca.set_str("redis", "tls_ca_file", &ca.display().to_string());
    let mut daemon = Daemon::start(&with_ca);
    assert_acl_user_writes(&server, &mut daemon, PASSWORD, &["rediss://hydrator:***@127.0.0.1"]);
}

#[test]
fn an_acl_user_in_the_url_writes_the_nine_entries() {
    const PASSWORD: &str = "plain-acl-pw-77b3f0";
    let port = free_port();
    let server =
        Server::start(&format!("port {port}\nuser default off\nuser hydrator on >{PASSWORD} ~* &* +@all"));
    let mut daemon = Daemon::start(&setup(&format!("redis://hydrator:{PASSWORD}@127.0.0.1:{port}/0")));
    assert_acl_user_writes(&server, &mut daemon, PASSWORD, &["redis://hydrator:***@127.0.0.1"]);

    // A wrong password is an outage the log explains (without the password).
    let wrong = Daemon::start(&setup(&format!("redis://hydrator:not-{PASSWORD}@127.0.0.1:{port}/0")));
    let log = wait_until(Duration::from_secs(20), "the authentication error in the log", || {
        let log = wrong.log();
        log.contains("unavailable").then_some(log)
    });
    assert!(log.contains("WRONGPASS") || log.to_lowercase().contains("auth"), "{log}");
    assert_no_secret(PASSWORD, "the log of the daemon with the wrong password", &log);
}

#[test]
fn a_unix_socket_with_an_acl_user_writes_the_nine_entries() {
    const PASSWORD: &str = "unix-acl-pw-c4a7d2";
    let server =
        Server::start(&format!("port 0\nuser default off\nuser hydrator on >{PASSWORD} ~* &* +@all"));
    let url = format!("redis+unix://{}?user=hydrator&pass={PASSWORD}", server.socket().display());
    let mut daemon = Daemon::start(&setup(&url));
    assert_acl_user_writes(
        &server,
        &mut daemon,
        PASSWORD,
        &["\"subscribed\": true", "?user=hydrator&pass=***"],
    );
}

#[test]
fn an_unreadable_ca_file_stops_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = setup("rediss://127.0.0.1:1/0");
    s.set_str("redis", "tls_ca_file", "/nonexistent/private-ca.pem");
    let config = s.write(dir.path());
    let out = common::daemon::run_cli(&config, &[], &["once"], Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("redis.tls_ca_file /nonexistent/private-ca.pem"), "{}", out.stderr);

    let mut plain = setup("redis://127.0.0.1:1/0");
    plain.set_str("redis", "tls_ca_file", "/nonexistent/private-ca.pem");
    let config = plain.write(dir.path());
    let out = common::daemon::run_cli(&config, &[], &["once"], Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("redis.tls_ca_file") && out.stderr.contains("rediss://"), "{}", out.stderr);
}
