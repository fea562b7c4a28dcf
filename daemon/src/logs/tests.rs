#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::*;

fn line(plugin: &str, message: &str, time: SystemTime) -> LogLine {
    LogLine {
        plugin: Arc::from(plugin),
        sequence: 0,
        time,
        stream: Stream::Stderr,
        level: tracing::Level::INFO,
        message: Arc::from(message),
        fields: None,
    }
}

fn now_line(plugin: &str, message: &str) -> LogLine {
    line(plugin, message, SystemTime::now())
}

fn sequences(lines: &[LogLine]) -> Vec<u64> {
    lines.iter().map(|l| l.sequence).collect()
}

#[test]
fn a_flood_keeps_within_both_bounds_and_numbers_show_the_gap() {
    let limits = Limits {
        lines: 1000,
        bytes: 128 * 1024,
        follow_buffer: 16,
    };
    // Bounded by lines: short lines.
    let book = LogBook::new(limits);
    for i in 0..100_000 {
        book.record(now_line("short", &format!("line {i}")));
    }
    let held = book.read("short", None, None);
    assert_eq!(held.len(), 1000);
    assert_eq!(held[0].sequence, 99_001);
    assert_eq!(held[999].sequence, 100_000);
    assert_eq!(&*held[999].message, "line 99999");
    assert!(held.windows(2).all(|w| w[1].sequence == w[0].sequence + 1));

    // Bounded by bytes: lines of 1 KiB each, about 120 fit.
    let big = "x".repeat(1024);
    for _ in 0..100_000 {
        book.record(now_line("long", &big));
    }
    let held = book.read("long", None, None);
    let bytes: usize = held.iter().map(ring::cost).sum();
    assert!(bytes <= limits.bytes, "{bytes} bytes held");
    assert!(held.len() < 1000 && held.len() > 50, "{} lines", held.len());
    assert_eq!(held.last().map(|l| l.sequence), Some(100_000));
    // One plugin's flood leaves another's lines alone.
    assert_eq!(book.read("short", None, None).len(), 1000);
}

#[test]
fn counts_say_how_many_lines_came_and_how_many_the_ring_evicted() {
    let limits = Limits {
        lines: 10,
        bytes: 4 * 1024,
        follow_buffer: 16,
    };
    let book = LogBook::new(limits);
    assert_eq!(book.counts("quiet"), LogCounts::default());
    for i in 0..25 {
        book.record(now_line("chatty", &format!("line {i}")));
    }
    // Evicted by the line bound: 25 recorded, 10 held.
    assert_eq!(
        book.counts("chatty"),
        LogCounts {
            lines: 25,
            dropped: 15
        }
    );
    // Evicted by the byte bound; a line cut to fit is not dropped.
    let big = "x".repeat(3 * 1024);
    book.record(now_line("wide", &big));
    book.record(now_line("wide", &big));
    book.record(now_line("wide", &"y".repeat(10 * 1024)));
    assert_eq!(book.read("wide", None, None).len(), 1);
    assert_eq!(
        book.counts("wide"),
        LogCounts {
            lines: 3,
            dropped: 2
        }
    );
}

#[test]
fn a_single_huge_line_is_cut_to_fit() {
    let book = LogBook::new(Limits {
        lines: 10,
        bytes: 4096,
        follow_buffer: 4,
    });
    book.record(now_line("p", "before"));
    let mut huge = now_line("p", &"é".repeat(5 << 20));
    huge.fields = Some(Arc::from("{\"k\":1}"));
    book.record(huge);
    let held = book.read("p", None, None);
    // The earlier line made room for it; the line itself fits alone.
    assert_eq!(sequences(&held), [2]);
    let cut = &held[0];
    assert!(ring::cost(cut) <= 4096, "{}", ring::cost(cut));
    assert!(cut.message.ends_with("…[cut to fit the log ring]"));
    assert!(cut.message.starts_with("éé"));
    assert_eq!(cut.fields, None);
    // A line that fits is kept whole, fields and all.
    let mut small = now_line("p", "small");
    small.fields = Some(Arc::from("{\"k\":1}"));
    book.record(small.clone());
    let last = book.read("p", Some(1), None);
    assert_eq!(last[0].fields, small.fields);
}

#[test]
fn the_minimum_bounds_apply() {
    let book = LogBook::new(Limits {
        lines: 0,
        bytes: 0,
        follow_buffer: 0,
    });
    assert_eq!(book.limits().lines, 1);
    assert_eq!(book.limits().bytes, MIN_BYTES);
    book.record(now_line("p", &"y".repeat(10_000)));
    book.record(now_line("p", "last"));
    let held = book.read("p", None, None);
    assert_eq!(held.len(), 1);
    assert_eq!(&*held[0].message, "last");
}

