//! Clock stamps that compare across processes, and a page of them shared with a
//! child across `clone3` (the child writes, the parent reads after the child execs).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// Microseconds of `CLOCK_BOOTTIME`: one clock for every process on the host, so
/// stamps taken by the CLI, the monitor and the container's first process compare.
pub fn boottime_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec to the valid pointer it is given.
    // CLOCK_BOOTTIME exists on every kernel hutch runs on (2.6.39+), so it cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// Slots in a [`SharedStamps`] page.
pub const STAMP_SLOTS: usize = 8;

/// A `MAP_SHARED` anonymous page of [`STAMP_SLOTS`] stamps. Made before a clone, it
/// stays one page for parent and child (a private mapping would be copied), so what
/// the child writes is what the parent reads; 0 means "not stamped".
pub struct SharedStamps {
    ptr: std::ptr::NonNull<AtomicU64>,
}

impl SharedStamps {
    pub fn new() -> io::Result<SharedStamps> {
        let len = STAMP_SLOTS * std::mem::size_of::<AtomicU64>();
        // SAFETY: a fresh anonymous mapping at an address the kernel picks; it aliases
        // nothing, and the kernel zero-fills it (0 is a valid AtomicU64).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast::<AtomicU64>()).ok_or_else(io::Error::last_os_error)?;
        Ok(SharedStamps { ptr })
    }

    fn slot(&self, i: usize) -> &AtomicU64 {
        assert!(i < STAMP_SLOTS, "stamp slot {i} out of range");
        // SAFETY: the mapping holds STAMP_SLOTS aligned AtomicU64s (page-aligned) and
        // lives as long as self; atomics make concurrent access from the child sound.
        unsafe { &*self.ptr.as_ptr().add(i) }
    }

    /// Stamps slot `i` with the current [`boottime_us`].
    pub fn stamp(&self, i: usize) {
        self.slot(i).store(boottime_us(), Ordering::Release);
    }

    /// Empties slot `i`.
    pub fn clear(&self, i: usize) {
        self.slot(i).store(0, Ordering::Release);
    }

    /// The stamp in slot `i`, if it was written.
    pub fn get(&self, i: usize) -> Option<u64> {
        Some(self.slot(i).load(Ordering::Acquire)).filter(|&v| v != 0)
    }
}

impl Drop for SharedStamps {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no reference outlives self.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), STAMP_SLOTS * std::mem::size_of::<AtomicU64>());
        }
    }
}

// SAFETY: the page is only accessed through atomics.
unsafe impl Send for SharedStamps {}
// SAFETY: as above.
unsafe impl Sync for SharedStamps {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_shared_and_start_empty() {
        let s = SharedStamps::new().unwrap();
        assert_eq!(s.get(0), None);
        s.stamp(3);
        assert!(s.get(3).unwrap() > 0);
        assert_eq!(s.get(2), None);
        let a = boottime_us();
        let b = boottime_us();
        assert!(b >= a);
    }
}
