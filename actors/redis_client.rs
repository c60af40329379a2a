//! The one place a `redis::Client` is built from the settings.
//!
//! The command connection (`cache.rs`), the pub/sub subscriber and publisher
//! (`invalidation.rs`) and the `admin` client (`admin.rs`) all connect
//! through [`client`], so every kind of URL works the same everywhere:
//!
//! * `redis://[user:password@]host:port/db` — plain TCP; a user name selects
//!   an ACL user (Redis 6+), a password alone authenticates the default user;
//! * `rediss://…` — TLS (rustls). The server certificate is checked against
//!   the Mozilla roots compiled in (webpki-roots, as for the HTTP sources), or,
//!   when `redis.tls_ca_file` is set, against the CA certificates in that PEM
//!   file only (a private CA);
//! * `redis+unix:///path/redis.sock[?db=N&user=U&pass=P]` (also `unix://`) —
//!   a unix socket.
//!
//! Errors name the setting and never show a password (the URL is redacted).

use horde_hydrator::settings::RedisSettings;

/// The Redis client could not be built; says which setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum RedisClientError {
    #[error("redis.url {url}: {message}")]
    Url { url: String, message: String },
    #[error("redis.tls_ca_file {path}: cannot read it ({source}); give a readable PEM file of the CA that signed the Redis server's certificate")]
    CaFile { path: String, source: std::io::Error },
    #[error("redis.tls_ca_file {path}: {message}; it must hold the PEM certificate(s) of the CA that signed the Redis server's certificate")]
    CaCertificates { path: String, message: String },
}

/// The client for `settings.url` (with `settings.tls_ca_file` for `rediss://`).
/// It does not connect: the callers connect, time out and retry on their own.
pub fn client(settings: &RedisSettings) -> Result<redis::Client, RedisClientError> {
    let url_error =
        |e: redis::RedisError| RedisClientError::Url { url: settings.url.redacted(), message: e.to_string() };
    let Some(ca_file) = settings.tls_ca_file.as_deref().filter(|p| !p.as_os_str().is_empty()) else {
        return redis::Client::open(settings.url.expose()).map_err(url_error);
    };
    let path = ca_file.display().to_string();
    let pem =
        std::fs::read(ca_file).map_err(|source| RedisClientError::CaFile { path: path.clone(), source })?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(RedisClientError::CaCertificates {
            path,
            message: "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_string(),
        });
    }
    let certificates = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
    redis::Client::build_with_tls(settings.url.expose(), certificates).map_err(|e| {
        if e.kind() == redis::ErrorKind::InvalidClientConfig
            && !settings.url.expose().starts_with("rediss://")
        {
            url_error(e)
        } else {
            RedisClientError::CaCertificates { path, message: e.to_string() }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn settings(url: &str, ca: Option<PathBuf>) -> RedisSettings {
        let mut s = horde_hydrator::settings::Settings::default().redis;
        s.url = horde_hydrator::settings::RedisUrl::new(url);
        s.tls_ca_file = ca;
        s
    }

    #[test]
    fn every_scheme_builds_a_client() {
        for url in [
            "redis://127.0.0.1:6379/0",
            "redis://hydrator:pw@127.0.0.1:6379/2",
            "rediss://cache.example.com:6380/0",
            "redis+unix:///run/redis/redis.sock?db=1",
            "unix:///run/redis/redis.sock",
        ] {
            assert!(client(&settings(url, None)).is_ok(), "{url}");
        }
    }

    #[test]
    fn a_bad_url_names_the_setting_without_the_password() {
        let e = client(&settings("redis://user:hunter2@/0", None)).unwrap_err().to_string();
        assert!(e.starts_with("redis.url "), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn ca_file_problems_name_the_setting() {
        let missing = client(&settings("rediss://h:6380", Some(PathBuf::from("/nonexistent/ca.pem"))))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("redis.tls_ca_file /nonexistent/ca.pem"), "{missing}");

        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let e = client(&settings("rediss://h:6380", Some(not_pem.clone()))).unwrap_err().to_string();
        assert!(e.contains("redis.tls_ca_file") && e.contains("no PEM certificate"), "{e}");

        let broken = "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n";
        std::fs::write(&not_pem, broken).unwrap();
        let e = client(&settings("rediss://h:6380", Some(not_pem))).unwrap_err().to_string();
        assert!(e.contains("redis.tls_ca_file"), "{e}");
    }
}
