//! Link the `horde-hydrator` binary as a position-dependent executable.
//!
//! A PIE binary of this size carries ~22,600 relative relocations that the
//! dynamic loader applies at every start, each page of them copied on write:
//! ~120 page faults and 0.8 ms of the 1.9 ms `horde-hydrator --version` took
//! (issue 4: a `once` is a fresh process). The code is still compiled as
//! position-independent; only the final link of the binaries changes.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
