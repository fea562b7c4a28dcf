//! Reading a plugin's output one bounded line at a time.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The longest line kept whole; the rest of a longer line is dropped and a
/// marker says how much.
pub(crate) const MAX_LINE: usize = 16 * 1024;

/// Ends a line cut short, saying how much was dropped.
pub(super) fn cut_marker(dropped: usize) -> String {
    format!(" …[line cut: {dropped} more bytes dropped]")
}

/// Reads one line of at most [`MAX_LINE`] bytes, without its line ending.
/// A longer line is cut and ends with a marker; the excess is consumed and
/// dropped as it arrives, never buffered. `None` at end of stream.
///
/// Not cancel-safe: dropping the future mid-line loses what it had read.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<String>> {
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped = 0usize;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            if kept.is_empty() && dropped == 0 {
                return Ok(None);
            }
            break;
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = MAX_LINE.saturating_sub(kept.len());
        let take = chunk.len().min(room);
        kept.extend_from_slice(&chunk[..take]);
        dropped += chunk.len() - take;
        let consumed = done.unwrap_or(buf.len());
        reader.consume(consumed);
        if done.is_some() {
            break;
        }
    }
    if kept.last() == Some(&b'\r') {
        kept.pop();
    }
    let mut line = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        line.push_str(&cut_marker(dropped));
    }
    Ok(Some(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_split() {
        let long = "x".repeat(MAX_LINE + 100);
        let input = format!("a\r\n{long}\nlast");
        let mut reader = tokio::io::BufReader::with_capacity(64, input.as_bytes());
        assert_eq!(
            read_line(&mut reader).await.ok().flatten().as_deref(),
            Some("a")
        );
        let cut = read_line(&mut reader).await.ok().flatten().expect("line");
        assert!(cut.starts_with(&"x".repeat(MAX_LINE)));
        assert!(
            cut.ends_with("…[line cut: 100 more bytes dropped]"),
            "{cut}"
        );
        assert_eq!(
            read_line(&mut reader).await.ok().flatten().as_deref(),
            Some("last")
        );
        assert_eq!(read_line(&mut reader).await.ok().flatten(), None);
    }
}
