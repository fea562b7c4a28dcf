//! The fake host's checks of the fields and the grants, as PROTOCOL.md
//! §17.3–17.4 state them, each refusal naming the field or permission.

use tonic::Status;

/// Key (and prefix) length, a rule of the protocol.
const MAX_KEY: usize = 512;
/// Event names start with none of these: they are the host's own.
const RESERVED: [&str; 4] = ["plugin.", "job.", "reload.", "host."];
/// The default `event payload size` limit.
pub(crate) const PAYLOAD_SIZE: usize = 262_144;

/// A key: 1 to 512 bytes, no NUL.
pub(crate) fn key(key: &str) -> Result<(), Status> {
    if key.is_empty() {
        return Err(Status::invalid_argument("key: empty"));
    }
    bounded("key", key)
}

/// A prefix: at most 512 bytes, no NUL.
pub(crate) fn prefix(prefix: &str) -> Result<(), Status> {
    bounded("prefix", prefix)
}

fn bounded(field: &str, text: &str) -> Result<(), Status> {
    if text.len() > MAX_KEY {
        return Err(Status::invalid_argument(format!(
            "{field}: {} bytes > {MAX_KEY}",
            text.len()
        )));
    }
    if text.contains('\0') {
        return Err(Status::invalid_argument(format!("{field}: contains NUL")));
    }
    Ok(())
}

/// A shared namespace's name: 1 to 64 of `[a-z0-9_.-]`, starting with a
/// letter or digit.
pub(crate) fn namespace(name: &str) -> Result<(), Status> {
    name_rule("namespace", name, 64)
}

/// An event's name: 1 to 128 of `[a-z0-9_.-]`, starting with a letter or
/// digit, not one of the host's own.
pub(crate) fn event_name(name: &str) -> Result<(), Status> {
    name_rule("name", name, 128)?;
    if let Some(reserved) = RESERVED.iter().find(|r| name.starts_with(*r)) {
        return Err(Status::invalid_argument(format!(
            "name: {name:?} starts with {reserved:?}, which is reserved for the host's own events"
        )));
    }
    Ok(())
}

/// A secret's name: 1 to 64 of `[a-zA-Z0-9_.-]`.
pub(crate) fn secret_name(name: &str) -> Result<(), Status> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "name: {name:?} is not 1 to 64 characters of [a-zA-Z0-9_.-]"
        )))
    }
}

fn name_rule(field: &str, name: &str, max: usize) -> Result<(), Status> {
    let first_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let all_ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if first_ok && all_ok && name.len() <= max {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "{field}: {name:?} is not 1 to {max} characters of [a-z0-9_.-] starting with a \
             letter or digit"
        )))
    }
}

/// A `ttl`: absent, zero or positive.
pub(crate) fn ttl(
    ttl: Option<prost_types::Duration>,
) -> Result<Option<std::time::Duration>, Status> {
    match ttl {
        None => Ok(None),
        Some(d) if d.seconds == 0 && d.nanos == 0 => Ok(None),
        Some(d) => std::time::Duration::try_from(d)
            .map(Some)
            .map_err(|_| Status::invalid_argument(format!("ttl: negative ({}s)", d.seconds))),
    }
}

/// `PERMISSION_DENIED` naming `plugin` and `permission` unless `granted`
/// allows it (`None`: the fake checks no grants).
pub(crate) fn require(
    granted: Option<&[String]>,
    plugin: &str,
    permission: &str,
) -> Result<(), Status> {
    let Some(granted) = granted else {
        return Ok(());
    };
    let allowed = match permission.strip_prefix("event:publish:") {
        // A publish grant is a glob over event names.
        Some(name) => granted.iter().any(|g| {
            g.strip_prefix("event:publish:")
                .is_some_and(|glob| crate::host::glob_matches(glob, name))
        }),
        None => granted.iter().any(|g| g == permission),
    };
    if allowed {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "plugin {plugin:?} lacks permission {permission:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fields_are_named_when_refused() {
        assert_eq!(key("").unwrap_err().message(), "key: empty");
        assert!(
            key(&"k".repeat(513))
                .unwrap_err()
                .message()
                .starts_with("key: 513")
        );
        assert!(key("a\0b").is_err());
        assert!(namespace("jobs").is_ok());
        assert!(namespace("-jobs").is_err() && namespace("Jobs").is_err());
        assert!(event_name("build.flaky").is_ok());
        let err = event_name("job.finished").unwrap_err();
        assert!(err.message().contains("reserved"), "{err:?}");
        assert!(secret_name("HMAC_key.1").is_ok() && secret_name("a b").is_err());
        let negative = prost_types::Duration {
            seconds: -5,
            nanos: 0,
        };
        assert_eq!(
            ttl(Some(negative)).unwrap_err().message(),
            "ttl: negative (-5s)"
        );
    }

    #[test]
    fn grants_are_exact_except_publish_globs() {
        let granted = vec!["kv".to_owned(), "event:publish:build.*".to_owned()];
        assert!(require(Some(&granted), "c", "kv").is_ok());
        assert!(require(Some(&granted), "c", "event:publish:build.flaky").is_ok());
        assert!(require(None, "c", "secret:x").is_ok());
        let err = require(Some(&granted), "c", "kv:shared:jobs").unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            err.message(),
            "plugin \"c\" lacks permission \"kv:shared:jobs\""
        );
        assert!(require(Some(&granted), "c", "event:publish:deploy.done").is_err());
    }
}
