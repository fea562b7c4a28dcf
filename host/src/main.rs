//! `outboard`: the command line of the Outboard plugin host.

fn main() -> std::process::ExitCode {
    outboard_host::cli::main()
}
