//! The signals the daemon (`run`) handles, and what each one means.
//!
//! * SIGTERM, SIGINT: stop (a clean shutdown, see `main.rs`);
//! * SIGHUP: reload the settings (`reload.rs`) — what `systemctl reload`
//!   sends, and what a closed terminal or a log rotator may send;
//! * SIGUSR1, SIGUSR2: logged and ignored (their default action would end
//!   the process).
//!
//! The handlers are installed by [`Signals::new`], before the actors start,
//! so that no signal arriving during start-up ends the daemon.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// What a received signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Shut down; the signal's name.
    Stop(&'static str),
    /// Reload the settings.
    Reload,
    /// Log and carry on; the signal's name.
    Ignored(&'static str),
}

/// The installed handlers.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
}

impl Signals {
    /// Install the handlers (from now on these signals no longer have their
    /// default action).
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }

    /// The next signal received.
    pub async fn next(&mut self) -> Received {
        tokio::select! {
            _ = self.term.recv() => Received::Stop("SIGTERM"),
            _ = self.int.recv() => Received::Stop("SIGINT"),
            _ = self.hup.recv() => Received::Reload,
            _ = self.usr1.recv() => Received::Ignored("SIGUSR1"),
            _ = self.usr2.recv() => Received::Ignored("SIGUSR2"),
        }
    }
}
