//! Process and machine figures for `/v4/stats`: resident memory, memory limit, and CPU load
//! (whole machine and this process), read from `/proc` and the cgroup files on Linux.
//!
//! CPU loads are sampled in the background every few seconds (the reference caches them for
//! 30 s); both are fractions in [0, 1] of all cores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Latest CPU figures, stored as f64 bits so readers never lock.
#[derive(Default)]
pub struct CpuLoad {
    system: AtomicU64,
    process: AtomicU64,
}

impl CpuLoad {
    pub fn system(&self) -> f64 {
        f64::from_bits(self.system.load(Ordering::Relaxed))
    }
    pub fn process(&self) -> f64 {
        f64::from_bits(self.process.load(Ordering::Relaxed))
    }
    fn store(&self, system: f64, process: f64) {
        self.system
            .store(system.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
        self.process
            .store(process.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }
}

/// Logical CPUs.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> i64 {
    // /proc/self/statm: size resident shared text lib data dt (pages)
    let page = page_size();
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<i64>().ok())
        })
        .map(|pages| pages * page)
        .unwrap_or(0)
}

/// The most memory this process could use: the cgroup limit if one is set, else physical memory.
pub fn memory_limit_bytes() -> i64 {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .or_else(|| {
            std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes")
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
        });
    let physical = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<i64>().ok())
                })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0);
    match cgroup {
        Some(limit) if limit > 0 && (physical == 0 || limit < physical) => limit,
        _ => physical,
    }
}

fn page_size() -> i64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as i64 } else { 4096 }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as f64 } else { 100.0 }
}

/// (busy, total) jiffies of the whole machine.
fn machine_jiffies() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    let total: u64 = v.iter().take(8).sum();
    Some((total - idle, total))
}

/// CPU seconds this process has used (user + system).
fn process_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

/// Samples CPU load every `period` until the process exits.
pub fn spawn_sampler(load: std::sync::Arc<CpuLoad>, period: Duration) {
    std::thread::Builder::new()
        .name("cpu-sampler".into())
        .spawn(move || {
            let cores = cores() as f64;
            let mut last_machine = machine_jiffies();
            let mut last_process = process_cpu_seconds();
            let mut last_at = Instant::now();
            loop {
                std::thread::sleep(period);
                let machine = machine_jiffies();
                let process = process_cpu_seconds();
                let now = Instant::now();
                let system = match (last_machine, machine) {
                    (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                        (b1 - b0) as f64 / (t1 - t0) as f64
                    }
                    _ => 0.0,
                };
                let wall = now.duration_since(last_at).as_secs_f64();
                let proc_load = match (last_process, process) {
                    (Some(p0), Some(p1)) if wall > 0.0 => (p1 - p0) / wall / cores,
                    _ => 0.0,
                };
                load.store(system, proc_load);
                last_machine = machine;
                last_process = process;
                last_at = now;
            }
        })
        .expect("spawning the cpu sampler");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_plausible() {
        assert!(rss_bytes() > 1024 * 1024);
        assert!(memory_limit_bytes() >= rss_bytes());
        assert!(cores() >= 1);
        assert!(process_cpu_seconds().is_some());
        let (busy, total) = machine_jiffies().unwrap();
        assert!(busy <= total);
    }
}
