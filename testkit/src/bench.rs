//! Benchmark reporting: each figure is printed with its baseline from the same run and the
//! ratio, as a readable line and as a tab-separated `BENCH` line that `./bench.sh` collects
//! into `docs/BENCHMARKS.md` (also appended to `$BENCH_RESULTS` when set).

use std::io::Write;

/// One measured figure against its baseline.
pub struct Figure<'a> {
    pub stage: &'a str,
    pub what: &'a str,
    pub value: f64,
    pub unit: &'a str,
    pub baseline_what: &'a str,
    pub baseline: f64,
    pub target: &'a str,
}

pub fn report(f: &Figure<'_>) {
    let ratio = if f.baseline > 0.0 {
        f.value / f.baseline
    } else {
        f64::NAN
    };
    println!(
        "{:<10} {:<52} {:>12.1} {:<8} vs {:<44} {:>12.1}  ratio {:>6.2}x  target: {}",
        f.stage, f.what, f.value, f.unit, f.baseline_what, f.baseline, ratio, f.target
    );
    let line = format!(
        "BENCH\t{}\t{}\t{:.1}\t{}\t{}\t{:.1}\t{:.2}\t{}\n",
        f.stage, f.what, f.value, f.unit, f.baseline_what, f.baseline, ratio, f.target
    );
    print!("{line}");
    if let Some(path) = std::env::var_os("BENCH_RESULTS") {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// Resident memory of a process, in MB (from /proc).
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// CPU time (user + system) a process has used so far, in seconds (from /proc).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

/// The cores this machine offers (1 when it cannot tell).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A connector binary with `--config cfg`, logging warnings only, its output discarded (a bench
/// measures it, nobody reads it); the caller adds its own arguments and spawns it.
pub fn quiet_connector(bin: &std::path::Path, cfg: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--config")
        .arg(cfg)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}
