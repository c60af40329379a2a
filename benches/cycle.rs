//! The speed benchmark: `cargo bench --bench cycle`.
//!
//! Two modes, both printing Markdown tables (the source of docs/PERFORMANCE.md):
//!
//! * default — for each dataset scale (`--scales 1,10,100`): the core's
//!   per-stage times in process (parse, and each step of
//!   `cycle::compute_category` timed here: basis, views, variations,
//!   statistics, statistics JSON; Redis write), the whole offline cycle
//!   (`horde-hydrator once --dump`, a fresh process each run) with its peak
//!   RSS, and the reference's compute time on the same dataset
//!   (`oracle.sh DATASET --timing`) with the ratio, all in the same run;
//! * `--latency` — the daemon (`run`) against a real redis-server, x1: the
//!   time from publishing `text_generation` on `P:invalidate` to the fresh
//!   entry in Redis (p50, p99 over `--invalidations` 50), and the daemon's
//!   idle CPU and RSS between cycles;
//! * `--memory` — the daemon (`run`) against a real redis-server on the
//!   datasets of `--scales` (default 100), `--cycles` scheduled cycles
//!   (default 3) `--interval` seconds apart (default 10): its RSS sampled
//!   from /proc every 5 ms, the peak (VmHWM) and the RSS between cycles
//!   (1.5 s after each cycle's log line), against the entries' own size (the
//!   sum of the values' lengths in Redis). `HORDE_BENCH_BIN` runs another
//!   build of the daemon instead (e.g. the one before a change);
//! * `--read` — the read API (issue 15) of the daemon (`run`, x1, real
//!   redis-server): latency p50/p99 of `GET` of the text deletion-risk entry
//!   over one keep-alive connection (`--read-requests` 2000), requests per
//!   second over 16 keep-alive connections (`--read-seconds` 5), gzip off
//!   and on; and, when the reference's service can run
//!   (`../shared/tools/reference_service.sh`, on the same Redis), the median
//!   of 50 keep-alive GETs of the same entry from each, in alternating
//!   blocks, with the same client, and the ratio.
//!
//! Datasets come from `gen_dataset.py --seed 7 --scale N`, made once under
//! `target/bench-data/xN` unless `HORDE_BENCH_DATA` names a directory that
//! holds `xN/`. The tools directory (gen_dataset.py, oracle.sh, compare.py)
//! is `../shared/tools` from the repository, or `HORDE_TOOLS_DIR`.
//! Missing tools degrade to a message: no reference without oracle.sh, no
//! Redis stages without `redis-server` on the PATH.
//!
//! Times are medians over repeated runs; the machine is shared, so only
//! ratios measured within one run mean anything. Nothing here asserts a time.

use horde_hydrator::analytics::stats;
use horde_hydrator::category::Category;
use horde_hydrator::cycle::{self, CategoryInputs, ComputedEntry, RiskBasis};
use horde_hydrator::input::horde::BaseNames;
use horde_hydrator::input::horde::{parse_stats, parse_status};
use horde_hydrator::input::reference::parse_reference;
use horde_hydrator::input::source::SourceId;
use horde_hydrator::keys::EntryKey;
use horde_hydrator::output;
use horde_hydrator::settings::AnalysisSettings;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

const BIN: &str = env!("CARGO_BIN_EXE_horde-hydrator");
const SEED: u32 = 7;
const PREFIX: &str = "bench";

/// What the command line asked for.
#[derive(Debug)]
struct Options {
    scales: Vec<u32>,
    /// Repetitions per scale; `None`: 15 at x1, 5 at x10, 3 above.
    runs: Option<usize>,
    /// Run the reference at x100 too (minutes).
    reference_x100: bool,
    /// Runs of the reference per scale (its median is the ratio's base).
    reference_runs: Option<usize>,
    no_reference: bool,
    latency: bool,
    invalidations: usize,
    /// Seconds the idle CPU is sampled over.
    idle_seconds: u64,
    /// `hydration.invalidation_debounce_ms` for the latency run; `None`: the default.
    debounce_ms: Option<u64>,
    memory: bool,
    /// Scales were given on the command line (the memory mode's default is x100 only).
    scales_given: bool,
    /// Scheduled cycles the memory run watches.
    cycles: usize,
    /// `hydration.interval_seconds` of the memory run.
    interval_seconds: u64,
    read: bool,
    read_requests: usize,
    read_seconds: u64,
    /// GETs of each side in the comparison with the reference service.
    read_reference_gets: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: cargo bench --bench cycle -- [--scales 1,10,100] [--runs N] [--reference-runs N] [--reference-x100] [--no-reference]\n\
         \x20      cargo bench --bench cycle -- --latency [--invalidations 50] [--idle-seconds 10] [--debounce-ms MS]\n\
         \x20      cargo bench --bench cycle -- --memory [--scales 100] [--cycles 3] [--interval 10]\n\
         \x20      cargo bench --bench cycle -- --read [--read-requests 2000] [--read-seconds 5] [--read-reference-gets 50]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        scales: vec![1, 10, 100],
        runs: None,
        reference_x100: false,
        reference_runs: None,
        no_reference: false,
        latency: false,
        invalidations: 50,
        idle_seconds: 10,
        debounce_ms: None,
        memory: false,
        scales_given: false,
        cycles: 3,
        interval_seconds: 10,
        read: false,
        read_requests: 2000,
        read_seconds: 5,
        read_reference_gets: 50,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--scales" => {
                o.scales = value().split(',').map(|s| s.trim().parse().unwrap_or_else(|_| usage())).collect();
                o.scales.sort_unstable();
                o.scales_given = true;
            }
            "--runs" => o.runs = Some(value().parse().unwrap_or_else(|_| usage())),
            "--reference-x100" => o.reference_x100 = true,
            "--reference-runs" => o.reference_runs = Some(value().parse().unwrap_or_else(|_| usage())),
            "--no-reference" => o.no_reference = true,
            "--latency" => o.latency = true,
            "--invalidations" => o.invalidations = value().parse().unwrap_or_else(|_| usage()),
            "--idle-seconds" => o.idle_seconds = value().parse().unwrap_or_else(|_| usage()),
            "--debounce-ms" => o.debounce_ms = Some(value().parse().unwrap_or_else(|_| usage())),
            "--memory" => o.memory = true,
            "--cycles" => o.cycles = value().parse().unwrap_or_else(|_| usage()),
            "--interval" => o.interval_seconds = value().parse().unwrap_or_else(|_| usage()),
            "--read" => o.read = true,
            "--read-requests" => o.read_requests = value().parse().unwrap_or_else(|_| usage()),
            "--read-seconds" => o.read_seconds = value().parse().unwrap_or_else(|_| usage()),
            "--read-reference-gets" => o.read_reference_gets = value().parse().unwrap_or_else(|_| usage()),
            "--bench" => {} // what `cargo bench` passes to every target
            "-h" | "--help" => usage(),
            other if other.starts_with('-') => usage(),
            _ => {} // a name filter from `cargo bench NAME`: ignored
        }
    }
    o
}

