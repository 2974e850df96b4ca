//! Capped capture of a stream: the first `cap` bytes are kept, the rest is read and
//! dropped (so the writer never blocks on a full pipe), and the total is counted.

use std::io::Read;

/// Captured output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first bytes, at most the cap.
    pub bytes: Vec<u8>,
    /// How many bytes were written in total.
    pub total_bytes: u64,
}

impl Captured {
    /// Whether bytes were dropped.
    pub fn truncated(&self) -> bool {
        self.total_bytes > self.bytes.len() as u64
    }
}

/// Reads `r` to its end, keeping at most `cap` bytes.
pub fn capture(mut r: impl Read, cap: usize) -> std::io::Result<Captured> {
    let mut out = Captured::default();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.total_bytes += n as u64;
        let room = cap.saturating_sub(out.bytes.len()).min(n);
        out.bytes.extend_from_slice(&chunk[..room]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_head_and_counts_the_rest() {
        let data = vec![7u8; 100_000];
        let c = capture(&data[..], 1000).unwrap();
        assert_eq!(c.bytes.len(), 1000);
        assert_eq!(c.total_bytes, 100_000);
        assert!(c.truncated());
        let c = capture(&b"hi\n"[..], 1000).unwrap();
        assert_eq!(c.bytes, b"hi\n");
        assert!(!c.truncated());
    }
}
