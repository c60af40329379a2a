//! Link the `horde-hydrator` binary as a position-dependent executable.
//!
//! A PIE binary of this size carries ~22,600 relative relocations that the
//! dynamic loader applies at every start, each page of them copied on write:
//! ~120 page faults, which a `once` (a fresh process) pays at every start
//! (docs/PERFORMANCE.md has the measurement). The code is still
//! compiled as position-independent; only the final link of the binaries
//! changes. The price: the executable's own image is not placed at a random
//! address (libraries, stack and heap still are). Delete this file to link a
//! PIE again.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
