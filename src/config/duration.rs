//! Durations as the config writes them: seconds as a number (`30`, `0.5`) or a string with a unit
//! (`"500ms"`, `"30s"`, `"5m"`, `"1h"`).

use std::time::Duration;

use super::tree::Node;

/// The accepted forms, for error messages.
pub(super) const FORMS: &str =
    "seconds as a number (30, 0.5) or a string with a unit (\"500ms\", \"30s\", \"5m\", \"1h\")";

/// Reads a duration; the error completes "`idle_timeout` …".
pub(super) fn from_node(node: &Node) -> Result<Duration, String> {
    match node {
        Node::Int(n) => from_seconds(*n as f64, &n.to_string()),
        Node::Float(x) => from_seconds(*x, &x.to_string()),
        Node::Str(text) => from_text(text),
        other => Err(format!(
            "must be a duration: {FORMS}; found {}",
            other.describe()
        )),
    }
}

fn from_text(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(unparsable(text)),
    };
    let value: f64 = number.parse().map_err(|_| unparsable(text))?;
    from_seconds(value * scale, text)
}

fn from_seconds(seconds: f64, shown: &str) -> Result<Duration, String> {
    if seconds < 0.0 {
        return Err(format!("must not be negative, found `{shown}`"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("is not a usable duration: `{shown}`"))
}

fn unparsable(text: &str) -> String {
    format!("must be a duration: {FORMS}; `{text}` is not one")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(node: Node) -> Result<Duration, String> {
        from_node(&node)
    }

    fn text(s: &str) -> Result<Duration, String> {
        parse(Node::Str(s.into()))
    }

    #[test]
    fn accepts_numbers_and_units() {
        assert_eq!(parse(Node::Int(300)), Ok(Duration::from_secs(300)));
        assert_eq!(parse(Node::Int(0)), Ok(Duration::ZERO));
        assert_eq!(parse(Node::Float(0.5)), Ok(Duration::from_millis(500)));
        assert_eq!(text("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(text("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(text("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(text("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(text("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(text(" 2 m "), Ok(Duration::from_secs(120)));
        assert_eq!(text("45"), Ok(Duration::from_secs(45)));
    }

    #[test]
    fn rejects_negative_and_garbage() {
        assert!(parse(Node::Int(-1)).unwrap_err().contains("negative"));
        assert!(parse(Node::Float(-0.5)).unwrap_err().contains("negative"));
        assert!(text("-5s").unwrap_err().contains("negative"));
        for bad in ["", "ms", "5 minutes", "1d", "1.2.3s", "abc", "5s5"] {
            assert!(text(bad).unwrap_err().contains("is not one"), "{bad:?}");
        }
        assert!(parse(Node::Float(f64::NAN)).is_err());
        assert!(parse(Node::Float(f64::INFINITY)).is_err());
        assert!(parse(Node::Int(i128::MAX)).is_err());
        assert!(
            parse(Node::Bool(true))
                .unwrap_err()
                .contains("found a boolean")
        );
    }
}
