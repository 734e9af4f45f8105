//! Names from outside that become one folder of a local path or an S3 key: an endpoint taken
//! from an object's key (anyone who can write to the bucket or send to the queue chooses it)
//! and a monitor's name. A name like `..`, `/etc` or `a\0b` must not lead out of the output
//! directory or cut a path short.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// The longest file name common file systems allow (ext4, XFS, APFS), in bytes.
pub const MAX_COMPONENT_BYTES: usize = 255;

/// What [`path_component`] encodes: separators, `%` itself (so the encoding is reversible and
/// never collides with a name that was safe), and control characters (NUL included).
const UNSAFE: &AsciiSet = &CONTROLS.add(b'/').add(b'\\').add(b'%');

/// What makes `name` unsafe as one path component, or `None` when it is safe as it is.
pub fn problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("is '.' or '..', which name a folder other than its own")
    } else if name.contains(['/', '\\']) {
        Some("contains a path separator ('/' or '\\')")
    } else if name.contains(char::is_control) {
        Some("contains a control character (NUL, newline, …)")
    } else if name.contains('%') {
        Some("contains '%' (percent-encoded text may decode to a separator or '..')")
    } else if name.len() > MAX_COMPONENT_BYTES {
        Some("is longer than 255 bytes")
    } else {
        None
    }
}

/// `name` as one path component: itself when [`problem`] finds nothing, else percent-encoded
/// (`..` → `%2E%2E`, `a/b` → `a%2Fb`, empty → `%`) and, when still too long, cut and ended with
/// `~` and a hash of the whole name, so two different names never share a folder.
pub fn path_component(name: &str) -> Cow<'_, str> {
    if problem(name).is_none() {
        return Cow::Borrowed(name);
    }
    let encoded = match name {
        "" => "%".to_string(),
        "." => "%2E".to_string(),
        ".." => "%2E%2E".to_string(),
        _ => utf8_percent_encode(name, UNSAFE).to_string(),
    };
    if encoded.len() <= MAX_COMPONENT_BYTES {
        return Cow::Owned(encoded);
    }
    let hash = twox_hash::XxHash64::oneshot(0, name.as_bytes());
    let suffix = format!("~{hash:016x}");
    let mut end = MAX_COMPONENT_BYTES - suffix.len();
    while !encoded.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{suffix}", &encoded[..end]))
}

#[cfg(test)]
mod tests {
    use std::path::{Component, Path};

    use super::*;

    const HOSTILE: [&str; 9] = [
        "..",
        ".",
        "",
        "../../etc",
        "/etc/passwd",
        "a\\..\\b",
        "a\0b",
        "line\nbreak",
        "%2E%2E%2Fescape",
    ];

    #[test]
    fn safe_names_stay_as_they_are() {
        for name in ["churn-endpoint", "AllTraffic", "my_monitor.v2", "é-ü"] {
            assert_eq!(problem(name), None, "{name}");
            assert!(matches!(path_component(name), Cow::Borrowed(n) if n == name));
        }
    }

    #[test]
    fn hostile_names_are_named_and_become_one_normal_component() {
        for name in HOSTILE {
            assert!(problem(name).is_some(), "{name:?}");
            let component = path_component(name);
            let path = Path::new("out").join(component.as_ref());
            let parts: Vec<Component> = path.components().collect();
            assert_eq!(parts.len(), 2, "{name:?} → {component:?}");
            assert!(matches!(parts[1], Component::Normal(_)), "{name:?}");
            assert!(!component.contains(char::is_control), "{name:?}");
            assert!(!component.contains(['/', '\\']), "{name:?}");
        }
        assert_eq!(path_component(".."), "%2E%2E");
        assert_eq!(path_component("../../etc"), "..%2F..%2Fetc");
        assert_eq!(path_component("a\0b"), "a%00b");
        assert_eq!(path_component("%2E%2E%2F"), "%252E%252E%252F");
    }

    #[test]
    fn different_names_never_share_a_component() {
        let long_a = "a".repeat(300);
        let long_b = format!("{}b", "a".repeat(299));
        let mut names: Vec<String> = HOSTILE.iter().map(|n| n.to_string()).collect();
        names.extend(["%2E%2E".to_string(), "%".to_string(), long_a, long_b]);
        let components: std::collections::HashSet<String> = names
            .iter()
            .map(|n| path_component(n).into_owned())
            .collect();
        assert_eq!(components.len(), names.len());
        for name in &names {
            assert!(path_component(name).len() <= MAX_COMPONENT_BYTES);
        }
        let long = "é".repeat(200);
        assert_eq!(problem(&long), Some("is longer than 255 bytes"));
        assert!(path_component(&long).len() <= MAX_COMPONENT_BYTES);
    }
}
