//! `outboard events --dead` and `outboard events --retry ID|--all`: the
//! daemon's dead letters (ListDeadLetters, RetryDeadLetter).

use std::io::Write;

use anyhow::{Context, bail};
use outboard_proto::control::v1::retry_dead_letter_request::Target;
use outboard_proto::control::v1::{DeadLetter, ListDeadLettersRequest, RetryDeadLetterRequest};

use crate::args::EventsArgs;
use crate::client::{Daemon, call_error};
use crate::render;

/// Dead letters asked for per page.
const PAGE: i32 = 500;

/// Prints every dead letter, oldest first: a table, or JSON lines.
pub(crate) async fn list(args: &EventsArgs) -> anyhow::Result<u8> {
    let daemon = Daemon::connect(args.control.control_socket.as_deref()).await?;
    let mut letters: Vec<DeadLetter> = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListDeadLettersRequest {
            page_size: PAGE,
            page_token,
        };
        let page = daemon
            .rpc
            .clone()
            .list_dead_letters(request)
            .await
            .map_err(|s| call_error(&daemon.socket, &s))?
            .into_inner();
        letters.extend(page.dead_letters);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut out = std::io::stdout().lock();
    render::dead_letters::print(&mut out, &letters, args.json)?;
    out.flush()
        .context("cannot print the dead letters on stdout")?;
    Ok(0)
}

/// Puts one dead letter (or all) back to be delivered; says how many.
pub(crate) async fn retry(args: &EventsArgs, id: &str) -> anyhow::Result<u8> {
    let target = match (id.is_empty(), args.all) {
        (true, true) => Target::All(true),
        (false, false) => Target::Id(id.to_owned()),
        (true, false) => {
            bail!("--retry needs a dead letter's id (see `outboard events --dead`), or --all")
        }
        (false, true) => bail!("--retry takes an id or --all, not both"),
    };
    let daemon = Daemon::connect(args.control.control_socket.as_deref()).await?;
    let request = RetryDeadLetterRequest {
        target: Some(target),
    };
    let retried = daemon
        .rpc
        .clone()
        .retry_dead_letter(request)
        .await
        .map_err(|s| call_error(&daemon.socket, &s))?
        .into_inner()
        .retried;
    if args.json {
        say_out(&serde_json::json!({"retried": retried}).to_string())?;
    } else {
        let s = if retried == 1 { "" } else { "s" };
        say_out(&format!("{retried} dead letter{s} put back for delivery"))?;
    }
    Ok(0)
}

/// One line on stdout.
fn say_out(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("cannot print on stdout")
}
