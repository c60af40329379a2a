//! systemd's readiness protocol (`sd_notify(3)`), for `Type=notify` units.
//!
//! When systemd starts the daemon it sets `$NOTIFY_SOCKET` (a unix datagram
//! socket, a path or `@abstract`); the daemon sends `READY=1` once its first
//! cycle has run (or at once when scheduled hydration is off; with replicas,
//! a follower, which runs no cycle, once it knows it follows),
//! `RELOADING=1` / `READY=1` around a SIGHUP reload and `STOPPING=1` on
//! shutdown. Without `$NOTIFY_SOCKET` (not under systemd) nothing is sent.
//! A failed send is logged at debug level and otherwise ignored: readiness
//! reporting never stops the daemon.

use std::sync::atomic::{AtomicBool, Ordering};

static READY_SENT: AtomicBool = AtomicBool::new(false);

/// Send `state` (newline-separated `KEY=VALUE` lines) to `$NOTIFY_SOCKET`.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else { return };
    if let Err(e) = send(&socket, state) {
        log::debug!("sd_notify: cannot send {state:?} to {}: {e}", socket.to_string_lossy());
    }
}

/// `READY=1`, once per process (later calls do nothing).
pub fn ready() {
    ready_with("hydrating");
}

/// `READY=1` with `STATUS=status`, once per process (with [`ready`]).
pub fn ready_with(status: &str) {
    if !READY_SENT.swap(true, Ordering::Relaxed) {
        notify(&format!("READY=1\nSTATUS={status}"));
    }
}

/// `RELOADING=1` with the monotonic time systemd asks for.
pub fn reloading() {
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
}

/// After a reload: ready again (only if the first `READY=1` was sent).
pub fn reloaded() {
    if READY_SENT.load(Ordering::Relaxed) {
        notify("READY=1");
    }
}

#[cfg(target_os = "linux")]
fn send(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = socket.as_bytes();
    let addr = match bytes.split_first() {
        Some((b'@', name)) => SocketAddr::from_abstract_name(name)?,
        Some((b'/', _)) => SocketAddr::from_pathname(std::path::Path::new(socket))?,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither a path nor @abstract",
            ))
        }
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn send(_socket: &std::ffi::OsStr, _state: &str) -> std::io::Result<()> {
    Ok(())
}

/// CLOCK_MONOTONIC in microseconds (what `MONOTONIC_USEC=` carries).
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec we pass.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } == 0;
    if !ok {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000).saturating_add(ts.tv_nsec as u64 / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        assert!(send(std::ffi::OsStr::new("relative"), "READY=1").is_err());
        assert!(monotonic_usec() > 0);
    }
}
