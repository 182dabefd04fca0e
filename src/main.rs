//! The `rmq` binary: parse, run, map the error to an exit code — once, here.

/// mimalloc instead of the system allocator: the broker allocates and frees small
/// buffers per message from several threads, where glibc's malloc showed up as a fifth
/// of the CPU profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rmq::cli::main()
}
