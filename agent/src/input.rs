//! Validation of user input the agent answers itself, with the real
//! services' statuses and messages (pure functions).

use serde_json::{Map, Value};

/// Nova's `parameter_types.positive_integer`: an integer, or a string of
/// digits, at least 1. Returns the value or Nova's schema message.
fn positive_integer(field: &str, v: &Value) -> Result<u64, String> {
    let bad = |why: String| {
        Err(format!(
            "Invalid input for field/attribute {field}. Value: {v}. {why}"
        ))
    };
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(0) => bad("0 is less than the minimum of 1".into()),
            Some(x) => Ok(x),
            None if n.is_i64() => bad(format!("{n} is less than the minimum of 1")),
            None => bad(format!("{n} is not of type 'integer', 'string'")),
        },
        Value::String(s) => {
            if s.is_empty() {
                return bad("'' is too short".into());
            }
            if !s.bytes().all(|b| b.is_ascii_digit()) {
                return bad(format!("'{s}' does not match '^[0-9]*$'"));
            }
            match s.parse::<u64>() {
                Ok(0) => bad("'0' is less than the minimum of 1".into()),
                Ok(x) => Ok(x),
                Err(_) => bad(format!("'{s}' is too large")),
            }
        }
        other => bad(format!("{other} is not of type 'integer', 'string'")),
    }
}

/// `min_count`/`max_count` of a create request, validated as Nova does
/// (schema, then `min_count must be <= max_count`). Defaults: 1 and
/// `min_count`.
pub fn counts(server: &Map<String, Value>) -> Result<(u64, u64), String> {
    let min = match server.get("min_count") {
        Some(v) => positive_integer("min_count", v)?,
        None => 1,
    };
    let max = match server.get("max_count") {
        Some(v) => positive_integer("max_count", v)?,
        None => min,
    };
    if min > max {
        return Err("min_count must be <= max_count".into());
    }
    Ok((min, max))
}

/// What the real service answers to a request body's Content-Type, if it
/// refuses it: Nova 415 "Unsupported Content-Type" for a type other than
/// JSON (none, or `text/plain`, is read as JSON, as Nova's WSGI layer
/// does); Keystone 400 for anything but JSON.
pub fn content_type_refusal(
    identity: bool,
    content_type: Option<&str>,
) -> Option<(u16, &'static str)> {
    let mime = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let json =
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"));
    if identity {
        return (!json).then_some((400, KEYSTONE_NOT_JSON));
    }
    if json || mime.is_empty() || mime == "text/plain" {
        None
    } else {
        Some((415, "Unsupported Content-Type"))
    }
}

/// Keystone's answer to a body that is not JSON.
pub const KEYSTONE_NOT_JSON: &str = "Expecting to find application/json in Content-Type header \
     - the server could not comply with the request since it is either malformed or otherwise \
     incorrect. The client is assumed to be in error.";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(v: Value) -> Result<(u64, u64), String> {
        counts(v.as_object().unwrap())
    }

    #[test]
    fn counts_as_nova() {
        assert_eq!(c(json!({})), Ok((1, 1)));
        assert_eq!(c(json!({"min_count": 2})), Ok((2, 2)));
        assert_eq!(c(json!({"min_count": "3", "max_count": 5})), Ok((3, 5)));
        assert_eq!(c(json!({"max_count": 4})), Ok((1, 4)));
        assert_eq!(
            c(json!({"min_count": 5, "max_count": 2})),
            Err("min_count must be <= max_count".into())
        );
        for bad in [
            json!(1.5),
            json!("1.5"),
            json!("two"),
            json!(0),
            json!(-1),
            json!(""),
            json!(null),
            json!([1]),
        ] {
            let e = c(json!({ "min_count": bad })).unwrap_err();
            assert!(
                e.starts_with("Invalid input for field/attribute min_count."),
                "{e}"
            );
        }
    }

    #[test]
    fn content_types_as_the_services() {
        assert_eq!(content_type_refusal(false, None), None);
        assert_eq!(
            content_type_refusal(false, Some("application/json; charset=UTF-8")),
            None
        );
        assert_eq!(content_type_refusal(false, Some("text/plain")), None);
        assert_eq!(
            content_type_refusal(false, Some("application/xml")).map(|r| r.0),
            Some(415)
        );
        assert_eq!(content_type_refusal(true, None).map(|r| r.0), Some(400));
        assert_eq!(content_type_refusal(true, Some("application/json")), None);
    }
}