fn main() {
    let options = options();
    let result = if options.read {
        read_api(&options)
    } else if options.latency {
        latency(&options)
    } else if options.memory {
        memory(&options)
    } else {
        stages_and_cycles(&options)
    };
    if let Err(e) = result {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------
// Paths and datasets.
// ---------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tools_dir() -> PathBuf {
    std::env::var_os("HORDE_TOOLS_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared/tools"))
}

/// The dataset of `scale`, generated (seed 7) when it is not there yet.
fn dataset(scale: u32) -> Result<PathBuf, Error> {
    let root = std::env::var_os("HORDE_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/bench-data"));
    let dir = root.join(format!("x{scale}"));
    if dir.join("model_reference/text_generation.json").is_file() {
        return Ok(dir);
    }
    let generator = tools_dir().join("gen_dataset.py");
    if !generator.is_file() {
        return Err(format!(
            "no dataset at {} and no generator at {} (set HORDE_BENCH_DATA or HORDE_TOOLS_DIR)",
            dir.display(),
            generator.display()
        )
        .into());
    }
    eprintln!("making dataset x{scale} in {} ...", dir.display());
    let status = Command::new("python3")
        .arg(&generator)
        .arg(&dir)
        .args(["--seed", &SEED.to_string(), "--scale", &scale.to_string()])
        .status()?;
    if !status.success() {
        return Err(format!("gen_dataset.py failed for x{scale}: {status}").into());
    }
    Ok(dir)
}

/// The six source files of a dataset, read into memory.
struct Sources {
    files: Vec<(Category, [Vec<u8>; 3])>,
}

fn read_sources(dir: &Path) -> Result<Sources, Error> {
    let read = |p: PathBuf| std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()));
    let mut files = Vec::new();
    for category in Category::ALL {
        files.push((
            category,
            [
                read(dir.join("model_reference").join(SourceId::Reference(category).file_name()))?,
                read(dir.join("horde").join(SourceId::Status(category).file_name()))?,
                read(dir.join("horde").join(SourceId::Stats(category).file_name()))?,
            ],
        ));
    }
    Ok(Sources { files })
}

// ---------------------------------------------------------------------------
// Statistics of repeated measurements.
// ---------------------------------------------------------------------------

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

/// The `q` quantile (nearest rank) of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

// ---------------------------------------------------------------------------
// A throwaway redis-server.
// ---------------------------------------------------------------------------

