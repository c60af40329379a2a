//! horde-hydrator: the daemon's entry point (stub until the daemon work lands).

fn main() {
    println!("horde-hydrator {}", env!("CARGO_PKG_VERSION"));
}
