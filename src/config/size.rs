//! Sizes as the config writes them: bytes as a number (`1048576`) or a string with a unit
//! (`"512KiB"`, `"64MiB"`, `"64MB"`, `"1GiB"`), for `max_message`.

use super::tree::Node;

/// The accepted forms, for error messages.
pub(super) const FORMS: &str = "bytes as a number (1048576) or a string with a unit \
     (\"512KiB\", \"64MiB\", \"64MB\", \"1GiB\")";

/// Below this no backend could even answer `initialize`: a smaller limit is a typo, not a wish.
pub(super) const MIN: usize = 1024;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Units, case-insensitive: the binary ones (KiB) are what memory is counted in; the decimal
/// ones (KB) are accepted because people write them, and mean what they say.
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("kib", KIB),
    ("mib", MIB),
    ("gib", GIB),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
];

/// Reads a size in bytes; the error completes "`max_message` …".
pub(super) fn from_node(node: &Node) -> Result<usize, String> {
    let bytes = match node {
        Node::Int(n) if *n < 0 => return Err(format!("must not be negative, found `{n}`")),
        Node::Int(n) => u64::try_from(*n).map_err(|_| too_big(&n.to_string()))?,
        Node::Str(text) => from_text(text)?,
        other => {
            return Err(format!(
                "must be a size: {FORMS}; found {}",
                other.describe()
            ));
        }
    };
    let shown = match node {
        Node::Str(text) => text.clone(),
        _ => bytes.to_string(),
    };
    let bytes = usize::try_from(bytes).map_err(|_| too_big(&shown))?;
    if bytes < MIN {
        return Err(format!("must be at least 1 KiB, found `{shown}`"));
    }
    Ok(bytes)
}

fn from_text(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(format!("must not be negative, found `{text}`"));
    }
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(unparsable(text));
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(scale).ok_or_else(|| too_big(text));
    }
    // A fraction ("1.5MiB") is fine as long as it comes to whole bytes within reason.
    let value: f64 = number.parse().map_err(|_| unparsable(text))?;
    let bytes = (value * scale as f64).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(too_big(text));
    }
    Ok(bytes as u64)
}

fn unparsable(text: &str) -> String {
    format!("must be a size: {FORMS}; `{text}` is not one")
}

fn too_big(shown: &str) -> String {
    format!("is too large: `{shown}`")
}

/// A size for messages: in the largest unit it is a whole number of (`64 MiB`, `64 MB`), else
/// in bytes, so that the limit a message names reads as the config wrote it.
pub fn display(bytes: usize) -> String {
    let n = bytes as u64;
    let units = [
        ("GiB", GIB),
        ("GB", 1_000_000_000),
        ("MiB", MIB),
        ("MB", 1_000_000),
        ("KiB", KIB),
        ("KB", 1_000),
    ];
    match units
        .iter()
        .find(|(_, scale)| n >= *scale && n.is_multiple_of(*scale))
    {
        Some((name, scale)) => format!("{} {name}", n / scale),
        None => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Result<usize, String> {
        from_node(&Node::Str(s.into()))
    }

    #[test]
    fn accepts_bytes_and_units() {
        assert_eq!(from_node(&Node::Int(1_048_576)), Ok(1 << 20));
        assert_eq!(text("4096"), Ok(4096));
        assert_eq!(text("4096B"), Ok(4096));
        assert_eq!(text("512KiB"), Ok(512 << 10));
        assert_eq!(text("64MiB"), Ok(64 << 20));
        assert_eq!(text("64 MiB"), Ok(64 << 20));
        assert_eq!(text(" 1GiB "), Ok(1 << 30));
        assert_eq!(text("64MB"), Ok(64_000_000));
        assert_eq!(text("2kb"), Ok(2_000));
        assert_eq!(text("64mib"), Ok(64 << 20));
        assert_eq!(text("1.5MiB"), Ok(3 << 19));
        assert_eq!(text("0.5GB"), Ok(500_000_000));
    }

    #[test]
    fn rejects_garbage_small_negative_and_huge() {
        for bad in [
            "",
            "MiB",
            "64 megabytes",
            "64M",
            "1.2.3MiB",
            "abc",
            "5MiB5",
            "1e3",
        ] {
            assert!(text(bad).unwrap_err().contains("is not one"), "{bad:?}");
        }
        assert!(text("-5MiB").unwrap_err().contains("negative"));
        assert!(from_node(&Node::Int(-1)).unwrap_err().contains("negative"));
        assert_eq!(
            from_node(&Node::Int(0)).unwrap_err(),
            "must be at least 1 KiB, found `0`"
        );
        assert!(text("1000B").unwrap_err().contains("at least 1 KiB"));
        assert!(text("99999999999GiB").unwrap_err().contains("too large"));
        assert!(
            from_node(&Node::Int(i128::MAX))
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            from_node(&Node::Float(1.5))
                .unwrap_err()
                .contains("found a number")
        );
        assert!(
            from_node(&Node::Bool(true))
                .unwrap_err()
                .contains("found a boolean")
        );
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        assert_eq!(display(64 << 20), "64 MiB");
        assert_eq!(display(1 << 30), "1 GiB");
        assert_eq!(display(512 << 10), "512 KiB");
        assert_eq!(display(64_000_000), "64 MB");
        assert_eq!(display(1_500), "1500 bytes");
        assert_eq!(display(3 << 19), "1536 KiB");
        assert_eq!(display(2_048_000), "2000 KiB");
    }
}
