//! The `rmq` binary: parse, run, map the error to an exit code — once, here.

fn main() -> std::process::ExitCode {
    rmq::cli::main()
}
