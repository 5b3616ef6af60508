//! Process-wide memory settings that each binary applies at start-up.

/// Stops the kernel from backing this process's memory with transparent
/// huge pages, and logs a warning when the kernel rejects the request.
///
/// mimalloc reserves its heap in large regions. Backed by 2 MiB pages, a
/// region with a few live objects keeps a whole 2 MiB page resident. In
/// `lintas-bench` at 1,000 connections on a 2-core machine, the gateway's
/// peak RSS was 106 MiB with huge pages and 64 to 71 MiB without. The
/// mimalloc build already skips its own huge page requests. This call also
/// covers hosts whose kernel uses huge pages for every large region
/// (`/sys/kernel/mm/transparent_hugepage/enabled` set to `always`). The
/// setting applies to the whole process and is inherited by its children.
pub fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(%error, "failed to turn off transparent huge pages, so peak memory may be higher");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn huge_pages_turned_off_for_process() {
        super::disable_transparent_huge_pages();

        let disabled = rustix::thread::transparent_huge_pages_are_disabled()
            .expect("the kernel reports the huge page setting");
        assert!(disabled, "transparent huge pages are still allowed");
    }
}