#[test]
fn tail_and_since_select_lines() {
    let book = LogBook::default();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for i in 0..10u64 {
        book.record(line("p", &format!("{i}"), start + Duration::from_secs(i)));
    }
    let messages = |lines: Vec<LogLine>| -> Vec<String> {
        lines.iter().map(|l| l.message.to_string()).collect()
    };
    assert_eq!(book.read("p", None, None).len(), 10);
    assert_eq!(messages(book.read("p", Some(3), None)), ["7", "8", "9"]);
    let since = Some(start + Duration::from_secs(6));
    assert_eq!(messages(book.read("p", None, since)), ["6", "7", "8", "9"]);
    // Both: the last 2 of those since.
    assert_eq!(messages(book.read("p", Some(2), since)), ["8", "9"]);
    // More asked than held, or nothing since.
    assert_eq!(book.read("p", Some(50), None).len(), 10);
    let later = Some(start + Duration::from_secs(60));
    assert!(book.read("p", None, later).is_empty());
    assert_eq!(book.read("p", Some(0), None).len(), 0);
    assert!(book.read("nobody", None, None).is_empty());
    assert!(!book.contains("nobody"));
}

#[test]
fn follow_misses_nothing_while_lines_arrive() {
    let book = LogBook::default();
    const TOTAL: u64 = 20_000;
    let writer = {
        let book = book.clone();
        std::thread::spawn(move || {
            for i in 1..=TOTAL {
                book.record(now_line("p", &format!("{i}")));
            }
        })
    };
    // Taken while the writer runs: whatever the snapshot lacks, the
    // receiver brings, with no line twice.
    let (snapshot, mut follow) = loop {
        let (snapshot, follow) = book.follow("p", Some(100), None);
        if !snapshot.is_empty() || writer.is_finished() {
            break (snapshot, follow);
        }
        drop(follow);
        std::thread::yield_now();
    };
    let mut seen = sequences(&snapshot);
    writer.join().unwrap();
    let mut missed = 0;
    loop {
        match follow.try_recv() {
            Ok(line) => seen.push(line.sequence),
            Err(TryRecvError::Lagged(n)) => missed += n,
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    // The follow buffer (256) is smaller than what the writer may write
    // before this reads: a lag is allowed, and accounted for exactly.
    let first = seen[0];
    assert_eq!(
        seen.len() as u64 + missed,
        TOTAL - first + 1,
        "from {first}: {} seen, {missed} missed",
        seen.len()
    );
    assert!(seen.windows(2).all(|w| w[1] > w[0]), "in order, none twice");
    if missed == 0 {
        assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "no gap");
    }
    assert_eq!(seen.last(), Some(&TOTAL));
}

#[tokio::test]
async fn follow_without_gap_and_a_lagging_follower_learns_how_many() {
    let book = LogBook::new(Limits {
        follow_buffer: 4,
        ..Limits::default()
    });
    book.record(now_line("p", "1"));
    book.record(now_line("p", "2"));
    let (before, mut follow) = book.follow("p", None, None);
    assert_eq!(sequences(&before), [1, 2]);
    book.record(now_line("p", "3"));
    assert_eq!(follow.recv().await.unwrap().sequence, 3);
    for i in 4..=13 {
        book.record(now_line("p", &i.to_string()));
    }
    // 10 sent, 4 kept for it: 6 missed, then the last 4.
    assert_eq!(follow.recv().await, Err(RecvError::Lagged(6)));
    assert_eq!(follow.recv().await.unwrap().sequence, 10);
}

#[tokio::test]
async fn following_an_unknown_plugin_waits_for_its_first_line() {
    let book = LogBook::default();
    let (before, mut follow) = book.follow("later", None, None);
    assert!(before.is_empty());
    assert!(book.contains("later"));
    book.record(now_line("later", "hello"));
    let first = follow.recv().await.unwrap();
    assert_eq!((&*first.message, first.sequence), ("hello", 1));
}

#[tokio::test]
async fn a_forgotten_plugin_is_gone_and_its_followers_end() {
    let book = LogBook::default();
    book.record(now_line("gone", "1"));
    book.record(now_line("kept", "1"));
    let (_, mut follow) = book.follow("gone", None, None);
    assert_eq!(book.plugins(), [Arc::from("gone"), Arc::from("kept")]);
    book.forget("gone");
    assert_eq!(follow.recv().await, Err(RecvError::Closed));
    assert!(book.read("gone", None, None).is_empty());
    assert_eq!(book.plugins(), [Arc::from("kept")]);
    // Writing again starts afresh.
    book.record(now_line("gone", "again"));
    assert_eq!(sequences(&book.read("gone", None, None)), [1]);
}
