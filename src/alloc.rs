//! The process's global allocator: `std::alloc::System` for every block, except blocks of 1 GiB
//! or more, which are anonymous `mmap(MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)` mappings.
//!
//! Why it exists: tiny_http 0.12 drains a request's unread body when the request is dropped, into
//! one zeroed buffer of the *declared* remaining length (`vec![0; remaining]`, allocated in the
//! dropping thread before the first read). A client that declares `Content-Length: 100000000000`
//! makes the process ask for 100 GB at that moment. glibc's `calloc` asks the kernel for an
//! ordinary private mapping, the kernel's overcommit heuristic refuses one larger than RAM plus
//! swap, and the failed allocation aborts the process. The server shuts such a connection's
//! socket down before it drops the request (`net::sockets`), so the drain only reads what was
//! already received and stops: almost none of the buffer is ever touched. A `MAP_NORESERVE`
//! mapping is not counted by the overcommit heuristic and its untouched pages cost no memory, so
//! the allocation succeeds and costs two system calls (`mmap`, `munmap`).
//!
//! ccjk-cloud itself never allocates 1 GiB (request bodies are capped by `CCJK_MAX_LOG_UPLOAD`
//! and smaller settings), so every allocation the server makes on purpose is System's, as
//! before. Which allocator serves a block is a pure function of its `Layout` (size at least
//! [`HUGE`] and alignment at most a page), so `dealloc` and `realloc` always know where a block
//! came from. A page of such a mapping that is written when the machine is out of memory gets
//! the process killed (there is no reservation to fall back on); the drain writes at most what
//! the socket had buffered. Declared lengths beyond what the address space can reserve (128 TiB
//! in all on x86-64) cannot be served by any allocator: the server never lets tiny_http drop a
//! request declaring more than 16 TiB, and drops those above 1 GiB one at a time
//! (`net::Net::close_with`).
//!
//! This module is the crate's only `unsafe` code: `Cargo.toml` sets `unsafe_code = "deny"` and
//! this file alone allows it.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Blocks of at least this many bytes (1 GiB) are `MAP_NORESERVE` mappings.
pub const HUGE: usize = 1 << 30;

/// The largest alignment `mmap` guarantees (its result is page-aligned; 4 KiB is the smallest
/// page size Linux uses, so this holds on every configuration).
const PAGE: usize = 4096;

/// `System`, with blocks of [`HUGE`] bytes or more mapped lazily (see the module doc).
pub struct Allocator;

#[global_allocator]
static GLOBAL: Allocator = Allocator;

/// Whether a block of this layout is (or would be) a mapping of its own.
fn mapped(layout: Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= PAGE
}

/// A fresh lazily backed mapping of `size` bytes (zero-filled by the kernel), or null.
fn map(size: usize) -> *mut u8 {
    // SAFETY: a new anonymous private mapping at an address the kernel chooses: it overlaps no
    // existing memory, and its fd/offset arguments are the ones MAP_ANONYMOUS requires.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every method either forwards to `System` with the caller's own arguments, or serves a
// block from a mapping of exactly `layout.size()` bytes that is page-aligned (so aligned for any
// `layout.align() <= PAGE`), zero-filled, owned by nobody else, and unmapped (or moved with
// `mremap`) only by `dealloc` / `realloc` for the same layout, which `mapped` routes back here.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            map(layout.size())
        } else {
            // SAFETY: the caller upholds `alloc`'s contract (non-zero size), which is System's.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            map(layout.size())
        } else {
            // SAFETY: as in `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(layout) {
            // SAFETY: `ptr` came from `map(layout.size())` (the caller passes the layout the block
            // was allocated with, and `mapped` chose `map` for it), and nothing uses it after this.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: `ptr` came from System with this layout (the same `mapped` rule).
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `realloc`'s contract guarantees that `new_size`, rounded up to `layout.align()`,
        // does not overflow `isize`, which is all `from_size_align_unchecked` requires.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !mapped(layout) && !mapped(new_layout) {
            // SAFETY: both the old and the new block are System's; the caller upholds the rest.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if mapped(layout) && mapped(new_layout) {
            // SAFETY: `ptr` is a mapping of `layout.size()` bytes made by `map`; the kernel moves
            // its pages (touched or not) without copying them, and the old range is not used
            // again when this succeeds. On failure the old mapping is left as it was.
            let p =
                unsafe { libc::mremap(ptr.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE) };
            return if p == libc::MAP_FAILED {
                ptr::null_mut()
            } else {
                p.cast()
            };
        }
        // A block moves between System and a mapping: a new block, a copy, a free.
        // SAFETY: `new_layout` has a non-zero size (`realloc`'s contract).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least `min(old, new)` bytes long;
            // the old block is freed with the layout it was allocated with and not used again.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::HUGE;

    #[test]
    fn a_zeroed_buffer_larger_than_memory_is_served_and_freed() {
        // 100 GB: more than RAM and swap on any machine this runs on, as tiny_http asks for when
        // a client declares `Content-Length: 100000000000` and the request is dropped.
        let mut v = vec![0u8; 100_000_000_000];
        assert_eq!((v[0], v[HUGE], v[v.len() - 1]), (0, 0, 0));
        v[12_345] = 7;
        assert_eq!(v[12_345], 7);
        drop(v);
        // And again, so a leaked mapping would show as a failure on a small address space.
        for _ in 0..100 {
            let v = vec![0u8; 10_000_000_000];
            assert_eq!(v[v.len() / 2], 0);
        }
    }

    #[test]
    fn blocks_move_between_system_and_mappings_with_their_contents() {
        let mut v: Vec<u8> = Vec::with_capacity(HUGE);
        assert!(v.capacity() >= HUGE);
        v.extend_from_slice(b"kept across every move");
        v.shrink_to(64); // mapping -> System
        assert!(v.capacity() < HUGE);
        assert_eq!(&v[..], b"kept across every move");
        v.reserve_exact(2 * HUGE); // System -> mapping
        assert_eq!(&v[..], b"kept across every move");
        v.reserve_exact(3 * HUGE); // mapping -> bigger mapping
        assert_eq!(&v[..], b"kept across every move");
        let small = vec![1u8; 1000]; // System as usual
        assert_eq!(small.iter().map(|&b| u64::from(b)).sum::<u64>(), 1000);
    }
}
