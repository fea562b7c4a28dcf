//! Faults at start that test the sandbox's walls: each tries one thing a
//! sandbox may forbid, says on stderr what happened, and exits 0 if it
//! succeeded or 4 if the kernel refused (unless the kernel kills it first).

use std::process::ExitCode;
use std::time::Duration;

/// The exit status when the wall held.
pub(crate) const EXIT_REFUSED: u8 = 4;

/// A wall to push against, chosen by `STRESS_AT_START`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wall {
    /// `alloc-mib:N`: allocate and touch N MiB.
    Alloc(u64),
    /// `forkbomb`: start `sleep` processes until one fails.
    ForkBomb,
    /// `connect:ADDR`: open a TCP connection to ADDR.
    Connect(String),
    /// `read:PATH`: read a file.
    Read(String),
}

impl Wall {
    /// The wall `value` names, if it names one.
    pub(crate) fn parse(value: &str) -> Option<Result<Wall, String>> {
        if value == "forkbomb" {
            return Some(Ok(Wall::ForkBomb));
        }
        if let Some(mib) = value.strip_prefix("alloc-mib:") {
            return Some(
                mib.trim()
                    .parse()
                    .map(Wall::Alloc)
                    .map_err(|_| format!("{mib:?} is not a number of MiB")),
            );
        }
        if let Some(addr) = value.strip_prefix("connect:") {
            return Some(Ok(Wall::Connect(addr.to_owned())));
        }
        value
            .strip_prefix("read:")
            .map(|path| Ok(Wall::Read(path.to_owned())))
    }

    /// Pushes against the wall.
    pub(crate) fn push(&self) -> ExitCode {
        let outcome = match self {
            Wall::Alloc(mib) => alloc(*mib),
            Wall::ForkBomb => fork_bomb(),
            Wall::Connect(addr) => connect(addr),
            Wall::Read(path) => std::fs::read(path)
                .map(|bytes| format!("read {} bytes of {path}", bytes.len()))
                .map_err(|e| format!("cannot read {path}: {e}")),
        };
        match outcome {
            Ok(what) => {
                eprintln!("stress: {what}");
                ExitCode::SUCCESS
            }
            Err(why) => {
                eprintln!("stress: {why}");
                ExitCode::from(EXIT_REFUSED)
            }
        }
    }
}

/// Allocates `mib` MiB a MiB at a time, writing every page so that it is
/// really used.
fn alloc(mib: u64) -> Result<String, String> {
    let mut held: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mib {
        let mut chunk = Vec::new();
        chunk
            .try_reserve_exact(1 << 20)
            .map_err(|e| format!("allocation refused after {} MiB: {e}", held.len()))?;
        chunk.resize(1 << 20, 1u8);
        held.push(chunk);
    }
    Ok(format!("allocated {} MiB", held.len()))
}

/// Starts `sleep` children until the kernel refuses one; they are left for
/// the host to kill with the plugin.
fn fork_bomb() -> Result<String, String> {
    let mut children = 0u32;
    loop {
        match std::process::Command::new("sleep").arg("3600").spawn() {
            Ok(_) => children += 1,
            Err(e) => return Err(format!("fork bomb stopped after {children} processes: {e}")),
        }
        if children >= 10_000 {
            return Ok(format!("started {children} processes"));
        }
    }
}

/// Connects to `addr`, waiting at most five seconds.
fn connect(addr: &str) -> Result<String, String> {
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an address"))?;
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map(|_| format!("connected to {addr}"))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
}
