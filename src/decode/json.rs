//! JSON → (column name, value text) pairs, keeping every value's text as written.
//!
//! Values are walked as [`RawValue`]s so a number keeps its original text (`1.0` stays "1.0",
//! which Deequ counts as Fractional) without serde_json's `arbitrary_precision`, which would
//! change number handling for the whole crate. Strings borrow from the input unless they hold
//! escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::Limits;
use super::table::Value;

/// A JSON string that borrows from the input when it can (`Cow<str>` fields only borrow with
/// `#[serde(borrow)]` directly on them, not inside an `Option`).
#[derive(Debug)]
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

/// An object's members in document order, duplicates included.
struct Members<'a>(Vec<(Text<'a>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// How array elements are named (`array_element_name` split once into its parts), and how
/// deep and long flattened names may get (`limits.max_json_depth`, `limits.max_key_bytes`).
#[derive(Debug, Clone)]
pub(crate) struct NameTemplate {
    parts: Vec<Part>,
    max_depth: usize,
    max_key_bytes: usize,
    /// `limits.max_columns`: an object with more leaves could never have them all as columns,
    /// and stopping early keeps a record of millions of tiny values from taking GBs.
    max_leaves: usize,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Key,
    Index,
}

impl NameTemplate {
    pub(crate) fn parse(template: &str) -> Self {
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            let (placeholder, len) = if rest.starts_with("{key}") {
                (Some(Part::Key), 5)
            } else if rest.starts_with("{index}") {
                (Some(Part::Index), 7)
            } else {
                (None, rest.chars().next().map_or(1, char::len_utf8))
            };
            match (placeholder, parts.last_mut()) {
                (Some(part), _) => parts.push(part),
                (None, Some(Part::Literal(text))) => text.push_str(&rest[..len]),
                (None, _) => parts.push(Part::Literal(rest[..len].to_string())),
            }
            rest = &rest[len..];
        }
        let limits = Limits::default();
        Self {
            parts,
            max_depth: limits.max_json_depth,
            max_key_bytes: limits.max_key_bytes,
            max_leaves: limits.max_columns,
        }
    }

    pub(crate) fn with_limits(self, limits: &Limits) -> Self {
        Self {
            max_depth: limits.max_json_depth,
            max_key_bytes: limits.max_key_bytes,
            max_leaves: limits.max_columns,
            ..self
        }
    }

    pub(crate) fn render(&self, key: &str, index: usize) -> String {
        use std::fmt::Write;
        let mut name = String::with_capacity(key.len() + 4);
        for part in &self.parts {
            match part {
                Part::Literal(text) => name.push_str(text),
                Part::Key => name.push_str(key),
                Part::Index => write!(name, "{index}").expect("writing to a String cannot fail"),
            }
        }
        name
    }
}

/// The text of a scalar: strings unescaped, numbers as written, `null` → `None`.
/// Call only on a value that is not an object or array.
pub(crate) fn scalar_text(raw: &RawValue) -> serde_json::Result<Option<Cow<'_, str>>> {
    let text = raw.get();
    Ok(match text.as_bytes().first() {
        Some(b'"') => Some(serde_json::from_str::<Text>(text)?.0),
        Some(b'n') => None,
        // Numbers, true and false are already their own text.
        _ => Some(Cow::Borrowed(text)),
    })
}

pub(crate) fn is_container(raw: &RawValue) -> bool {
    matches!(raw.get().as_bytes().first(), Some(b'{' | b'['))
}

/// The leaves of a JSON object: nested keys joined with ".", array elements named by the
/// template; `keys[i]` names `values[i]`.
#[derive(Debug, Default)]
pub(crate) struct Flat<'a> {
    pub keys: Vec<String>,
    pub values: Vec<Value<'a>>,
}

/// Appends the leaves of `object` to `out`. `object` must be a JSON object (the caller checks
/// the first byte). An object nested deeper than the template's `max_depth`, with a name longer
/// than its `max_key_bytes` or with more leaves than `max_leaves` is an error naming the limit.
pub(crate) fn flatten_object<'a>(
    object: &'a RawValue,
    template: &NameTemplate,
    out: &mut Flat<'a>,
) -> serde_json::Result<()> {
    let walk = Walk {
        template,
        leaves_end: out.keys.len().saturating_add(template.max_leaves),
    };
    flatten_members(object, None, 1, &walk, out)
}

/// What a flattening walk carries down: the template, and where its leaves must end.
struct Walk<'t> {
    template: &'t NameTemplate,
    leaves_end: usize,
}

/// `depth` counts the objects and arrays `object` is inside of, itself included.
fn flatten_members<'a>(
    object: &'a RawValue,
    prefix: Option<&str>,
    depth: usize,
    walk: &Walk,
    out: &mut Flat<'a>,
) -> serde_json::Result<()> {
    let Members(members) = serde_json::from_str(object.get())?;
    for (Text(key), value) in members {
        let name = match prefix {
            None => key.into_owned(),
            Some(prefix) => format!("{prefix}.{key}"),
        };
        flatten_value(value, name, depth, walk, out)?;
    }
    Ok(())
}

