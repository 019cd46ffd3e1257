//! `Omissible<T>`: a JSON field that can be absent, `null`, or a value.
//!
//! Lavalink's PATCH bodies give all three a different meaning (absent = leave unchanged,
//! `null` = clear, value = set), which `Option<T>` cannot express.

use serde::{Deserialize, Deserializer};

/// A request field that distinguishes "not sent" from "sent as `null`".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Omissible<T> {
    /// The key was not in the object.
    #[default]
    Absent,
    /// The key was present with the value `null`.
    Null,
    /// The key was present with a value.
    Present(T),
}

impl<T> Omissible<T> {
    /// True unless the key was absent.
    pub fn is_given(&self) -> bool {
        !matches!(self, Omissible::Absent)
    }

    /// `None` if absent; `Some(None)` for `null`; `Some(Some(v))` for a value.
    pub fn as_given(&self) -> Option<Option<&T>> {
        match self {
            Omissible::Absent => None,
            Omissible::Null => Some(None),
            Omissible::Present(v) => Some(Some(v)),
        }
    }

    /// The value, if one was given.
    pub fn value(&self) -> Option<&T> {
        match self {
            Omissible::Present(v) => Some(v),
            _ => None,
        }
    }

    /// Consumes the field, keeping "given" information.
    pub fn into_given(self) -> Option<Option<T>> {
        match self {
            Omissible::Absent => None,
            Omissible::Null => Some(None),
            Omissible::Present(v) => Some(Some(v)),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Omissible<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only called when the key is present (absent keys use `Default`).
        Ok(match Option::<T>::deserialize(d)? {
            None => Omissible::Null,
            Some(v) => Omissible::Present(v),
        })
    }
}

/// `deserialize_with` helper for fields that may be absent but never `null`:
/// absent → `None` (with `#[serde(default)]`), `null` → error, value → `Some`.
pub fn non_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        a: Omissible<i64>,
        #[serde(default, deserialize_with = "non_null")]
        b: Option<i64>,
    }

    #[test]
    fn three_states() {
        let x: Body = serde_json::from_str("{}").unwrap();
        assert_eq!(x.a, Omissible::Absent);
        let x: Body = serde_json::from_str(r#"{"a":null}"#).unwrap();
        assert_eq!(x.a, Omissible::Null);
        let x: Body = serde_json::from_str(r#"{"a":5}"#).unwrap();
        assert_eq!(x.a, Omissible::Present(5));
    }

    #[test]
    fn non_null_rejects_null() {
        assert!(serde_json::from_str::<Body>(r#"{"b":null}"#).is_err());
        let x: Body = serde_json::from_str(r#"{"b":3}"#).unwrap();
        assert_eq!(x.b, Some(3));
        let x: Body = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(x.b, None);
    }
}
