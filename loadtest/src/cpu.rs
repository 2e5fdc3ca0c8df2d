//! CPU time of processes, from `/proc/PID/stat` (Linux): user + system time of the process
//! and of its reaped children, so that a server's cost per workflow can be reported next to
//! the load generator's own.

/// Clock ticks per second of `/proc` times (`USER_HZ`, 100 on Linux whatever the kernel's
/// `HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds used so far by process `pid` (`None` when it cannot be read: gone, not Linux).
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds used so far by this process.
pub fn own_cpu_seconds() -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// utime + stime + cutime + cstime of a `stat` line, in seconds.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: fields count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime is field 14.
    let ticks: u64 = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(ticks as f64 / TICKS_PER_SECOND)
}

/// CPU seconds a server process (when its pid is known) and this process spend from
/// [`Meter::start`] to [`Meter::spent`].
pub struct Meter {
    server_pid: Option<u32>,
    server_before: Option<f64>,
    own_before: Option<f64>,
}

impl Meter {
    /// Starts measuring (the server `server_pid`, if any, and this process).
    pub fn start(server_pid: Option<u32>) -> Self {
        Self {
            server_pid,
            server_before: server_pid.and_then(process_cpu_seconds),
            own_before: own_cpu_seconds(),
        }
    }

    /// The server's and this process's CPU seconds since the start (`None` where unknown).
    pub fn spent(&self) -> (Option<f64>, Option<f64>) {
        let since = |now: Option<f64>, before: Option<f64>| now.zip(before).map(|(a, b)| a - b);
        (
            since(
                self.server_pid.and_then(process_cpu_seconds),
                self.server_before,
            ),
            since(own_cpu_seconds(), self.own_before),
        )
    }
}

/// Milliseconds of CPU per workflow for `seconds` spent on `workflows`.
pub fn ms_per_workflow(seconds: f64, workflows: u64) -> f64 {
    if workflows == 0 {
        return 0.0;
    }
    (seconds * 1000.0 / workflows as f64 * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_four_time_fields() {
        let line = "4242 (sun dial (x)) S 1 2 3 4 5 6 7 8 9 10 250 50 7 3 20 0 9";
        assert_eq!(stat_cpu_seconds(line), Some(3.1));
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let spin: u64 = (0..2_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert!(spin > 0);
        assert!(own_cpu_seconds().is_some());
    }
}
