//! Container names: the one rule every command applies before touching disk.
//!
//! A name is 1-63 characters of `a-z`, `0-9` and `-`, starts with a letter and does
//! not end with a dash (the DNS label rule that LXD and Incus also use), so a name is
//! always a safe path component, hostname and DNS label.

use thiserror::Error;

/// The rule, worded once, for every message that refuses a name.
pub const RULE: &str = "names are 1-63 characters of a-z, 0-9 and '-', start with a letter and do not end with '-'";

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid container name {shown}: {problem}; {RULE}")]
pub struct NameError {
    shown: String,
    problem: &'static str,
}

/// Checks `name` against [`RULE`].
pub fn validate(name: &str) -> Result<(), NameError> {
    let problem = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 63 {
        Some("it is longer than 63 characters")
    } else if let Some(bad) = name.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-')) {
        let _ = bad;
        Some("it contains a character other than a-z, 0-9 and '-'")
    } else if name.starts_with(|c: char| c.is_ascii_digit()) {
        Some("it starts with a digit")
    } else if name.starts_with('-') {
        Some("it starts with '-'")
    } else if name.ends_with('-') {
        Some("it ends with '-'")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(NameError { shown: format!("{name:?}"), problem }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for n in ["a", "web", "web-1", "a1b2", &"x".repeat(63)] {
            assert_eq!(validate(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn refuses_invalid_names_with_the_rule() {
        let cases = [
            ("", "empty"),
            ("../x", "character"),
            ("a/b", "character"),
            (".", "character"),
            ("Web", "character"),
            ("we b", "character"),
            ("wéb", "character"),
            ("a\0b", "character"),
            ("1web", "digit"),
            ("-web", "starts with '-'"),
            ("web-", "ends with '-'"),
        ];
        for (n, why) in cases {
            let err = validate(n).unwrap_err().to_string();
            assert!(err.contains(why), "{n:?}: {err}");
            assert!(err.contains(RULE), "{n:?}: {err}");
        }
        let long = "a".repeat(64);
        assert!(validate(&long).unwrap_err().to_string().contains("longer than 63"));
    }
}
