//! The daemon's own process figures (`process_*`, as every Prometheus
//! client names them), read through `procfs` at each scrape.

use procfs::WithCurrentSystemInfo as _;
use procfs::process::{LimitValue, Process};

use super::scrape::ProcessScrape;

/// This process's figures now; an error names what could not be read.
/// Blocking reads of `/proc`: call it off the async threads.
pub(crate) fn read() -> Result<ProcessScrape, String> {
    let me = Process::myself().map_err(|e| format!("/proc/self: {e}"))?;
    let stat = me.stat().map_err(|e| format!("/proc/self/stat: {e}"))?;
    let ticks = procfs::ticks_per_second() as f64;
    let boot = procfs::boot_time_secs().map_err(|e| format!("the boot time: {e}"))?;
    let open_fds = me.fd_count().map_err(|e| format!("/proc/self/fd: {e}"))?;
    let limits = me.limits().map_err(|e| format!("/proc/self/limits: {e}"))?;
    Ok(ProcessScrape {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_bytes: stat.rss_bytes().get(),
        virtual_bytes: stat.vsize,
        open_fds: open_fds as u64,
        max_fds: match limits.max_open_files.soft_limit {
            LimitValue::Value(n) => Some(n),
            LimitValue::Unlimited => None,
        },
        start_time_seconds: boot as f64 + stat.starttime as f64 / ticks,
        threads: u64::try_from(stat.num_threads).unwrap_or(0),
    })
}
