//! How settings are written in configuration files: serde forms shared by
//! the settings of several modules (header names, milliseconds), and the
//! names of a settings struct's fields, so that a table composed of several
//! settings structs can refuse a field none of them has.

use std::fmt;
use std::time::Duration;

use http::HeaderName;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};
use serde_json::{Map, Value};

/// The names of the fields `T` reads from a table, as its derived
/// `Deserialize` declares them.
pub(crate) fn names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    /// A deserializer that only listens for the field list.
    struct Listen<'a>(&'a mut &'static [&'static str]);

    #[derive(Debug)]
    struct Heard;

    impl fmt::Display for Heard {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("field names heard")
        }
    }

    impl std::error::Error for Heard {}

    impl de::Error for Heard {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Heard
        }
    }

    impl<'de> Deserializer<'de> for Listen<'_> {
        type Error = Heard;

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Heard> {
            *self.0 = fields;
            Err(Heard)
        }

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Heard> {
            Err(Heard)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Listen(&mut fields));
    fields
}

/// Refuses a key of `table` that no part reads.
pub(crate) fn refuse_unknown(table: &Map<String, Value>, known: &[&[&str]]) -> Result<(), String> {
    let known: Vec<&str> = known
        .iter()
        .flat_map(|names| names.iter().copied())
        .collect();
    match table.keys().find(|name| !known.contains(&name.as_str())) {
        None => Ok(()),
        Some(name) => {
            let expected: Vec<String> = known.iter().map(|name| format!("`{name}`")).collect();
            Err(format!(
                "unknown field `{name}`, expected one of {}",
                expected.join(", ")
            ))
        }
    }
}

/// Reads `T` from `table`, whose other keys belong to other parts.
pub(crate) fn part<T: serde::de::DeserializeOwned>(
    table: &Map<String, Value>,
) -> Result<T, String> {
    T::deserialize(Value::Object(table.clone()))
        .map_err(|error| failing_field::<T>(table).unwrap_or_else(|| error.to_string()))
}

/// The first field of `table` that `T` refuses on its own, with the
/// reason: what a mistake's message names.
pub(crate) fn failing_field<T: serde::de::DeserializeOwned>(
    table: &serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    table.iter().find_map(|(name, value)| {
        let alone = serde_json::Map::from_iter([(name.clone(), value.clone())]);
        T::deserialize(serde_json::Value::Object(alone))
            .err()
            .filter(|error| !error.to_string().starts_with("missing field"))
            .map(|error| format!("`{name}`: {error}"))
    })
}

/// `Option<Duration>` written as whole milliseconds (`lookup_timeout_ms =
/// 2000`).
pub(crate) mod millis {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => {
                serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
            }
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Some(Duration::from_millis(u64::deserialize(deserializer)?)))
    }
}

/// A `Duration` written as whole milliseconds (`drain_timeout_ms = 1000`).
pub(crate) mod millis_required {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}

/// `url` with its password replaced, for `Debug` and logs: the one of
/// `scheme://user:password@host`, and any `password=…` (a query parameter,
/// or PostgreSQL's `host=… password=…` form).
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn redact_password(url: &str) -> std::borrow::Cow<'_, str> {
    let mut text: std::borrow::Cow<'_, str> = match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((credentials, host)) => {
                let user = credentials.split_once(':').map_or("", |(user, _)| user);
                format!("{scheme}://{user}:<redacted>@{host}").into()
            }
            None => url.into(),
        },
        None => url.into(),
    };
    const NEEDLE: &str = "password=";
    let mut from = 0;
    while let Some(found) = text[from..].find(NEEDLE) {
        let start = from + found + NEEDLE.len();
        let end = text[start..]
            .find([' ', '&'])
            .map_or(text.len(), |length| start + length);
        text.to_mut().replace_range(start..end, "<redacted>");
        from = start + "<redacted>".len();
    }
    text
}

/// A header name written as text (`credential_header = "X-Auth-Token"`).
pub(crate) mod header_name {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        name: &HeaderName,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(name.as_str())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<HeaderName, D::Error> {
        let text = String::deserialize(deserializer)?;
        HeaderName::try_from(text.as_str())
            .map_err(|_| de::Error::custom(format!("`{text}` is not a header name")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Two {
        first: u8,
        #[serde(rename = "second_name")]
        second: u8,
    }

    #[test]
    fn names_are_the_fields_as_written() {
        assert_eq!(names::<Two>(), ["first", "second_name"]);
    }
}
