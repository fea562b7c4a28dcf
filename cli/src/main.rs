//! `outboard`: the command line of the Outboard plugin host.

mod cli;
mod conformance;
mod init;

fn main() -> std::process::ExitCode {
    // First, while the process has a single thread: as PID 1, fork the
    // host and stay behind as its init.
    if let Some(status) = init::become_init_if_pid1() {
        return status;
    }
    cli::main()
}
