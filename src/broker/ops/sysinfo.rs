//! What the resource monitor reads from the system: the process's resident memory, the
//! RAM it may use (total, or the cgroup limit when lower, as RabbitMQ's
//! vm_memory_monitor does) and the free space of a filesystem. `None` where the system
//! cannot say (not Linux, no /proc): the alarm that needs it then never goes off.

use std::path::Path;

/// Resident set size of this process, in bytes (`/proc/self/statm`, second field, pages).
pub(crate) fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_size()))
}

fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// The RAM this process may use: MemTotal, lowered by a cgroup v2 (`memory.max`) or v1
/// (`memory.limit_in_bytes`) limit when one is set.
pub(crate) fn available_ram() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total = meminfo_total(&meminfo)?;
    Some(cgroup_limit().map_or(total, |limit| limit.min(total)))
}

/// `MemTotal:  16318416 kB` → bytes.
fn meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

fn cgroup_limit() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    // "max" (v2) does not parse; v1's "no limit" is a huge number, which the min with
    // MemTotal discards.
    .find_map(|s| s.trim().parse::<u64>().ok())
}

/// Bytes available to an unprivileged user on the filesystem holding `dir` (statvfs).
pub(crate) fn disk_free(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probes_answer_on_linux() {
        assert_eq!(
            meminfo_total("MemTotal:       1024 kB\nMemFree: 1 kB\n"),
            Some(1 << 20)
        );
        assert!(rss().is_some_and(|n| n > 0));
        assert!(available_ram().is_some_and(|n| n > 0));
        assert!(disk_free(Path::new("/")).is_some());
        assert!(disk_free(Path::new("/no/such/dir")).is_none());
    }
}
