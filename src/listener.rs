//! The connection every request arrives on: it gives hyper's own bodiless rejections OpenAI's envelope.
//!
//! hyper answers some requests itself, before the router sees them, with an empty body: 414 for a request target
//! longer than the `http` crate allows (64 KiB), 431 for headers over hyper's buffer (about 400 KiB) or over 100
//! headers, and 400 for a request line or header it cannot parse. No tower layer runs for these and hyper has no
//! hook for them, so the connection's writes are watched instead: a response head that is one of these statuses
//! with `content-length: 0` (the router never answers so: all its errors carry the envelope) is replaced by the
//! same status carrying `{"error":{message,type,param,code}}`. hyper closes the connection after such an answer.
//!
//! 404, 405 and 413 come from the router (its fallbacks and `api::body`); no 415 exists (bodies are read as JSON
//! whatever their content type). A body that has not arrived within `limits.body_read_timeout` gets a 408 from the
//! router (`api::body`); headers that have not arrived within `limits.header_read_timeout`, and a connection idle
//! past `limits.idle_timeout`, get no answer: the connection is closed (`connections`).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection whose bodiless 400/414/431 response heads are rewritten to carry the envelope.
pub struct EnvelopeStream {
    inner: TcpStream,
    /// A rewritten response not yet written out.
    pending: Vec<u8>,
}

impl EnvelopeStream {
    pub fn new(inner: TcpStream) -> Self {
        Self { inner, pending: Vec::new() }
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

/// The enveloped answer for one of hyper's own bodiless rejections, or `None` for any other write.
fn enveloped(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    if !text.ends_with("\r\n\r\n") || !text.to_ascii_lowercase().contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let (status, message, code) = match text.get(..13)? {
        "HTTP/1.1 400 " | "HTTP/1.0 400 " => (400, "The request could not be parsed as HTTP.", "invalid_request"),
        "HTTP/1.1 414 " | "HTTP/1.0 414 " => {
            (414, "The request URL is longer than this server accepts.", "request_uri_too_long")
        }
        "HTTP/1.1 431 " | "HTTP/1.0 431 " => {
            (431, "The request's headers are larger than this server accepts.", "request_headers_too_large")
        }
        _ => return None,
    };
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}});
    let body = body.to_string();
    let reason = text.get(13..text.find("\r\n")?)?;
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl AsyncRead for EnvelopeStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for EnvelopeStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if let Some(replacement) = enveloped(buf) {
            this.pending = replacement;
            // The replacement goes out now or at the next write, flush or shutdown; hyper sees its head taken.
            let _ = this.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then writes each response head in one buffer, which `enveloped` can recognise.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_rejections_are_rewritten() {
        let head = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let rewritten = String::from_utf8(enveloped(head).unwrap()).unwrap();
        assert!(rewritten.starts_with("HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\n"));
        let body = r#"{"error":{"message":"The request URL is longer than this server accepts.","type":"invalid_request_error","param":null,"code":"request_uri_too_long"}}"#;
        assert!(rewritten.ends_with(&format!("content-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())));
        assert!(enveloped(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 120\r\n\r\n").is_none());
        assert!(enveloped(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
