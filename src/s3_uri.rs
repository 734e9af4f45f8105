//! `s3://bucket/prefix` locations (the report prefix, the state store), parsed once when the
//! config is loaded so that a bad one stops start-up with a message naming the key, and every
//! later use has a bucket and a prefix instead of a string to split again.

use std::fmt;

use serde::Deserialize;

/// A bucket and a key prefix without slashes at its ends (empty for the bucket's root).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct S3Uri {
    pub bucket: String,
    pub prefix: String,
}

impl S3Uri {
    /// `s3://bucket`, `s3://bucket/` or `s3://bucket/some/prefix[/]`. The bucket must be a
    /// valid S3 bucket name; the prefix may not have empty, `.` or `..` segments.
    pub fn parse(uri: &str) -> Result<Self, String> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{uri:?} is not an s3://bucket/prefix URI"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(format!(
                "{uri:?}: {bucket:?} is not an S3 bucket name (3 to 63 lowercase letters, digits, \
                 '.' and '-', beginning and ending with a letter or digit)"
            ));
        }
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(format!(
                "{uri:?}: the prefix {prefix:?} has an empty, '.' or '..' segment"
            ));
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// `prefix/name`, or `name` at the bucket's root.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

impl TryFrom<String> for S3Uri {
    type Error = String;

    fn try_from(uri: String) -> Result<Self, String> {
        Self::parse(&uri)
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}/", self.bucket)
        } else {
            write!(f, "s3://{}/{}/", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_split_into_bucket_and_prefix() {
        let uri = S3Uri::parse("s3://reports/monitoring/").unwrap();
        assert_eq!(
            (uri.bucket.as_str(), uri.prefix.as_str()),
            ("reports", "monitoring")
        );
        assert_eq!(uri.key("a/b.json"), "monitoring/a/b.json");
        assert_eq!(uri.to_string(), "s3://reports/monitoring/");
        let root = S3Uri::parse("s3://reports").unwrap();
        assert_eq!(root.prefix, "");
        assert_eq!(root.key("x"), "x");
        assert_eq!(root.to_string(), "s3://reports/");
    }

    #[test]
    fn bad_uris_are_refused_naming_the_uri() {
        for uri in [
            "reports/x",
            "s3://",
            "s3:///prefix",
            "s3://ab",
            "s3://My-Bucket",
            "s3://-bucket",
            "s3://bucket_name",
            "s3://bucket//prefix",
            "s3://bucket/a//b",
            "s3://bucket/../x",
            "s3://bucket/a/./b",
        ] {
            let error = S3Uri::parse(uri).unwrap_err();
            assert!(error.contains(&format!("{uri:?}")), "{uri}: {error}");
        }
    }
}
