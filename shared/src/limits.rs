//! Process limits.

/// Raises the soft limit of open files to the hard limit and returns the new soft limit.
///
/// Each open connection holds up to three descriptors (the socket, its clone for writing, and one
/// more while an idle connection is being evicted), and the servers accept up to 1024 connections
/// each, so the common soft limit of 1024 would run out long before the cap. Raising it is what a
/// server is expected to do; the hard limit is the administrator's bound.
// rlim_t is u64 on Linux but not on every platform.
#[allow(clippy::unnecessary_cast)]
pub fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Some(raised.rlim_cur as u64);
            }
        }
    }
    Some(limit.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let now = super::raise_open_files_limit().expect("getrlimit works");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(now, limit.rlim_cur as u64);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