fn flatten_value<'a>(
    value: &'a RawValue,
    name: String,
    depth: usize,
    walk: &Walk,
    out: &mut Flat<'a>,
) -> serde_json::Result<()> {
    use serde::de::Error;
    let template = walk.template;
    if name.len() > template.max_key_bytes {
        return Err(serde_json::Error::custom(format!(
            "a name of {} bytes, longer than limits.max_key_bytes ({})",
            name.len(),
            template.max_key_bytes
        )));
    }
    let container = is_container(value);
    if container && depth >= template.max_depth {
        return Err(serde_json::Error::custom(format!(
            "{name:?} nests deeper than limits.max_json_depth ({})",
            template.max_depth
        )));
    }
    match value.get().as_bytes().first() {
        Some(b'{') => flatten_members(value, Some(&name), depth + 1, walk, out),
        Some(b'[') => {
            let elements: Vec<&RawValue> = serde_json::from_str(value.get())?;
            for (index, element) in elements.into_iter().enumerate() {
                let element_name = template.render(&name, index);
                flatten_value(element, element_name, depth + 1, walk, out)?;
            }
            Ok(())
        }
        _ => {
            if out.keys.len() >= walk.leaves_end {
                return Err(serde_json::Error::custom(format!(
                    "more values than limits.max_columns ({})",
                    template.max_leaves
                )));
            }
            out.values.push(scalar_text(value)?);
            out.keys.push(name);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(json: &str, template: &str) -> Vec<(String, Option<String>)> {
        let raw: &RawValue = serde_json::from_str(json).unwrap();
        let mut out = Flat::default();
        flatten_object(raw, &NameTemplate::parse(template), &mut out).unwrap();
        out.keys
            .into_iter()
            .zip(out.values.into_iter().map(|v| v.map(Cow::into_owned)))
            .collect()
    }

    fn pair(k: &str, v: Option<&str>) -> (String, Option<String>) {
        (k.to_string(), v.map(str::to_string))
    }

    #[test]
    fn keeps_number_text_and_unescapes_strings() {
        assert_eq!(
            flat(
                r#"{"a": 1.0, "b": 3, "c": -2.50e3, "d": "x\"y", "e": true, "f": null, "g": ""}"#,
                "{key}_{index}"
            ),
            vec![
                pair("a", Some("1.0")),
                pair("b", Some("3")),
                pair("c", Some("-2.50e3")),
                pair("d", Some("x\"y")),
                pair("e", Some("true")),
                pair("f", None),
                pair("g", Some("")),
            ]
        );
    }

    #[test]
    fn nests_with_dots_and_names_elements_by_template() {
        let json = r#"{"features": [1, 2.0], "out": {"label": 0, "probs": [[0.25]]}, "empty": {}}"#;
        assert_eq!(
            flat(json, "{key}_{index}"),
            vec![
                pair("features_0", Some("1")),
                pair("features_1", Some("2.0")),
                pair("out.label", Some("0")),
                pair("out.probs_0_0", Some("0.25")),
            ]
        );
        assert_eq!(
            flat(r#"{"f": [7, 8]}"#, "_c{index}"),
            vec![pair("_c0", Some("7")), pair("_c1", Some("8"))]
        );
        assert_eq!(
            flat(r#"{"f": [7]}"#, "{key}[{index}]é"),
            vec![pair("f[0]é", Some("7"))]
        );
    }

    /// The flattened names of `json` under `limits`, or the error's text.
    fn names_within(json: &str, limits: Limits) -> Result<Vec<String>, String> {
        let raw: &RawValue = serde_json::from_str(json).unwrap();
        let template = NameTemplate::parse("{key}_{index}").with_limits(&limits);
        let mut out = Flat::default();
        flatten_object(raw, &template, &mut out).map_err(|e| e.to_string())?;
        Ok(out.keys)
    }

    #[test]
    fn nesting_past_max_json_depth_is_an_error_naming_it() {
        let limits = Limits {
            max_json_depth: 3,
            ..Limits::default()
        };
        assert_eq!(
            names_within(r#"{"a": {"b": [1]}}"#, limits).unwrap(),
            ["a.b_0"]
        );
        let error = names_within(r#"{"a": {"b": [[1]]}}"#, limits).unwrap_err();
        assert!(
            error.contains("\"a.b_0\" nests deeper than limits.max_json_depth (3)"),
            "{error}"
        );
    }

    #[test]
    fn a_name_past_max_key_bytes_is_an_error_naming_it() {
        let limits = Limits {
            max_key_bytes: 6,
            ..Limits::default()
        };
        assert_eq!(
            names_within(r#"{"ab": {"c": [1]}}"#, limits).unwrap(),
            ["ab.c_0"]
        );
        let error = names_within(r#"{"ab": {"cd": [1]}}"#, limits).unwrap_err();
        assert!(
            error.contains("a name of 7 bytes, longer than limits.max_key_bytes (6)"),
            "{error}"
        );
    }

    #[test]
    fn an_object_with_more_leaves_than_max_columns_is_an_error_naming_it() {
        let limits = Limits {
            max_columns: 3,
            ..Limits::default()
        };
        assert_eq!(
            names_within(r#"{"a": [1, 2], "b": 3}"#, limits)
                .unwrap()
                .len(),
            3
        );
        let error = names_within(r#"{"a": [1, 2], "b": {"c": 3, "d": 4}}"#, limits).unwrap_err();
        assert!(
            error.contains("more values than limits.max_columns (3)"),
            "{error}"
        );
    }

    #[test]
    fn strings_without_escapes_borrow() {
        let raw: &RawValue = serde_json::from_str(r#""plain""#).unwrap();
        assert!(matches!(
            scalar_text(raw).unwrap(),
            Some(Cow::Borrowed("plain"))
        ));
    }
}
