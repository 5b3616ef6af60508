//! Process-wide memory settings that each binary applies at start-up.

/// mimalloc's index of its `purge_delay` option in `mi_option_t`, which the
/// bindings of libmimalloc-sys 0.1.49 do not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Variable through which mimalloc reads `purge_delay` from the
/// environment at start-up.
const PURGE_DELAY_VARIABLE: &str = "MIMALLOC_PURGE_DELAY";

/// Delay after which mimalloc returns freed memory to the kernel; its own
/// default is one second.
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Applies [`disable_transparent_huge_pages`] and
/// [`shorten_purge_delay`].
pub fn apply_process_settings() {
    disable_transparent_huge_pages();
    shorten_purge_delay();
}

/// Makes mimalloc return freed memory to the kernel after
/// [`PURGE_DELAY_MS`] rather than one second, unless `MIMALLOC_PURGE_DELAY`
/// sets a delay.
///
/// NOTE: few runs back this value. In `lintas-bench` at 1,000 connections,
/// on a 2-core machine shared with a build, the gateway peaked at 59.5 to
/// 64.9 MiB with the default (five runs) and 58.4 and 59.3 MiB with 100 ms.
/// With 0 ms it peaked at 55.0 to 60.3 MiB, but two of five runs had Redis
/// calls time out and the cache bypassed. CPU per request stayed within the
/// spread.
#[allow(unsafe_code)]
pub fn shorten_purge_delay() {
    if std::env::var_os(PURGE_DELAY_VARIABLE).is_some() {
        return;
    }
    // SAFETY: mi_option_set stores a value in mimalloc's option table,
    // which mimalloc reads on later purges. It ignores an index out of
    // range.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

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

#[cfg(test)]
mod tests {
    #[test]
    #[allow(unsafe_code)]
    fn purge_delay_becomes_shorter() {
        // SAFETY: mi_option_get reads mimalloc's option table.
        let read = || unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        if std::env::var_os(super::PURGE_DELAY_VARIABLE).is_none() {
            // mimalloc's default, which shows that the index is right.
            assert_eq!(read(), 1000);
        }

        super::shorten_purge_delay();

        if std::env::var_os(super::PURGE_DELAY_VARIABLE).is_none() {
            assert_eq!(read(), super::PURGE_DELAY_MS);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_turned_off_for_process() {
        super::disable_transparent_huge_pages();

        let disabled = rustix::thread::transparent_huge_pages_are_disabled()
            .expect("the kernel reports the huge page setting");
        assert!(disabled, "transparent huge pages are still allowed");
    }
}