/// A redis-server on a free loopback port, data in a temp dir; stopped on drop.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// `None` (with a message) when redis-server is not installed.
    fn start() -> Result<Option<RedisServer>, Error> {
        let Some(exe) = find_on_path("redis-server") else {
            eprintln!("redis-server is not installed: Redis stages skipped");
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(exe)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = RedisServer { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = server.connect() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return Ok(Some(server));
                }
            }
            if Instant::now() > deadline {
                return Err("redis-server did not answer within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The entries written in one MULTI/EXEC of SETEX commands: the Redis side
/// of a store (the daemon's fenced script does the same SETEXs, plus its
/// lease and never-backwards checks, in one EVAL).
fn redis_write(conn: &mut redis::Connection, entries: &[ComputedEntry]) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for e in entries {
        pipe.cmd("SETEX").arg(format!("{PREFIX}:{}", e.key)).arg(300).arg(e.json.as_bytes()).ignore();
    }
    pipe.query::<()>(conn)
}

// ---------------------------------------------------------------------------
// Mode 1: per-stage times, whole offline cycles, the reference.
// ---------------------------------------------------------------------------

/// Where one category's computation spends its time, step by step of
/// [`cycle::compute_category`] (run here one after the other; the daemon
/// runs the statistics beside the deletion-risk views).
#[derive(Debug, Clone, Copy, Default)]
struct StageTimes {
    /// Horde indexes (status and stats by name, base names of Horde names)
    /// and the per-record facts ([`RiskBasis`]).
    basis: Duration,
    /// The ungrouped and grouped deletion-risk views: merge, flags and
    /// grouping, written to JSON model by model.
    views: Duration,
    /// The text view with backend variations (its own merge), written.
    variations: Duration,
    /// Both statistics entries, computed (not serialised).
    statistics: Duration,
    /// The statistics entries' JSON.
    serialise: Duration,
}

impl StageTimes {
    fn total(&self) -> Duration {
        self.basis + self.views + self.variations + self.statistics + self.serialise
    }
}

/// One in-process run's stage times (both categories summed).
#[derive(Debug, Default, Clone, Copy)]
struct InProcess {
    parse: Duration,
    stages: StageTimes,
    redis: Option<Duration>,
}

/// Time since `*last`, which moves on to now.
fn lap(last: &mut Instant) -> Duration {
    let now = Instant::now();
    let spent = now - *last;
    *last = now;
    spent
}

/// The steps of [`cycle::compute_category`], each timed; the statistics
/// computed and serialised apart to time both.
fn compute_timed(
    category: Category,
    inputs: &CategoryInputs,
    settings: &AnalysisSettings,
    times: &mut StageTimes,
) -> Vec<ComputedEntry> {
    let mut last = Instant::now();
    let mut base_names = BaseNames::new();
    let basis = RiskBasis::new(category, inputs, settings, &mut base_names);
    times.basis += lap(&mut last);
    let mut entries = Vec::from(cycle::ungrouped_and_grouped(&basis, &mut base_names, settings));
    times.views += lap(&mut last);
    entries.extend(cycle::variations_entry(&basis, settings));
    times.variations += lap(&mut last);
    for grouped in [false, true] {
        let value = stats::statistics(category, &inputs.reference, grouped, 1_700_000_000);
        times.statistics += lap(&mut last);
        let json = output::stats::to_json(&value);
        times.serialise += lap(&mut last);
        entries.push(ComputedEntry {
            key: EntryKey::stats(category, grouped),
            json: json.into(),
            models: value.total_models,
            at_risk: None,
            critical: None,
        });
    }
    entries
}

fn in_process_run(sources: &Sources, redis: Option<&mut redis::Connection>) -> Result<InProcess, Error> {
    let settings = AnalysisSettings::default();
    let mut run = InProcess::default();
    let mut entries = Vec::new();
    for (category, [reference, status, stats]) in &sources.files {
        let started = Instant::now();
        let inputs = CategoryInputs {
            reference: parse_reference(reference)?,
            status: parse_status(status)?,
            stats: parse_stats(stats)?,
        };
        run.parse += started.elapsed();
        entries.extend(compute_timed(*category, &inputs, &settings, &mut run.stages));
    }
    if entries.len() != 9 {
        return Err(format!("expected 9 entries, computed {}", entries.len()).into());
    }
    if let Some(conn) = redis {
        let started = Instant::now();
        redis_write(conn, &entries)?;
        run.redis = Some(started.elapsed());
    }
    Ok(run)
}

/// One whole offline cycle in a fresh process: wall time and peak RSS.
struct CycleRun {
    wall: Duration,
    peak_rss_kb: i64,
}

/// `horde-hydrator --config CONFIG once --dump DUMP`, waited for with
/// wait4(2) so that the child's rusage (peak RSS) is read.
fn offline_cycle(config: &Path, dump: &Path) -> Result<CycleRun, Error> {
    let started = Instant::now();
    let child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("once")
        .arg("--dump")
        .arg(dump)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unreaped child; status and usage are valid out-pointers.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if reaped != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()).into());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(
            format!("`once --dump` failed (wait status {status}); config {}", config.display()).into()
        );
    }
    Ok(CycleRun { wall, peak_rss_kb: usage.ru_maxrss })
}

/// An offline config reading `dataset` through file:// URLs.
fn offline_config(dir: &Path, dataset: &Path) -> Result<PathBuf, Error> {
    let dataset = dataset.canonicalize()?;
    let path = dir.join("offline.toml");
    std::fs::write(
        &path,
        format!(
            "[hydration]\nstartup_delay_seconds = 0\n\n[redis]\nenabled = false\n\n\
             [horde]\napi_url = \"file://{}\"\n\n[model_reference]\nurl = \"file://{}\"\n",
            dataset.join("horde").display(),
            dataset.join("model_reference").display()
        ),
    )?;
    Ok(path)
}

/// The reference's compute time on `dataset` (`oracle.sh DATASET --timing`),
/// run on a view of the dataset in `dir` so that its `expected/` lands there.
fn reference_time(dir: &Path, dataset: &Path) -> Result<Option<(Duration, PathBuf)>, Error> {
    let oracle = tools_dir().join("oracle.sh");
    if !oracle.is_file() {
        eprintln!("no reference ({} not found; set HORDE_TOOLS_DIR)", oracle.display());
        return Ok(None);
    }
    let view = dir.join("reference");
    std::fs::create_dir_all(&view)?;
    for sub in ["model_reference", "horde"] {
        let link = view.join(sub);
        if !link.exists() {
            std::os::unix::fs::symlink(dataset.canonicalize()?.join(sub), &link)?;
        }
    }
    let out = Command::new("bash").arg(&oracle).arg(&view).arg("--timing").output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        eprintln!("reference failed ({}): {}", out.status, stderr.trim());
        return Ok(None);
    }
    let ms = stderr
        .lines()
        .find_map(|l| l.strip_prefix("reference cycle compute: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| format!("no timing line in the reference's output: {stderr}"))?;
    Ok(Some((Duration::from_secs_f64(ms / 1000.0), view.join("expected"))))
}

/// compare.py's verdict on our dump against the reference's output.
fn parity(expected: &Path, dump: &Path) -> String {
    let compare = tools_dir().join("compare.py");
    match Command::new("python3").arg(&compare).arg(expected).arg("--dir").arg(dump).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").trim().to_string(),
        Err(e) => format!("compare.py not run: {e}"),
    }
}

