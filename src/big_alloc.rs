//! The binary's allocator: mimalloc, except that blocks of [`BIG`] bytes and more are
//! mappings of their own that grow with `mremap` instead of a copy.
//!
//! A large message body grows by doubling (lapin appends each 128 KiB body frame to a
//! `Vec`), and mimalloc grows a huge block by allocating the new one and copying: for a
//! 256 MiB body the last step held the old 256 MiB and the new copy at once (peak RSS
//! 540 MB for `rmq receive`). `mremap(MREMAP_MAYMOVE)` moves the pages instead, so the
//! peak stays near the body's size — what glibc's malloc does for its mmapped chunks.

use mimalloc::MiMalloc;
use rustix::mm::{MapFlags, MremapFlags, ProtFlags};
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::ptr::null_mut;

/// From this size on, a block is its own mapping (mimalloc's huge blocks are mappings
/// too; below this, its size classes are far cheaper than a system call).
pub const BIG: usize = 16 << 20;

/// mimalloc with mappings for big blocks.
pub struct BigAlloc;

/// Mappings are page-aligned; a block asking for more alignment stays with mimalloc.
fn mapped(layout: Layout) -> bool {
    layout.size() >= BIG && layout.align() <= 4096
}

/// A mapping's length: whole pages (4 KiB at least).
fn pages(size: usize) -> usize {
    size.next_multiple_of(rustix::param::page_size().max(4096))
}

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping aliases nothing.
    match unsafe {
        rustix::mm::mmap_anonymous(
            null_mut(),
            pages(size),
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    } {
        Ok(p) => p.cast(),
        Err(_) => null_mut(),
    }
}

// SAFETY: every block is either mimalloc's (small or over-aligned, decided by its layout,
// which the caller passes unchanged to dealloc/realloc) or a mapping made here.
unsafe impl GlobalAlloc for BigAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            // SAFETY: see `map`.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: forwarded as received.
            unsafe { MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            // SAFETY: anonymous mappings are zero-filled.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: forwarded as received.
            unsafe { MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(layout) {
            // SAFETY: `ptr` is a mapping of this length made by `map` or `realloc`.
            let _ = unsafe { rustix::mm::munmap(ptr.cast::<c_void>(), pages(layout.size())) };
        } else {
            // SAFETY: forwarded as received.
            unsafe { MiMalloc.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (mapped(layout), mapped(new)) {
            (false, false) => {
                // SAFETY: forwarded as received.
                unsafe { MiMalloc.realloc(ptr, layout, new_size) }
            }
            (true, true) => {
                // SAFETY: `ptr` is a mapping of the old length; MAYMOVE moves its pages
                // (no copy) when it cannot grow in place.
                match unsafe {
                    rustix::mm::mremap(
                        ptr.cast::<c_void>(),
                        pages(layout.size()),
                        pages(new_size),
                        MremapFlags::MAYMOVE,
                    )
                } {
                    Ok(p) => p.cast(),
                    Err(_) => null_mut(),
                }
            }
            // Across the threshold: a new block and a copy of at most BIG bytes.
            _ => {
                // SAFETY: `new` is valid (above); the copy covers what both blocks hold.
                unsafe {
                    let fresh = self.alloc(new);
                    if !fresh.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    fresh
                }
            }
        }
    }
}
