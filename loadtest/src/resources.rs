//! The generator's own resources: descriptor limit, CPU time, memory.

use std::time::Duration;

/// Descriptors kept free for stdio, the runtime, DNS, metrics scrapes and files.
pub const FD_HEADROOM: u64 = 64;

/// Why the requested connection count cannot run in this process.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    #[error(
        "{wanted} connections need about {needed} open files, but this process may hold at most \
         {hard} (RLIMIT_NOFILE hard limit; raising it needs privileges this environment may not \
         grant even to root). Use at most {fits} connections per process, or run several \
         generator processes (with different --source-addrs) side by side."
    )]
    TooMany {
        wanted: u64,
        needed: u64,
        hard: u64,
        fits: u64,
    },
    #[error("getrlimit/setrlimit failed: {0}")]
    Os(#[from] std::io::Error),
}

/// Raises the soft open-file limit as far as the hard limit allows and checks
/// that `connections` sockets (plus headroom) fit. Returns the new soft limit.
pub fn raise_fd_limit(connections: u64) -> Result<u64, FdLimitError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit with cur <= max.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    let hard = lim.rlim_max;
    let needed = connections + FD_HEADROOM;
    if needed > hard {
        return Err(FdLimitError::TooMany {
            wanted: connections,
            needed,
            hard,
            fits: hard.saturating_sub(FD_HEADROOM),
        });
    }
    Ok(lim.rlim_cur)
}

/// The hard RLIMIT_NOFILE: the most descriptors this process could ever hold.
pub fn fd_hard_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    lim.rlim_max
}

/// User + system CPU time this process has used so far.
pub fn self_cpu() -> Duration {
    // SAFETY: zeroed rusage is a valid out-parameter for getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is valid and writable; RUSAGE_SELF is always accepted.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident set size of this process, from /proc/self/status.
pub fn self_rss() -> Option<u64> {
    proc_rss_bytes("self")
}

/// `VmRSS` of `/proc/<pid>/status`, in bytes.
pub fn proc_rss_bytes(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&status)
}

/// User + system CPU seconds of `/proc/<pid>/stat`.
pub fn proc_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    parse_stat_cpu_seconds(&stat, if ticks > 0 { ticks as f64 } else { 100.0 })
}

fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// utime and stime are fields 14 and 15; the command name (field 2) may hold
/// spaces and parentheses, so count from the last `)`.
fn parse_stat_cpu_seconds(stat: &str, ticks_per_sec: f64) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut f = after.split_whitespace().skip(11);
    let utime: f64 = f.next()?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    Some((utime + stime) / ticks_per_sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let status = "Name:\tchatterbox\nVmPeak:\t  9000 kB\nVmRSS:\t   5120 kB\n";
        assert_eq!(parse_vmrss(status), Some(5120 * 1024));
        let stat = "1234 (chat (box) x) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0";
        assert_eq!(parse_stat_cpu_seconds(stat, 100.0), Some(3.0));
    }

    #[test]
    fn reads_this_process() {
        assert!(self_rss().unwrap() > 0);
        assert!(proc_cpu_seconds("self").is_some());
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(20) {}
        assert!(self_cpu() > Duration::ZERO);
    }

    #[test]
    fn refuses_impossible_connection_counts() {
        let err = raise_fd_limit(u64::MAX / 2).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
        assert!(raise_fd_limit(10).unwrap() >= 10 + FD_HEADROOM);
    }
}
