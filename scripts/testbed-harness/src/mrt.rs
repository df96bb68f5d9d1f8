//! MRT files that BIRD may still be appending to.

/// Length of the longest prefix of `data` made of complete MRT records (12-byte common
/// header: timestamp, type, subtype, length; then `length` bytes). A reader of a file
/// that is being written can cut there and parse safely.
pub fn complete_records_len(data: &[u8]) -> usize {
    let mut off = 0;
    while let Some(header) = data.get(off..off + 12) {
        let length = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
        let end = off + 12 + length;
        if end > data.len() {
            break;
        }
        off = end;
    }
    off
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: &[u8]) -> Vec<u8> {
        let mut r = vec![0, 0, 0, 1, 0, 16, 0, 4];
        r.extend_from_slice(&(body.len() as u32).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn cuts_after_the_last_complete_record() {
        let mut data = record(b"abc");
        data.extend(record(b"defgh"));
        let whole = data.len();
        assert_eq!(complete_records_len(&data), whole);
        data.extend(&record(b"ijkl")[..14]);
        assert_eq!(complete_records_len(&data), whole);
        data.truncate(whole + 5);
        assert_eq!(complete_records_len(&data), whole);
        assert_eq!(complete_records_len(&[]), 0);
    }
}
