//! A plugin's stdout and stderr: captured, bounded, and turned into log lines under the
//! plugin's name after the call.
//!
//! A guest that prints must never fail because of it: Rust's `println!` panics when a write
//! fails, so the pipe accepts every write and keeps only the first [`CAPTURE_LIMIT`] bytes,
//! counting the rest. Rust's panic handler and allocation-failure handler write to stderr,
//! which is how a guest panic's own message reaches the plugin's error.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of each stream kept per call.
pub const CAPTURE_LIMIT: usize = 64 << 10;

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: usize,
}

/// One captured stream. Clones share the buffer.
#[derive(Clone, Default)]
pub struct CapturePipe(Arc<Mutex<Captured>>);

impl CapturePipe {
    fn push(&self, bytes: &[u8]) {
        let Ok(mut captured) = self.0.lock() else { return };
        let room = CAPTURE_LIMIT.saturating_sub(captured.bytes.len());
        let kept = bytes.len().min(room);
        captured.bytes.extend_from_slice(&bytes[..kept]);
        captured.dropped += bytes.len() - kept;
    }

    /// The lines written (lossy UTF-8, empty lines left out) and the bytes dropped past the
    /// limit.
    pub fn take_lines(&self) -> (Vec<String>, usize) {
        let Ok(mut captured) = self.0.lock() else { return (Vec::new(), 0) };
        let text = String::from_utf8_lossy(&captured.bytes).into_owned();
        let dropped = captured.dropped;
        *captured = Captured::default();
        (text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect(), dropped)
    }
}

impl IsTerminal for CapturePipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturePipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CapturePipe {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturePipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 20)
    }
}

impl tokio::io::AsyncWrite for CapturePipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_up_to_the_limit_and_counts_the_rest() {
        let mut pipe = CapturePipe::default();
        pipe.write(Bytes::from_static(b"first line\n\nsecond")).ok();
        pipe.write(Bytes::from(vec![b'x'; CAPTURE_LIMIT])).ok();
        let (lines, dropped) = pipe.take_lines();
        assert_eq!(lines[0], "first line");
        assert!(lines[1].starts_with("secondxxx"));
        assert_eq!(dropped, "first line\n\nsecond".len());
    }
}
