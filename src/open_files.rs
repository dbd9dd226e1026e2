//! The open-files limit. Every live client holds a socket, and many systems still start
//! processes with a soft limit of 1,024 descriptors while allowing far more: a server that
//! does not raise it refuses its thousandth client with "too many open files". Raising the soft
//! limit to the hard one is what the kernel allows without privilege (and what Go's runtime and
//! nginx's `worker_rlimit_nofile` do).

/// Raises the soft limit on open files to the hard limit; returns the limit now in force.
pub fn raise_to_hard_limit() -> Option<libc::rlim_t> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Some(raised.rlim_cur);
            }
        }
    }
    Some(limit.rlim_cur)
}
