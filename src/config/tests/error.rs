//! How config errors are displayed.

use std::path::Path;

use crate::config::{ConfigError, ConfigErrors};

#[test]
fn errors_display_one_per_line_and_omit_unknown_positions() {
    let errors = ConfigErrors(vec![
        ConfigError::at(Path::new("g.yaml"), 1, 2, "first"),
        ConfigError::whole_file(Path::new("g.yaml"), "second"),
    ]);
    assert_eq!(errors.to_string(), "g.yaml:1:2: first\ng.yaml: second");
}
