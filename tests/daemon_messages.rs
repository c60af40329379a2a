//! Failure messages (issue 12): a failed source is one line per cycle with its
//! cause in plain words, retries are at DEBUG, the cycle line says when the
//! next cycle starts, and an open circuit is logged once per opening.

mod common;

use common::daemon::{wait_until, Daemon, Setup};
use std::time::Duration;

#[test]
fn an_unresolvable_source_is_one_plain_line_per_source_per_cycle() {
    // `.invalid` never resolves (RFC 6761): what an offline machine sees.
    let mut setup = Setup::with_sources("http://horde.invalid/api", "http://models.invalid/api", None);
    setup
        .interval(2)
        .set("horde", "max_retries", "2")
        .set("horde", "retry_base_delay_ms", "10")
        .set("horde", "circuit_failure_threshold", "1")
        .set("horde", "circuit_open_seconds", "600");
    let daemon = Daemon::start(&setup);
    let cycles = |log: &str| log.lines().filter(|l| l.contains("cycle failed")).count();
    wait_until(Duration::from_secs(30), "two failed cycles", || (cycles(&daemon.log()) >= 2).then_some(()));
    let log = daemon.log();
    let first_cycle: Vec<&str> = log.lines().take_while(|l| !l.contains("cycle failed")).collect();

    // One WARN line per source (six: three per category), in plain words.
    let failed: Vec<&&str> = first_cycle.iter().filter(|l| l.contains(" failed: ")).collect();
    assert_eq!(failed.len(), 6, "one line per failed source in the first cycle:\n{log}");
    for line in &failed {
        assert!(line.contains("WARN"), "{line}");
        assert!(
            line.contains("cannot resolve horde.invalid: is this machine offline? For an offline run use --config examples/offline.toml")
                || line.contains("cannot resolve models.invalid: is this machine offline?"),
            "not in plain words: {line}"
        );
        assert!(line.len() < 300, "{} characters: {line}", line.len());
    }
    // Retries are DEBUG: not in an INFO log.
    assert!(!log.contains("retry 1 of"), "retries logged at INFO:\n{log}");
    // The cycle line names the failed sources and when the next cycle is.
    let cycle = log.lines().find(|l| l.contains("cycle failed")).unwrap();
    assert!(cycle.contains("sources failed: model_reference/image_generation"), "{cycle}");
    assert!(cycle.contains("; next cycle at ") && cycle.contains(" UTC (in "), "{cycle}");
    assert!(!cycle.contains("cannot resolve"), "the causes are in the source lines, not repeated: {cycle}");
    // One open-circuit line per service and opening, though every source of
    // both categories failed and later cycles find the circuits open.
    let opened = log.lines().filter(|l| l.contains("circuit for") && l.contains("is open")).count();
    assert_eq!(opened, 2, "open-circuit lines (one per service):\n{log}");
}
