//! Scope syntax: what a granted scope covers, what a required scope may
//! look like, and the path parameters a required scope names.

use crate::ConfigError;

/// Whether `granted` covers `required`: equal, `*`, or `prefix.*` with
/// `required` strictly under `prefix.`.
///
/// ```
/// use tollgate::scope::covers;
///
/// assert!(covers("people.*", "people.view_paygap"));
/// assert!(covers("*", "admin"));
/// assert!(!covers("people.*", "people"));
/// assert!(!covers("read", "readwrite"));
/// ```
pub fn covers(granted: &str, required: &str) -> bool {
    if granted == "*" || granted == required {
        return true;
    }
    match granted.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('.') => {
            required.len() > prefix.len() && required.starts_with(prefix)
        }
        _ => false,
    }
}

/// The path parameters a required scope names (`stores.{store_id}.write`
/// names `store_id`).
pub(super) fn named_params(scope: &str) -> impl Iterator<Item = &str> {
    scope
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

/// Whether the path `pattern` has the parameter `name` (`{name}` or
/// `{*name}`).
pub(super) fn has_param(pattern: &str, name: &str) -> bool {
    pattern.contains(&format!("{{{name}}}")) || pattern.contains(&format!("{{*{name}}}"))
}

/// A path parameter's value may stand in a scope only if it cannot change
/// the scope's shape: no `.`, `*`, `:` or anything but `[A-Za-z0-9_-]`.
pub(super) fn is_safe_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// Checks the syntax of a scope a route requires: dot-separated, non-empty
/// segments of `[a-z0-9_:-]`, at most 128 characters; a `{param}` may
/// stand for a path parameter of the route.
pub(crate) fn validate_scope(scope: &str) -> Result<(), ConfigError> {
    let mut plain = String::with_capacity(scope.len());
    let mut rest = scope;
    while let Some(open) = rest.find('{') {
        plain.push_str(&rest[..open]);
        // A well-formed `{param}` stands for one safe value; anything else
        // keeps its brace, which the check below refuses.
        match rest[open + 1..].split_once('}') {
            Some((name, after))
                if !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                plain.push('x');
                rest = after;
            }
            _ => {
                plain.push('{');
                rest = &rest[open + 1..];
            }
        }
    }
    plain.push_str(rest);
    let scope_shape = plain.as_str();
    let valid = !scope_shape.is_empty()
        && scope.len() <= 128
        && scope_shape.split('.').all(|segment| {
            !segment.is_empty()
                && segment.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b':' | b'-')
                })
        });
    if valid {
        Ok(())
    } else {
        Err(ConfigError::new(
            "scopes",
            format!(
                "`{scope}` is not a valid scope: use dot-separated segments of [a-z0-9_:-] (wildcards are for granted scopes only)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_what_is_under_them_only() {
        assert!(covers("people.*", "people.view_paygap"));
        assert!(covers("people.*", "people.salaries.view"));
        assert!(!covers("people.*", "people"));
        assert!(!covers("people.*", "peoplex.view"));
        assert!(!covers("people.*", "other.people.view"));
        assert!(covers("*", "anything.at.all"));
        assert!(!covers("read", "readwrite"));
        assert!(!covers("read", "read.all"));
        assert!(!covers("read*", "readwrite"));
        assert!(covers("read", "read"));
    }
}
