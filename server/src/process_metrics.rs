//! The standard Prometheus process metrics (`process_*`, as Go's client exports them beside
//! etcd's own), read from `/proc/self` at scrape time. Tools rely on them:
//! `etcdctl check datascale` measures memory with `process_resident_memory_bytes`.
//!
//! Off Linux, or when `/proc` cannot be read, the metrics are left out.

use crate::metrics::write_metric;

/// `/proc` reports CPU times in clock ticks of USER_HZ, which Linux fixes at 100.
const TICKS_PER_SECOND: f64 = 100.0;

/// The process's figures, from `/proc/self`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub start_time_seconds: f64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub max_virtual_bytes: Option<u64>,
}

impl ProcessStats {
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let resident_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB"))?
            .trim()
            .parse::<u64>()
            .ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let fields = parse_stat(&stat)?;
        Some(ProcessStats {
            cpu_seconds: (fields.utime + fields.stime) as f64 / TICKS_PER_SECOND,
            resident_bytes: resident_kb * 1024,
            virtual_bytes: fields.vsize,
            start_time_seconds: boot_time as f64 + fields.start_ticks as f64 / TICKS_PER_SECOND,
            // Reading the directory holds one descriptor open: etcd's count includes it too.
            open_fds,
            max_fds: soft_limit(&limits, "Max open files"),
            max_virtual_bytes: soft_limit(&limits, "Max address space"),
        })
    }

    pub fn render(&self, out: &mut String) {
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            write_metric(out, name, kind, help, value);
        };
        metric(
            "process_cpu_seconds_total",
            "counter",
            "CPU seconds this process has used, user and system together.",
            self.cpu_seconds.to_string(),
        );
        if let Some(max) = self.max_fds {
            metric(
                "process_max_fds",
                "gauge",
                "The file descriptor limit of this process.",
                max.to_string(),
            );
        }
        metric(
            "process_open_fds",
            "gauge",
            "File descriptors this process has open.",
            self.open_fds.to_string(),
        );
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Bytes of this process's memory held in RAM.",
            self.resident_bytes.to_string(),
        );
        metric(
            "process_start_time_seconds",
            "gauge",
            "When this process started, in seconds since the Unix epoch.",
            self.start_time_seconds.to_string(),
        );
        metric(
            "process_virtual_memory_bytes",
            "gauge",
            "Bytes of address space this process has mapped.",
            self.virtual_bytes.to_string(),
        );
        metric(
            "process_virtual_memory_max_bytes",
            "gauge",
            "The address space limit of this process, in bytes.",
            // Go's collector reports "unlimited" as -1.
            self.max_virtual_bytes
                .map_or_else(|| "-1".to_string(), |m| m.to_string()),
        );
    }
}

struct StatFields {
    utime: u64,
    stime: u64,
    start_ticks: u64,
    vsize: u64,
}

/// The fields of `/proc/self/stat` these metrics need. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses: fields are counted after its end.
fn parse_stat(stat: &str) -> Option<StatFields> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): field n is at n - 3.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(StatFields {
        utime: field(14)?,
        stime: field(15)?,
        start_ticks: field(22)?,
        vsize: field(23)?,
    })
}

/// The soft limit of one row of `/proc/self/limits`; `None` when unlimited or missing.
fn soft_limit(limits: &str, name: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4845 (a) b (c)) R 4841 4841 14343 0 -1 4194304 103 0 0 0 7 5 0 0 20 0 1 0 159230 3133440 389 18446744073709551615";
        let f = parse_stat(stat).unwrap();
        assert_eq!((f.utime, f.stime), (7, 5));
        assert_eq!(f.start_ticks, 159230);
        assert_eq!(f.vsize, 3133440);
        assert!(parse_stat("12 (x) R 1").is_none());
    }

    #[test]
    fn limits_rows_give_soft_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\nMax address space         unlimited            unlimited            bytes\n";
        assert_eq!(soft_limit(limits, "Max open files"), Some(1024));
        assert_eq!(soft_limit(limits, "Max address space"), None);
    }

    #[test]
    fn this_process_reports_its_own_figures() {
        let s = ProcessStats::read().expect("/proc is readable on Linux");
        assert!(s.resident_bytes > 0 && s.virtual_bytes >= s.resident_bytes);
        assert!(s.open_fds > 0);
        assert!(s.start_time_seconds > 1.5e9);
        let mut out = String::new();
        s.render(&mut out);
        for name in [
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(
                out.contains(&format!("\n{name} ")),
                "{name} missing:\n{out}"
            );
        }
    }
}
