//! An incremental Server-Sent Events decoder: bytes in as they arrive, complete events out.

/// One decoded event: its `event:` name (if any) and its `data:` lines joined by newlines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Decoder state: the unfinished line and the fields of the event being read.
#[derive(Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

impl SseDecoder {
    /// Feeds a chunk and returns every event it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in chunk {
            if byte != b'\n' {
                self.line.push(byte);
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
            if let Some(event) = self.end_line(&line) {
                events.push(event);
            }
        }
        events
    }

    fn end_line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let data = self.data.take()?;
            return Some(SseEvent { event: self.event.take(), data });
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let mut decoder = SseDecoder::default();
        assert_eq!(decoder.push(b"data: {\"a\""), vec![]);
        assert_eq!(
            decoder.push(b":1}\r\n\r\n: comment\n\nevent: x\ndata: one\ndata: two\n"),
            vec![SseEvent { event: None, data: "{\"a\":1}".into() }]
        );
        assert_eq!(
            decoder.push(b"\ndata:[DONE]\n\n"),
            vec![
                SseEvent { event: Some("x".into()), data: "one\ntwo".into() },
                SseEvent { event: None, data: "[DONE]".into() },
            ]
        );
    }
}
