//! Process metrics under the standard names every Prometheus client library uses
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, …), so stock dashboards and
//! alerts work unchanged.
//!
//! Rendered here from `/proc` (with `procfs`) at each scrape rather than through the `metrics`
//! crate, whose counters are integers: CPU time would advance in whole seconds and `rate()` over
//! a short window would be a staircase. Off Linux these lines are simply absent.

use std::fmt::Write;

/// One reading of the process's resources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub open_fds: u64,
    /// The soft descriptor limit (`ulimit -n`); 0 when unlimited.
    pub max_fds: u64,
    pub start_time_seconds: f64,
    pub threads: u64,
}

/// (name, type, help) of each line, in the order they are rendered.
const FAMILIES: [(&str, &str, &str); 7] = [
    (
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    ),
    (
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    ),
    (
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
    ),
    (
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
    ),
    (
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
    ),
    (
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    ),
    (
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
    ),
];

impl ProcessSample {
    /// Reads `/proc/self`; `None` where there is no `/proc` or it cannot be read.
    #[cfg(target_os = "linux")]
    pub fn read() -> Option<ProcessSample> {
        use procfs::process::{LimitValue, Process};
        use procfs::WithCurrentSystemInfo;

        let process = Process::myself().ok()?;
        let stat = process.stat().ok()?;
        let ticks = procfs::ticks_per_second() as f64;
        let boot = procfs::boot_time_secs().ok()? as f64;
        let max_fds = match process.limits().ok()?.max_open_files.soft_limit {
            LimitValue::Value(limit) => limit,
            LimitValue::Unlimited => 0,
        };
        Some(ProcessSample {
            cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
            resident_memory_bytes: stat.rss_bytes().get(),
            virtual_memory_bytes: stat.vsize,
            open_fds: process.fd_count().ok()? as u64,
            max_fds,
            start_time_seconds: boot + stat.starttime as f64 / ticks,
            threads: stat.num_threads.max(0) as u64,
        })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn read() -> Option<ProcessSample> {
        None
    }

    /// The sample in the Prometheus text format, with `# HELP` and `# TYPE` lines.
    pub fn render(&self) -> String {
        let values = [
            self.cpu_seconds,
            self.resident_memory_bytes as f64,
            self.virtual_memory_bytes as f64,
            self.open_fds as f64,
            self.max_fds as f64,
            self.start_time_seconds,
            self.threads as f64,
        ];
        let mut text = String::with_capacity(1024);
        for ((name, kind, help), value) in FAMILIES.iter().zip(values) {
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_keep_their_fraction() {
        let sample = ProcessSample {
            cpu_seconds: 347.0 / 100.0,
            start_time_seconds: 1_767_225_600.25,
            max_fds: 1024,
            ..ProcessSample::default()
        };
        let text = sample.render();
        assert!(
            text.contains("\nprocess_cpu_seconds_total 3.47\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
        assert!(text.contains("\nprocess_start_time_seconds 1767225600.25\n"));
        assert!(text.contains("\nprocess_max_fds 1024\n"));
        assert_eq!(text.matches("# TYPE ").count(), FAMILIES.len());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let sample = ProcessSample::read().expect("/proc/self is readable");
        assert!(sample.resident_memory_bytes > 0);
        assert!(sample.open_fds >= 3, "stdin, stdout, stderr");
        assert!(sample.threads >= 1);
        assert!(sample.start_time_seconds > 1e9);
    }
}
