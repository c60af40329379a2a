//! A TCP proxy of our own between the daemon and a server (Redis), to play
//! link faults with real sockets: std threads and `std::net`, no fakes.
//!
//! ```ignore
//! let proxy = Proxy::start(redis.port());     // listens on 127.0.0.1:<free port>
//! let url = proxy.redis_url();                // give this to the daemon
//! proxy.blackhole_existing();                 // a conntrack/NAT drop: sockets stay open, nothing passes
//! proxy.set_delay(Duration::from_millis(300)); // every chunk waits this long (both ways)
//! proxy.reset_existing();                     // every open connection gets a TCP RST
//! proxy.set_blackhole_new(true);              // new connections are accepted but never forwarded
//! ```
//!
//! Every accepted connection opens its own connection to the upstream port
//! and is pumped by two threads (one per direction). A fault applies to the
//! connections it names; new connections are forwarded normally unless
//! [`Proxy::set_blackhole_new`] says otherwise. Blackholed connections keep
//! reading (and discarding) so the peers see no back-pressure, exactly as on
//! a path that silently drops packets. Dropping the proxy closes everything.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One proxied connection: the client's socket, the upstream socket, its fault.
struct Link {
    client: TcpStream,
    upstream: TcpStream,
    blackholed: AtomicBool,
    closed: AtomicBool,
    /// Closing with a RST: the client socket is only shut for reading (which
    /// sends nothing); its last close, with SO_LINGER 0, sends the RST.
    resetting: AtomicBool,
}

impl Link {
    fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            if self.resetting.load(Ordering::SeqCst) {
                let _ = self.client.shutdown(Shutdown::Read);
            } else {
                let _ = self.client.shutdown(Shutdown::Both);
            }
            let _ = self.upstream.shutdown(Shutdown::Both);
        }
    }
}

struct Shared {
    upstream_port: u16,
    links: Mutex<Vec<Arc<Link>>>,
    blackhole_new: AtomicBool,
    delay_ms: AtomicU64,
    stopping: AtomicBool,
}

/// A running proxy (see the module doc); stopped when dropped.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<thread::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: cannot bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream_port,
            links: Mutex::new(Vec::new()),
            blackhole_new: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        });
        let shared2 = shared.clone();
        let accept = thread::spawn(move || {
            for client in listener.incoming() {
                if shared2.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", shared2.upstream_port)) else {
                    // Upstream down: the client sees its connection closed.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let link = Arc::new(Link {
                    client,
                    upstream,
                    blackholed: AtomicBool::new(shared2.blackhole_new.load(Ordering::SeqCst)),
                    closed: AtomicBool::new(false),
                    resetting: AtomicBool::new(false),
                });
                let mut links = shared2.links.lock().unwrap();
                links.retain(|l| !l.closed.load(Ordering::SeqCst));
                links.push(link.clone());
                drop(links);
                for upward in [true, false] {
                    let (link, shared) = (link.clone(), shared2.clone());
                    thread::spawn(move || pump(&link, &shared, upward));
                }
            }
        });
        Proxy { port, shared, accept: Some(accept) }
    }

    /// The port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`, the proxy as a Redis URL.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Every connection open now stops forwarding in both directions; the
    /// sockets stay open and what arrives is read and discarded. New
    /// connections are not affected.
    pub fn blackhole_existing(&self) {
        for l in self.shared.links.lock().unwrap().iter() {
            l.blackholed.store(true, Ordering::SeqCst);
        }
    }

    /// New connections are accepted (and connected upstream) but blackholed
    /// (`true`), or forwarded (`false`, the default).
    pub fn set_blackhole_new(&self, on: bool) {
        self.shared.blackhole_new.store(on, Ordering::SeqCst);
    }

    /// Every chunk is held this long before it is forwarded, on every
    /// connection, existing and new (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Every connection open now is closed with a TCP RST towards the client
    /// (and closed upstream).
    pub fn reset_existing(&self) {
        let links: Vec<Arc<Link>> = self.shared.links.lock().unwrap().drain(..).collect();
        for l in links {
            set_linger_zero(&l.client);
            l.resetting.store(true, Ordering::SeqCst);
            l.close();
        }
    }

    /// Connections open now (blackholed ones included).
    pub fn open_connections(&self) -> usize {
        self.shared.links.lock().unwrap().iter().filter(|l| !l.closed.load(Ordering::SeqCst)).count()
    }
}

/// Copy one direction of a link until either side closes.
fn pump(link: &Link, shared: &Shared, upward: bool) {
    let (mut from, mut to) =
        if upward { (&link.client, &link.upstream) } else { (&link.upstream, &link.client) };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = shared.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            thread::sleep(Duration::from_millis(delay));
        }
        if link.blackholed.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    link.close();
}

/// SO_LINGER with a zero timeout: `close` then sends a RST instead of a FIN.
fn set_linger_zero(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt reads `linger` (a valid, properly sized value) and
    // touches only the socket's options; the fd is open for the call.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for l in self.shared.links.lock().unwrap().drain(..) {
            l.close();
        }
    }
}
