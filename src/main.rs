//! The `rmq` binary: parse, run, map the error to an exit code — once, here.

/// mimalloc instead of the system allocator: the broker allocates and frees small
/// buffers per message from several threads, where glibc's malloc showed up as a fifth
/// of the CPU profile. Built with `no_thp`: with transparent huge pages mimalloc's
/// regions grew the resident set 2 MiB at a time (3.4 KiB per idle queue instead of 1.3).
/// Blocks of 16 MiB and more (message bodies) are mappings of their own that grow
/// without a copy: see `big_alloc`.
#[cfg(target_os = "linux")]
#[global_allocator]
static GLOBAL: big_alloc::BigAlloc = big_alloc::BigAlloc;
#[cfg(not(target_os = "linux"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(target_os = "linux")]
mod big_alloc;

fn main() -> std::process::ExitCode {
    if !std::env::args().any(|a| a == "serve" || a == "perf") {
        // A client holds one large body at a time, and lapin grows a delivery's body by
        // doubling: freed at once, the outgrown buffers do not add to the peak (a 64 MiB
        // receive peaked at 219 MB with mimalloc's default 10 ms delay, 154 MB without).
        // The broker and the load generator keep the delay that spares them
        // decommit/commit cycles.
        // SAFETY: setting an option is a plain store, allowed at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
    }
    rmq::cli::main_with(collect)
}

/// `mi_option_purge_delay` in `mimalloc.h` (v3, libmimalloc-sys 0.1.49's default; v2 numbers it
/// the same); libmimalloc-sys names no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Purge what mimalloc holds for this thread (freed blocks, empty pages) back to the OS.
fn collect() {
    // SAFETY: mi_collect only walks the calling thread's own heap; any thread may call it.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
