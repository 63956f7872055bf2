//! Bodies are compared decoded, so a side that gzips and one that does not still compare equal
//! when they say the same thing.

use std::io::Read;

use bytes::Bytes;
use http::HeaderMap;

/// Why a body could not be decoded for comparison.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the decoded body is larger than max_body ({0} bytes)")]
    TooLarge(usize),
    #[error("the body is not valid {0}")]
    Invalid(&'static str),
}

/// `body` with its `content-encoding` (gzip, deflate, br) undone, at most `cap` bytes. Unknown
/// encodings are compared as they are.
pub fn decode(headers: &HeaderMap, body: Bytes, cap: usize) -> Result<Bytes, DecodeError> {
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let (reader, name): (Box<dyn Read + '_>, &'static str) = match encoding.as_str() {
        "gzip" | "x-gzip" => (Box::new(flate2::read::MultiGzDecoder::new(&body[..])), "gzip"),
        "deflate" => (Box::new(flate2::read::ZlibDecoder::new(&body[..])), "deflate"),
        "br" => (Box::new(brotli::Decompressor::new(&body[..], 8192)), "br"),
        _ => return Ok(body),
    };
    let mut out = Vec::with_capacity(body.len() * 4);
    // One byte over the cap tells "exactly at the cap" from "over it", without inflating a bomb.
    reader.take(cap as u64 + 1).read_to_end(&mut out).map_err(|_| DecodeError::Invalid(name))?;
    if out.len() > cap {
        return Err(DecodeError::TooLarge(cap));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn headers(encoding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_ENCODING, encoding.parse().expect("value"));
        h
    }

    #[test]
    fn gzip_and_brotli_are_undone() {
        let text = b"{\"a\": 1}".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).expect("gzip");
        let gz = gz.finish().expect("gzip");
        assert_eq!(decode(&headers("gzip"), Bytes::from(gz), 1 << 20).as_deref(), Ok(&text[..]));

        let mut br = Vec::new();
        brotli::CompressorWriter::new(&mut br, 4096, 5, 22).write_all(&text).expect("br");
        assert_eq!(decode(&headers("br"), Bytes::from(br), 1 << 20).as_deref(), Ok(&text[..]));

        let plain = Bytes::from_static(b"plain");
        assert_eq!(decode(&HeaderMap::new(), plain.clone(), 1), Ok(plain));
    }

    #[test]
    fn decoding_stops_at_the_cap() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 1 << 20]).expect("gzip");
        let gz = gz.finish().expect("gzip");
        assert_eq!(decode(&headers("gzip"), Bytes::from(gz), 1000), Err(DecodeError::TooLarge(1000)));
        assert_eq!(decode(&headers("gzip"), Bytes::from_static(b"nope"), 1000), Err(DecodeError::Invalid("gzip")));
    }
}
