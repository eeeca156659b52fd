//! Property tests of what parses untrusted bytes: whatever arrives, no panic and no unbounded
//! allocation. 256 cases each by default; `PROPTEST_CASES` raises it (README: a million in all).

use proptest::prelude::*;

use crate::wire::{self, Line};

/// Arbitrary bytes that often look like what is parsed: JSON punctuation, newlines, `\r`.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            any::<u8>(),
            prop::sample::select(b"{}[]\":,\n\r\\ 0123456789truefalsenull".to_vec()),
        ],
        0..512,
    )
}

proptest! {
    /// The line reader never holds more than its bound of a line, whatever the chunking.
    #[test]
    fn prop_a_line_read_is_bounded(data in bytes(), max in 1usize..64, capacity in 1usize..16) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let mut read = tokio::io::BufReader::with_capacity(capacity, &data[..]);
            let mut buf = Vec::new();
            let newlines = data.iter().filter(|b| **b == b'\n').count();
            let mut lines = 0;
            loop {
                match wire::read_line(&mut read, &mut buf, max).await.unwrap() {
                    Line::Complete => {
                        prop_assert!(buf.len() <= max);
                        prop_assert_eq!(buf.last(), Some(&b'\n'));
                        lines += 1;
                    }
                    Line::TooLong => lines += 1,
                    Line::Eof => break,
                }
                prop_assert!(buf.capacity() <= max.max(capacity) * 4 + 64);
            }
            // (a too-long last line without `\n` is reported too)
            prop_assert!(lines <= newlines + 1);
            Ok(())
        })?;
    }

    /// The byte path's envelope and JSON checks take any bytes.
    #[test]
    fn prop_envelopes_of_any_bytes(data in bytes()) {
        let envelope = wire::Envelope::parse(&data);
        if envelope.is_some() {
            prop_assert!(wire::is_json_or_blank(&data));
        }
    }

    /// The config checker takes any text: a config or located errors, never a panic.
    #[test]
    fn prop_configs_of_any_text(text in "(servers|roles|http|command|args|url|env|:|-| |\n|\\$\\{[A-Z]*\\}|[a-z0-9\"\\[\\]{},]){0,64}") {
        let _ = crate::config::parse(&text, std::path::Path::new("gateway.yaml"), &|_| None);
    }

    /// A URL's path, query and user info never survive redaction, however it is spelled.
    #[test]
    fn prop_redaction_keeps_only_origins(
        scheme in "(http|https|HTTP|Https)",
        host in "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
        secret in "[A-Za-z0-9]{8,24}",
        around in "[ a-z(]{0,8}",
    ) {
        let text = format!(
            "{around}{scheme}://user:{secret}@{host}/a/{secret}?key={secret}#{secret}{around}"
        );
        let redacted = crate::config::redact_urls(&text);
        prop_assert!(!redacted.contains(&secret), "{}", redacted);
    }
}
