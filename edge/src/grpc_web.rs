//! gRPC-Web framing for the edge -> fan-out call.
//!
//! Workers cannot speak HTTP/2 gRPC outbound, but gRPC-Web over HTTP/1.1 works
//! through `fetch`. This module only frames and unframes; prost does the
//! protobuf encoding. Kept free of Worker types so it is tested natively.
//!
//! A gRPC-Web body is a sequence of frames: 1 flag byte (0x00 data, 0x80
//! trailers), a 4-byte big-endian length, then the payload. The HTTP status is
//! 200 even when the call failed: the verdict is `grpc-status`, found in the
//! trailer frame or, for "trailers-only" replies, in the HTTP headers.

use thiserror::Error;

/// The request's content type, which makes tonic-web translate the call.
pub const CONTENT_TYPE: &str = "application/grpc-web+proto";

const DATA_FLAG: u8 = 0x00;
const TRAILER_FLAG: u8 = 0x80;
const HEADER_LEN: usize = 5;

/// Why a call to the fan-out did not succeed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CallError {
    #[error("fan-out answered HTTP {0}")]
    Http(u16),
    #[error("fan-out answered gRPC status {code}: {message}")]
    Status { code: u32, message: String },
    #[error("fan-out reply is not valid gRPC-Web: {0}")]
    Malformed(&'static str),
}

/// Frames one protobuf message as a gRPC-Web request body.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(HEADER_LEN + message.len());
    body.push(DATA_FLAG);
    // A Graph batch is far below 4 GiB; the edge caps bodies at 1 MiB.
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    body
}

/// Reads a unary gRPC-Web reply and returns its message bytes.
///
/// `header_status` is the `grpc-status` HTTP header, if any (trailers-only
/// replies put it there).
pub fn unframe_reply(
    http_status: u16,
    header_status: Option<&str>,
    header_message: Option<&str>,
    body: &[u8],
) -> Result<Vec<u8>, CallError> {
    if http_status != 200 {
        return Err(CallError::Http(http_status));
    }
    if let Some(status) = header_status {
        check_status(status, header_message.unwrap_or(""))?;
    }
    let mut message = None;
    let mut status_seen = header_status.is_some();
    let mut rest = body;
    while !rest.is_empty() {
        if rest.len() < HEADER_LEN {
            return Err(CallError::Malformed("truncated frame header"));
        }
        let flag = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        // checked: on wasm32 `usize` is 32 bits and `len` comes off the wire.
        let end = HEADER_LEN.checked_add(len).ok_or(CallError::Malformed("frame length overflows"))?;
        let payload = rest.get(HEADER_LEN..end).ok_or(CallError::Malformed("truncated frame"))?;
        rest = rest.get(end..).unwrap_or_default();
        if flag & TRAILER_FLAG != 0 {
            let trailers = std::str::from_utf8(payload).map_err(|_| CallError::Malformed("trailers are not text"))?;
            let (status, text) = parse_trailers(trailers);
            check_status(status.ok_or(CallError::Malformed("trailers lack grpc-status"))?, &text)?;
            status_seen = true;
        } else if message.replace(payload.to_vec()).is_some() {
            return Err(CallError::Malformed("more than one message in a unary reply"));
        }
    }
    if !status_seen {
        return Err(CallError::Malformed("reply has no grpc-status"));
    }
    message.ok_or(CallError::Malformed("reply has no message"))
}

fn parse_trailers(block: &str) -> (Option<&str>, String) {
    let mut status = None;
    let mut message = String::new();
    for line in block.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else { continue };
        match name.trim().to_ascii_lowercase().as_str() {
            "grpc-status" => status = Some(value.trim()),
            "grpc-message" => {
                message = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy().into_owned()
            }
            _ => {}
        }
    }
    (status, message)
}

fn check_status(status: &str, message: &str) -> Result<(), CallError> {
    match status.parse::<u32>() {
        Ok(0) => Ok(()),
        Ok(code) => Err(CallError::Status { code, message: message.to_owned() }),
        Err(_) => Err(CallError::Malformed("grpc-status is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trailer(text: &str) -> Vec<u8> {
        let mut frame = frame(text.as_bytes());
        frame[0] = TRAILER_FLAG;
        frame
    }

    #[test]
    fn frames_a_message() {
        assert_eq!(frame(b"abc"), vec![0, 0, 0, 0, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn reads_message_then_ok_trailer() {
        let mut body = frame(b"reply");
        body.extend(trailer("grpc-status:0\r\ngrpc-message:\r\n"));
        assert_eq!(unframe_reply(200, None, None, &body), Ok(b"reply".to_vec()));
    }

    #[test]
    fn reports_error_status_from_trailers_or_headers() {
        let body = trailer("grpc-status: 16\r\ngrpc-message: bad%20token\r\n");
        assert_eq!(
            unframe_reply(200, None, None, &body),
            Err(CallError::Status { code: 16, message: "bad token".into() })
        );
        assert_eq!(
            unframe_reply(200, Some("14"), Some("down"), b""),
            Err(CallError::Status { code: 14, message: "down".into() })
        );
    }

    #[test]
    fn refuses_truncated_or_statusless_replies() {
        assert_eq!(unframe_reply(502, None, None, b""), Err(CallError::Http(502)));
        assert!(matches!(unframe_reply(200, None, None, &[0, 0, 0]), Err(CallError::Malformed(_))));
        assert!(matches!(unframe_reply(200, None, None, &[0, 0, 0, 0, 9, 1]), Err(CallError::Malformed(_))));
        assert_eq!(unframe_reply(200, None, None, &frame(b"x")), Err(CallError::Malformed("reply has no grpc-status")));
    }
}