fn stages_and_cycles(options: &Options) -> Result<(), Error> {
    let redis = RedisServer::start()?;
    let mut report = String::new();
    writeln!(report, "| dataset | stage | time (median) | ratio |")?;
    writeln!(report, "|---|---|---:|---:|")?;
    let mut notes = Vec::new();
    for &scale in &options.scales {
        let data = dataset(scale)?;
        let runs = options.runs.unwrap_or(match scale {
            1 => 15,
            2..=10 => 5,
            _ => 3,
        });
        let work = tempfile::tempdir()?;

        // The whole offline cycle, fresh processes. First, before this scale's
        // in-process runs: a child's `ru_maxrss` counts the memory of the
        // process that spawned it (the kernel carries the spawner's peak
        // across `exec`), so the cycles must be started while this process is
        // still small (scales run in ascending order for the same reason).
        // Measured the other way round, x100 read 593 MB where GNU time says
        // 280 MB for the same binary.
        //
        // The reference runs between blocks of our cycles (interleaved), so
        // that both see the same load: on a shared machine one run of the
        // reference moves by ±30 % within an hour (x1: 289-516 ms), and a
        // busy minute in only one of the two moved the ratio by a third.
        let config = offline_config(work.path(), &data)?;
        let dump = work.path().join("dump");
        let with_reference = !options.no_reference && (scale < 100 || options.reference_x100);
        if !with_reference {
            notes.push(format!(
                "x{scale}: reference not run (pass --reference-x100 for x100; it takes minutes)"
            ));
        }
        let reference_runs = if with_reference {
            options.reference_runs.unwrap_or(if scale >= 100 { 1 } else { 3 }).max(1)
        } else {
            0
        };
        let blocks = reference_runs.max(1);
        let mut cycles = Vec::with_capacity(runs);
        let mut reference_times = Vec::with_capacity(reference_runs);
        let mut expected = None;
        let mut reference_failed = false;
        for block in 0..blocks {
            for _ in runs * block / blocks..runs * (block + 1) / blocks {
                cycles.push(offline_cycle(&config, &dump)?);
            }
            // Once the reference could not run, it is not asked again.
            if block < reference_runs && !reference_failed {
                match reference_time(work.path(), &data)? {
                    Some((t, e)) => {
                        reference_times.push(t);
                        expected = Some(e);
                    }
                    None => reference_failed = true,
                }
            }
        }
        let runs_of_reference = reference_times.len();
        let reference = expected.map(|e| (median(reference_times), e, runs_of_reference));
        let cycle = median(cycles.iter().map(|c| c.wall).collect());
        let peak_rss_mb = cycles.iter().map(|c| c.peak_rss_kb).max().unwrap_or(0) as f64 / 1024.0;

        // In process, stage by stage.
        let sources = read_sources(&data)?;
        let mut conn = redis.as_ref().map(RedisServer::connect).transpose()?;
        let mut in_process = Vec::with_capacity(runs);
        for _ in 0..runs {
            in_process.push(in_process_run(&sources, conn.as_mut())?);
            // As the daemon does after each cycle (actors/hydrator.rs): freed
            // memory goes back to the OS, so every run touches fresh pages.
            // SAFETY: malloc_trim only walks the allocator's own free lists.
            unsafe { libc::malloc_trim(0) };
        }
        drop(sources);
        let med = |f: &dyn Fn(&InProcess) -> Duration| median(in_process.iter().map(f).collect());

        if let Some((_, expected, _)) = &reference {
            notes.push(format!(
                "x{scale}: parity of the `once --dump` output with the reference's: {}",
                parity(expected, &dump)
            ));
        }

        let x = format!("x{scale}");
        let stage_rows: [(&str, Duration); 6] = [
            ("parse", med(&|r| r.parse)),
            ("basis (Horde index, record facts)", med(&|r| r.stages.basis)),
            ("ungrouped + grouped views (merge, risk, grouping, JSON)", med(&|r| r.stages.views)),
            ("text view with backend variations", med(&|r| r.stages.variations)),
            ("statistics", med(&|r| r.stages.statistics)),
            ("statistics JSON", med(&|r| r.stages.serialise)),
        ];
        for (stage, t) in stage_rows {
            writeln!(report, "| {x} | {stage} | {} | |", ms(t))?;
        }
        let in_process_total = med(&|r| r.parse + r.stages.total());
        writeln!(report, "| {x} | sum of the stages above (one thread) | {} | |", ms(in_process_total))?;
        match redis {
            Some(_) => writeln!(
                report,
                "| {x} | Redis write (MULTI/EXEC of 9 SETEX) | {} | |",
                ms(med(&|r| r.redis.unwrap_or_default()))
            )?,
            None => writeln!(report, "| {x} | Redis write | skipped (no redis-server) | |")?,
        }
        let ratio = |r: Duration| format!("{:.1}×", r.as_secs_f64() / cycle.as_secs_f64());
        writeln!(
            report,
            "| {x} | **whole offline cycle** (`once --dump`, fresh process, {runs} runs) | **{}** | {} |",
            ms(cycle),
            reference.as_ref().map(|(r, _, _)| format!("**{}**", ratio(*r))).unwrap_or_else(|| "—".into())
        )?;
        writeln!(report, "| {x} | peak RSS of `once --dump` | {peak_rss_mb:.0} MB | |")?;
        match &reference {
            Some((r, _, n)) => writeln!(
                report,
                "| {x} | reference compute (oracle.sh --timing, median of {n} run{}, between the cycles) | {} | 1× |",
                if *n == 1 { "" } else { "s" },
                ms(*r)
            )?,
            None => writeln!(report, "| {x} | reference compute | not run | |")?,
        }
        eprintln!("x{scale} done");
    }
    println!("{report}");
    for n in notes {
        println!("- {n}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Mode 2: invalidation latency and idle cost of the daemon.
// ---------------------------------------------------------------------------

/// The daemon process; killed on drop.
struct Daemon(Child);

impl Daemon {
    /// `BIN --config CONFIG run`, logging at `rust_log` into the file `log`.
    fn start(bin: &Path, config: &Path, rust_log: &str, log: &Path) -> Result<Daemon, Error> {
        let log = std::fs::File::create(log)?;
        Ok(Daemon(
            Command::new(bin)
                .arg("--config")
                .arg(config)
                .arg("run")
                .env("RUST_LOG", rust_log)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?,
        ))
    }
}

/// DIR/daemon.toml: a daemon that hydrates at once from DATA's `horde/` and
/// `model_reference/` (file:// sources) into `redis`. `hydration` holds the
/// [hydration] lines after the start-up delay; `more` what follows [redis]'s
/// url (more keys, or further sections).
fn daemon_config(
    dir: &Path,
    data: &Path,
    redis: &RedisServer,
    hydration: &str,
    more: &str,
) -> Result<PathBuf, Error> {
    let config = dir.join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "[hydration]\nstartup_delay_seconds = 0\n{hydration}\n\
             [redis]\nenabled = true\nurl = \"{}\"\n{more}\n\
             [horde]\napi_url = \"file://{}\"\n\n[model_reference]\nurl = \"file://{}\"\n",
            redis.url(),
            data.join("horde").display(),
            data.join("model_reference").display()
        ),
    )?;
    Ok(config)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM first: the daemon's own clean shutdown.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(6);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// utime + stime of a process, in clock ticks (/proc/PID/stat fields 14, 15).
fn cpu_ticks(pid: u32) -> Result<u64, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("odd /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field N is fields[N - 3].
    let utime: u64 = fields.get(11).ok_or("short stat")?.parse()?;
    let stime: u64 = fields.get(12).ok_or("short stat")?.parse()?;
    Ok(utime + stime)
}

/// A `/proc/PID/status` line's value in kB (VmRSS, VmHWM).
fn status_kb(pid: u32, field: &str) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status").into())
}

fn latency(options: &Options) -> Result<(), Error> {
    let Some(redis) = RedisServer::start()? else {
        return Ok(());
    };
    let data = dataset(1)?;
    let work = tempfile::tempdir()?;
    // A private copy of the x1 sources: the text reference is rewritten before
    // every invalidation.
    for sub in ["model_reference", "horde"] {
        std::fs::create_dir_all(work.path().join(sub))?;
        for f in std::fs::read_dir(data.join(sub))? {
            let f = f?;
            std::fs::copy(f.path(), work.path().join(sub).join(f.file_name()))?;
        }
    }
    let text_file = work.path().join("model_reference/text_generation.json");
    // The first record's baseline becomes a marker unique to each
    // invalidation; the fresh entry is the one that carries it.
    let mut reference: serde_json::Value = serde_json::from_slice(&std::fs::read(&text_file)?)?;
    let first = reference
        .as_object_mut()
        .and_then(|m| m.values_mut().next())
        .and_then(|r| r.as_object_mut())
        .ok_or("the text reference has no record")?;
    first.insert("baseline".into(), serde_json::Value::String("bench-marker-0000".into()));
    let template = serde_json::to_string(&reference)?;
    let write_variant = |i: usize| -> Result<String, Error> {
        let marker = format!("bench-marker-{i:04}");
        let tmp = text_file.with_extension("tmp");
        std::fs::write(&tmp, template.replace("bench-marker-0000", &marker))?;
        std::fs::rename(&tmp, &text_file)?;
        Ok(marker)
    };
    write_variant(0)?;

    let debounce =
        options.debounce_ms.map(|d| format!("invalidation_debounce_ms = {d}\n")).unwrap_or_default();
    let hydration = format!("interval_seconds = 600\n{debounce}");
    let prefix = format!("key_prefix = \"{PREFIX}\"\n");
    let config = daemon_config(work.path(), work.path(), &redis, &hydration, &prefix)?;
    let daemon = Daemon::start(Path::new(BIN), &config, "warn", &work.path().join("daemon.log"))?;
    let pid = daemon.0.id();

    let key = format!("{PREFIX}:deletion_risk:text_generation:grouped=false");
    let mut conn = redis.connect()?;
    redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg("K$").query::<()>(&mut conn)?;
    let mut events = redis.connect()?;
    let mut pubsub = events.as_pubsub();
    pubsub.subscribe(format!("__keyspace@0__:{key}"))?;
    pubsub.set_read_timeout(Some(Duration::from_millis(50)))?;
    let has_marker = |conn: &mut redis::Connection, marker: &str| -> Result<bool, Error> {
        let v: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query(conn)?;
        Ok(v.is_some_and(|v| v.windows(marker.len()).any(|w| w == marker.as_bytes())))
    };
    // Waits for a `set` event on the key that brings `marker`.
    let mut wait_for = |conn: &mut redis::Connection, marker: &str, limit: Duration| -> Result<(), Error> {
        let deadline = Instant::now() + limit;
        loop {
            if Instant::now() > deadline {
                return Err(format!("no entry with {marker} within {limit:?} (see the daemon log)").into());
            }
            match pubsub.get_message() {
                Ok(msg) => {
                    let event: String = msg.get_payload().unwrap_or_default();
                    if event == "set" && has_marker(conn, marker)? {
                        return Ok(());
                    }
                }
                Err(e) if e.is_timeout() => {
                    // A `set` that came before the subscription: check once in a while.
                    if has_marker(conn, marker)? {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    wait_for(&mut conn, "bench-marker-0000", Duration::from_secs(60))?;
    let keys: usize = redis::cmd("DBSIZE").query(&mut conn)?;

    // Idle between cycles.
    std::thread::sleep(Duration::from_secs(1));
    let ticks_per_s = // SAFETY: sysconf has no preconditions.
        unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let (t0, c0) = (Instant::now(), cpu_ticks(pid)?);
    std::thread::sleep(Duration::from_secs(options.idle_seconds));
    let (t1, c1) = (Instant::now(), cpu_ticks(pid)?);
    let idle_cpu = (c1 - c0) as f64 / ticks_per_s / (t1 - t0).as_secs_f64() * 100.0;
    let idle_rss = status_kb(pid, "VmRSS")?;

    // Invalidations.
    let mut latencies = Vec::with_capacity(options.invalidations);
    for i in 1..=options.invalidations {
        let marker = write_variant(i)?;
        let started = Instant::now();
        redis::cmd("PUBLISH")
            .arg(format!("{PREFIX}:invalidate"))
            .arg("text_generation")
            .query::<i64>(&mut conn)?;
        wait_for(&mut conn, &marker, Duration::from_secs(30))?;
        latencies.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    latencies.sort();
    // Idle again (each cycle ends with malloc_trim; the last one may still run).
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = status_kb(pid, "VmRSS")?;
    let hwm = status_kb(pid, "VmHWM")?;
    drop(daemon);

    let n = latencies.len();
    println!("| measure (x1, daemon `run`, real redis-server) | value |");
    println!("|---|---:|");
    println!("| keys in Redis after the first cycle | {keys} |");
    println!(
        "| invalidation → fresh `text_generation` entry, p50 ({n} invalidations, debounce {} ms) | {} |",
        options.debounce_ms.map(|d| d.to_string()).unwrap_or_else(|| "default".into()),
        ms(quantile(&latencies, 0.5))
    );
    println!("| same, p99 | {} |", ms(quantile(&latencies, 0.99)));
    println!("| same, min / max | {} / {} |", ms(latencies[0]), ms(latencies[n.saturating_sub(1)]));
    println!("| idle CPU between cycles ({} s sampled) | {idle_cpu:.2} % |", options.idle_seconds);
    println!("| RSS idle after the first cycle | {:.1} MB |", idle_rss as f64 / 1024.0);
    println!(
        "| RSS idle after the invalidations (+2 s) / peak (VmHWM) | {:.1} MB / {:.1} MB |",
        rss_after as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Mode 3: the daemon's memory over cycles, with Redis.
// ---------------------------------------------------------------------------

/// What one memory run saw.
struct MemoryRun {
    /// VmHWM at the end: the peak over the whole run.
    peak_kb: u64,
    /// The highest RSS sampled during each cycle (from its start to its log line).
    cycle_peaks_kb: Vec<u64>,
    /// RSS 1.5 s after each cycle's log line.
    between_kb: Vec<u64>,
    /// The sum of the entries' lengths in Redis, and how many there are.
    entries_bytes: u64,
    entries: usize,
    cycle_lines: Vec<String>,
}

fn memory_run(scale: u32, options: &Options) -> Result<MemoryRun, Error> {
    let Some(redis) = RedisServer::start()? else {
        return Err("the memory mode needs redis-server on the PATH".into());
    };
    let data = dataset(scale)?;
    let work = tempfile::tempdir()?;
    let hydration = format!("interval_seconds = {}\n", options.interval_seconds);
    let prefix = format!("key_prefix = \"{PREFIX}\"\n");
    let config = daemon_config(work.path(), &data, &redis, &hydration, &prefix)?;
    let log_path = work.path().join("daemon.log");
    // HORDE_BENCH_BIN: another build of the daemon (e.g. the one before a change).
    let bin = std::env::var_os("HORDE_BENCH_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(BIN));
    let mut daemon = Daemon::start(&bin, &config, "info", &log_path)?;
    let pid = daemon.0.id();
    // The cycles' log lines ("… cycle ok in N ms: …"), as they appear.
    let cycle_lines = || -> Vec<String> {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("] cycle "))
            .map(str::to_string)
            .collect()
    };
    let mut cycle_peaks_kb = Vec::new();
    let mut between_kb = Vec::new();
    let limit = Duration::from_secs(options.interval_seconds.max(1) * 3 + 120);
    for cycle in 0..options.cycles {
        let deadline = Instant::now() + limit;
        let mut peak = 0;
        while cycle_lines().len() <= cycle {
            if Instant::now() > deadline {
                return Err(format!(
                    "no log line for cycle {} within {limit:?}: {}",
                    cycle + 1,
                    log_path.display()
                )
                .into());
            }
            if let Ok(Some(status)) = daemon.0.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("the daemon exited ({status}):\n{log}").into());
            }
            peak = peak.max(status_kb(pid, "VmRSS")?);
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(1500));
        between_kb.push(status_kb(pid, "VmRSS")?);
        cycle_peaks_kb.push(peak.max(*between_kb.last().unwrap_or(&0)));
    }
    let peak_kb = status_kb(pid, "VmHWM")?;
    let mut conn = redis.connect()?;
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{PREFIX}:*")).query(&mut conn)?;
    let mut entries_bytes = 0;
    let mut entries = 0;
    // Every key but the daemon's own bookkeeping (`P:hydrator:…`: the lease, write times).
    let own = format!("{PREFIX}:hydrator:");
    for key in keys.iter().filter(|k| !k.starts_with(&own)) {
        let len: u64 = redis::cmd("STRLEN").arg(key).query(&mut conn)?;
        entries_bytes += len;
        entries += 1;
    }
    drop(daemon);
    Ok(MemoryRun { peak_kb, cycle_peaks_kb, between_kb, entries_bytes, entries, cycle_lines: cycle_lines() })
}

fn memory(options: &Options) -> Result<(), Error> {
    let scales = if options.scales_given { options.scales.clone() } else { vec![100] };
    let mb = |kb: u64| format!("{:.0} MB", kb as f64 / 1024.0);
    println!("| dataset | entries (total size) | peak RSS (VmHWM) | peak per cycle | RSS between cycles | between − entries |");
    println!("|---|---:|---:|---|---|---:|");
    let mut lines = Vec::new();
    for scale in scales {
        let run = memory_run(scale, options)?;
        let max_between = run.between_kb.iter().copied().max().unwrap_or(0);
        let list = |xs: &[u64]| xs.iter().map(|&k| mb(k)).collect::<Vec<_>>().join(", ");
        println!(
            "| x{scale} | {} ({:.1} MB) | {} | {} | {} | {:.0} MB |",
            run.entries,
            run.entries_bytes as f64 / 1048576.0,
            mb(run.peak_kb),
            list(&run.cycle_peaks_kb),
            list(&run.between_kb),
            (max_between as f64 * 1024.0 - run.entries_bytes as f64) / 1048576.0
        );
        lines.extend(run.cycle_lines.into_iter().map(|l| format!("x{scale}: {l}")));
    }
    println!();
    println!(
        "(MB = MiB; interval {} s, {} cycles; the daemon's cycle lines:)",
        options.interval_seconds, options.cycles
    );
    for l in lines {
        println!("- {l}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Mode 4: the read API (issue 15).
// ---------------------------------------------------------------------------

/// A keep-alive HTTP/1.1 client on one connection: enough for GETs whose
/// answers carry a `Content-Length` (the daemon's and the reference's do).
struct KeepAlive {
    stream: std::io::BufReader<std::net::TcpStream>,
    host: String,
}

impl KeepAlive {
    fn connect(addr: &str) -> Result<KeepAlive, Error> {
        let stream = std::net::TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(KeepAlive { stream: std::io::BufReader::with_capacity(1 << 16, stream), host: addr.to_string() })
    }

    /// `GET path`; the status and the body's length (the body is read and dropped).
    fn get(&mut self, path: &str, gzip: bool) -> Result<(u16, usize), Error> {
        use std::io::{BufRead, Read, Write};
        let accept = if gzip { "Accept-Encoding: gzip\r\n" } else { "" };
        // One write, one segment: the request is never split across wake-ups.
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{accept}\r\n", self.host);
        self.stream.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        self.stream.read_line(&mut line)?;
        let status: u16 =
            line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status line")?;
        let mut length = None;
        loop {
            line.clear();
            if self.stream.read_line(&mut line)? == 0 {
                return Err("connection closed".into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                if n.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                }
            }
        }
        let length = length.ok_or("no Content-Length")?;
        let mut left = length;
        let mut buf = [0u8; 1 << 16];
        while left > 0 {
            let n = self.stream.read(&mut buf[..left.min(1 << 16)])?;
            if n == 0 {
                return Err("connection closed in the body".into());
            }
            left -= n;
        }
        Ok((status, length))
    }
}

fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until `GET path` on `addr` answers 200.
fn wait_200(addr: &str, path: &str, limit: Duration, what: &str) -> Result<(), Error> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok((200, _)) = KeepAlive::connect(addr).and_then(|mut c| c.get(path, false)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not answer 200 on {path} within {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A process group started with `setsid`-like semantics (the reference's
/// script `exec`s uvicorn); SIGTERM to the group on drop.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group our own child leads.
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Milliseconds with three decimals (the read path is sub-millisecond).
fn ms3(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn read_api(options: &Options) -> Result<(), Error> {
    use std::os::unix::process::CommandExt;
    let Some(redis) = RedisServer::start()? else {
        return Ok(());
    };
    let data = dataset(1)?;
    let work = tempfile::tempdir()?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let http = format!("\n[http]\nbind = \"{addr}\"\n");
    let config = daemon_config(work.path(), &data, &redis, "interval_seconds = 3600\n", &http)?;
    let _daemon = Daemon::start(Path::new(BIN), &config, "warn", &work.path().join("daemon.log"))?;
    let path = "/api/model_references/statistics/text_generation/deletion-risk";
    wait_200(&addr, path, Duration::from_secs(60), "the daemon's read API")?;
    let (_, size) = KeepAlive::connect(&addr)?.get(path, false)?;
    let (_, gz_size) = KeepAlive::connect(&addr)?.get(path, true)?;

    println!("| read API, x1 (seed {SEED}), `GET {path}` | gzip off | gzip on |");
    println!("|---|---:|---:|");
    println!("| body | {:.0} KB | {:.0} KB |", size as f64 / 1024.0, gz_size as f64 / 1024.0);
    let mut rows: Vec<[String; 2]> = vec![Default::default(); 3];
    for (col, gzip) in [false, true].into_iter().enumerate() {
        let mut client = KeepAlive::connect(&addr)?;
        for _ in 0..50 {
            client.get(path, gzip)?; // warm: the gzip form is made on first need
        }
        let mut times = Vec::with_capacity(options.read_requests);
        for _ in 0..options.read_requests {
            let t = Instant::now();
            let (status, _) = client.get(path, gzip)?;
            times.push(t.elapsed());
            if status != 200 {
                return Err(format!("the daemon answered {status}").into());
            }
        }
        times.sort();
        rows[0][col] = ms3(quantile(&times, 0.5));
        rows[1][col] = ms3(quantile(&times, 0.99));
        // Throughput: 16 keep-alive connections, each in its own thread.
        let stop = Instant::now() + Duration::from_secs(options.read_seconds);
        let started = Instant::now();
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let addr = addr.clone();
                std::thread::spawn(move || -> Result<usize, String> {
                    let mut c = KeepAlive::connect(&addr).map_err(|e| e.to_string())?;
                    let mut n = 0;
                    while Instant::now() < stop {
                        match c.get(path, gzip) {
                            Ok((200, _)) => n += 1,
                            Ok((s, _)) => return Err(format!("status {s}")),
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                    Ok(n)
                })
            })
            .collect();
        let mut total = 0;
        for t in threads {
            total += t.join().map_err(|_| "a client thread panicked")??;
        }
        rows[2][col] = format!("{:.0}", total as f64 / started.elapsed().as_secs_f64());
    }
    println!(
        "| latency p50, one keep-alive connection ({} GETs) | {} | {} |",
        options.read_requests, rows[0][0], rows[0][1]
    );
    println!("| latency p99 | {} | {} |", rows[1][0], rows[1][1]);
    println!(
        "| requests/s, 16 keep-alive connections ({} s) | {} | {} |",
        options.read_seconds, rows[2][0], rows[2][1]
    );

    // Against the reference's own service on the same Redis, when it can run.
    let script = tools_dir().join("reference_service.sh");
    if !script.exists() {
        println!("\n(no {}: the comparison with the reference service is skipped)", script.display());
        return Ok(());
    }
    let ref_port = free_port()?;
    let ref_addr = format!("127.0.0.1:{ref_port}");
    let ref_log = std::fs::File::create(work.path().join("reference.log"))?;
    let mut cmd = Command::new(&script);
    cmd.arg(&data)
        .arg(redis.url())
        .arg(ref_port.to_string())
        .env("LOGURU_LEVEL", "WARNING")
        .stdout(Stdio::null())
        .stderr(ref_log)
        .process_group(0);
    let _reference = Group(cmd.spawn()?);
    if let Err(e) = wait_200(&ref_addr, path, Duration::from_secs(180), "the reference service") {
        println!("\n(the reference service did not start: {e}; see its log; comparison skipped)");
        return Ok(());
    }
    let n = options.read_reference_gets;
    let mut daemon = KeepAlive::connect(&addr)?;
    let mut reference = KeepAlive::connect(&ref_addr)?;
    let (mut d_times, mut r_times) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut r_size = 0;
    reference.get(path, false)?;
    // Blocks of 10 GETs from each side in turn, a pause after each block: the
    // reference's process frees its request's objects after answering, and
    // on two shared cores that work would otherwise land on the daemon's next
    // request. Each block starts with one untimed GET (both sides): the
    // first request after a pause pays for cold caches and a sleeping core.
    let block = 10;
    while d_times.len() < n {
        daemon.get(path, false)?;
        for _ in 0..block.min(n - d_times.len()) {
            let t = Instant::now();
            let (s, _) = daemon.get(path, false)?;
            d_times.push(t.elapsed());
            if s != 200 {
                return Err(format!("the daemon answered {s}").into());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        reference.get(path, false)?;
        for _ in 0..block.min(n - r_times.len()) {
            let t = Instant::now();
            let (s, len) = reference.get(path, false)?;
            r_times.push(t.elapsed());
            r_size = len;
            if s != 200 {
                return Err(format!("the reference service answered {s}").into());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (d, r) = (median(d_times), median(r_times));
    println!();
    println!(
        "| same entry, median of {n} keep-alive GETs each, in alternating blocks of {block} (+1 untimed), same client | value |"
    );
    println!("|---|---:|");
    println!("| the daemon's read API ({:.0} KB) | {} |", size as f64 / 1024.0, ms3(d));
    println!("| the reference's service, a Redis cache hit ({:.0} KB) | {} |", r_size as f64 / 1024.0, ms(r));
    println!("| ratio | {:.0}x |", r.as_secs_f64() / d.as_secs_f64());
    Ok(())
}
